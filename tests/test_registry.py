"""The schema registry's framing (PIPELINE_SCHEMA_REGISTRY_URL), read back by the Apache Avro
reference implementation, and the registration requests as Confluent's REST API defines them.

No schema registry runs on this project's machines (Confluent's is not on Maven Central and
Karapace is not on PyPI): the requests are checked against a standard-library HTTP server that
answers as the API documents, not against a registry."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, ClassVar

import avro.io
import avro.schema
import pytest

from pipeline import events
from pipeline.errors import SchemaRegistryError
from pipeline.events import (
    EventDecodeError,
    current_fingerprint,
    decode_event,
    encode_event,
    event_headers,
    schema_texts,
)
from pipeline.registry import prepare, register
from pipeline.settings import Settings
from tests.test_events import reference_schema, sample_event


@pytest.fixture(autouse=True)
def single_object_again() -> Iterator[None]:
    """Each test leaves the process writing single-object records, as it found it."""
    yield
    events._registry_framing = None


def test_registry_framing_is_read_by_apache_avro() -> None:
    events.use_registry(7, {7: current_fingerprint()})
    data = encode_event(sample_event())
    assert data[:5] == b"\x00\x00\x00\x00\x07"
    schema = reference_schema()
    record = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(data[5:])))
    assert record == {**sample_event().to_dict(), "type": "completed"}
    assert decode_event(data) == sample_event()
    content_type = dict(event_headers(sample_event()))["content-type"].decode()
    assert "encoding=confluent; schema-id=7" in content_type


def test_both_framings_are_read_whatever_this_process_writes() -> None:
    single_object = encode_event(sample_event())
    events.use_registry(7, {7: current_fingerprint()})
    assert decode_event(single_object) == sample_event()
    with pytest.raises(EventDecodeError, match="schema id 8"):
        decode_event(b"\x00\x00\x00\x00\x08" + single_object[10:])


class Registry(BaseHTTPRequestHandler):
    """Answers as Confluent's API documents: POST /subjects/S/versions registers (200, id),
    POST /subjects/S looks a schema up (200 with its id, or 404 when it is not registered)."""

    registered: ClassVar[dict[str, int]] = {}
    requests: ClassVar[list[tuple[str, str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append((self.path, self.headers["Content-Type"], body))
        canonical = json.dumps(json.loads(body["schema"]), sort_keys=True)
        if self.path.endswith("/versions"):
            self._answer(
                200, {"id": self.registered.setdefault(canonical, 40 + len(self.registered))}
            )
        elif canonical in self.registered:
            self._answer(200, {"subject": "s", "version": 1, "id": self.registered[canonical]})
        else:
            self._answer(404, {"error_code": 40403, "message": "Schema not found"})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def registry_url() -> Iterator[str]:
    Registry.registered, Registry.requests = {}, []
    server = HTTPServer(("127.0.0.1", 0), Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


async def test_the_current_schema_is_registered_and_earlier_ones_looked_up(
    registry_url: str,
) -> None:
    settings = Settings(schema_registry_url=registry_url, topic_prefix="t-")
    schema_id, ids = register(settings)
    first, *lookups = Registry.requests
    assert first[0] == "/subjects/t-job-events-value/versions"
    assert first[1] == "application/vnd.schemaregistry.v1+json"
    assert avro.schema.parse(first[2]["schema"]).fingerprint("CRC-64-AVRO") == current_fingerprint()
    assert [path for path, _, _ in lookups] == ["/subjects/t-job-events-value"] * (
        len(schema_texts()) - 1
    )
    assert ids == {schema_id: current_fingerprint()}  # the earlier versions were never registered

    await prepare(settings)
    assert encode_event(sample_event())[:5] == b"\x00" + schema_id.to_bytes(4, "big")


async def test_an_unreachable_registry_is_a_clear_error() -> None:
    settings = Settings(schema_registry_url="http://127.0.0.1:9")
    with pytest.raises(
        SchemaRegistryError, match=r"cannot be reached.*PIPELINE_SCHEMA_REGISTRY_URL"
    ):
        await prepare(settings)
