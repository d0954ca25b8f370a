"""Lifecycle records on ``job-events``: the record type and its Avro codec.

Wire format (Avro specification, "Single object encoding"): the two bytes ``C3 01``, the 8-byte
little-endian CRC-64-AVRO fingerprint of the writer schema's canonical form, then the Avro binary
body. Any consumer that holds ``schemas/job_event.avsc`` can decode it, in any language.

With a schema registry (``PIPELINE_SCHEMA_REGISTRY_URL``, ``pipeline.registry``) the process
writes Confluent's framing instead: a zero byte, the schema's 4-byte big-endian id in the
registry, then the same body. Both framings are read, whatever the process writes.
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass, field, fields
from enum import StrEnum
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from pipeline.errors import PermanentJobError

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
_HEADER_SIZE = len(SINGLE_OBJECT_MAGIC) + 8
CONFLUENT_MAGIC = b"\x00"
_CONFLUENT_HEADER_SIZE = len(CONFLUENT_MAGIC) + 4
# The header that names a record's type (``event_headers``).
EVENT_TYPE_HEADER = "event-type"


class EventType(StrEnum):
    """The steps of a job's life (the Avro enum ``JobEventType``)."""

    UNKNOWN = "unknown"
    ADDED = "added"
    ACTIVE = "active"
    PROGRESS = "progress"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRYING = "retrying"
    DEAD_LETTERED = "dead_lettered"
    STALLED = "stalled"
    SKIPPED = "skipped"
    # A queue's circuit breaker opened or closed (pipeline.breaker): job_id and job_name are
    # empty, error_message gives the cause, duration_ms how long the queue was paused.
    QUEUE_PAUSED = "queue_paused"
    QUEUE_RESUMED = "queue_resumed"


def now_ms() -> int:
    """Wall-clock time in ms since the epoch, the unit of every timestamp in records."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class JobEvent:
    """One lifecycle record."""

    job_id: str
    queue: str
    job_name: str
    type: EventType
    attempt: int
    max_attempts: int
    timestamp_ms: int = field(default_factory=now_ms)
    # 128 random bits, like a uuid4's hex without building a UUID object for every record.
    event_id: str = field(default_factory=lambda: os.urandom(16).hex())
    worker_id: str | None = None
    duration_ms: int | None = None
    will_retry: bool | None = None
    due_at_ms: int | None = None
    error_class: str | None = None
    error_message: str | None = None
    progress_percent: float | None = None
    result: dict[str, str] = field(default_factory=dict)
    progress_bytes_done: int | None = None
    progress_bytes_total: int | None = None
    started_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain values, as JSON output and the Avro writer want them."""
        # Shallow on purpose: asdict deep-copies, and this runs for every record the worker sends.
        data = {name: getattr(self, name) for name in _FIELD_NAMES}
        data["type"] = self.type.value
        data["result"] = dict(self.result)
        return data


_FIELD_NAMES = tuple(item.name for item in fields(JobEvent))


class EventDecodeError(PermanentJobError):
    """Bytes that are not a lifecycle record this code knows how to read."""


def _schema_text(name: str) -> str:
    return resources.files("pipeline.schemas").joinpath(name).read_text()


def _load_schema(name: str) -> dict[str, Any]:
    parsed = fastavro.parse_schema(json.loads(_schema_text(name)))
    if not isinstance(parsed, dict):
        raise TypeError(f"{name} is not an Avro record schema")
    return parsed


@dataclass(frozen=True)
class _Schemas:
    current: dict[str, Any]
    current_fingerprint: bytes
    # Every schema a record may have been written with, by fingerprint. A release that changes
    # job_event.avsc keeps the previous file as job_event.vN.avsc and lists it here.
    writers: dict[bytes, dict[str, Any]]


# Earlier versions of job_event.avsc: records they wrote are still on topics and must decode.
PREVIOUS_SCHEMAS = ("job_event.v1.avsc", "job_event.v2.avsc", "job_event.v3.avsc")


@cache
def _schemas() -> _Schemas:
    # Loaded on first use, not at import: importing pipeline reads no files.
    current = _load_schema("job_event.avsc")
    versions = [current, *(_load_schema(name) for name in PREVIOUS_SCHEMAS)]
    writers = {_fingerprint(schema): schema for schema in versions}
    return _Schemas(current, _fingerprint(current), writers)


def _fingerprint(schema: dict[str, Any]) -> bytes:
    return bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


def schema_texts() -> dict[bytes, str]:
    """Every schema this code reads, as its file's JSON, by fingerprint; the current first."""
    names = ["job_event.avsc", *PREVIOUS_SCHEMAS]
    return {_fingerprint(_load_schema(name)): _schema_text(name) for name in names}


def current_fingerprint() -> bytes:
    """The CRC-64-AVRO fingerprint of the schema records are written with."""
    return _schemas().current_fingerprint


@dataclass(frozen=True)
class _Framing:
    # What precedes the Avro body of each record this process writes.
    prefix: bytes
    # The content-type header of those records.
    content_type: str
    # Registry ids of the schemas this code knows, by id (registry framing only).
    registry_ids: dict[int, bytes] = field(default_factory=dict)


_CONTENT_TYPE = "application/vnd.apache.avro+binary; encoding={}; fingerprint={}"


@cache
def _single_object() -> _Framing:
    fingerprint_ = _schemas().current_fingerprint
    return _Framing(
        SINGLE_OBJECT_MAGIC + fingerprint_,
        _CONTENT_TYPE.format("single-object", fingerprint_.hex()),
    )


# Set once at start when a schema registry is configured (use_registry); None: single-object.
_registry_framing: _Framing | None = None


def use_registry(schema_id: int, registry_ids: dict[int, bytes]) -> None:
    """Write Confluent's framing with ``schema_id`` (the current schema's id) from now on, and
    read it for every id in ``registry_ids`` (id -> fingerprint of a schema this code knows)."""
    global _registry_framing
    fingerprint_ = _schemas().current_fingerprint
    if registry_ids.get(schema_id) != fingerprint_:
        raise ValueError(f"schema id {schema_id} is not the current schema's")
    content_type = _CONTENT_TYPE.format(f"confluent; schema-id={schema_id}", fingerprint_.hex())
    _registry_framing = _Framing(
        CONFLUENT_MAGIC + schema_id.to_bytes(4, "big"), content_type, dict(registry_ids)
    )


def _framing() -> _Framing:
    return _registry_framing or _single_object()


def encode_event(event: JobEvent) -> bytes:
    """Encode ``event`` with the current schema, in this process's framing."""
    buffer = io.BytesIO()
    buffer.write(_framing().prefix)
    fastavro.schemaless_writer(buffer, _schemas().current, event.to_dict())
    return buffer.getvalue()


def event_headers(event: JobEvent) -> list[tuple[str, bytes]]:
    """Kafka headers of ``event``'s record, so a consumer can filter without decoding it:
    ``event-type``, ``queue``, ``job-name`` and ``content-type`` (the framing and the writer
    schema's fingerprint)."""
    return list(_headers(event.type.value, event.queue, event.job_name, _framing().content_type))


@lru_cache(maxsize=4096)
def _headers(
    type_: str, queue: str, job_name: str, content_type: str
) -> tuple[tuple[str, bytes], ...]:
    # Few distinct combinations (queues x job names x types): built once each, not per record.
    return (
        (EVENT_TYPE_HEADER, type_.encode()),
        ("queue", queue.encode()),
        ("job-name", job_name.encode()),
        ("content-type", content_type.encode()),
    )


def decode_event(data: bytes) -> JobEvent:
    """Decode a record written with any known version of the schema, in either framing."""
    schemas = _schemas()
    if data.startswith(SINGLE_OBJECT_MAGIC) and len(data) >= _HEADER_SIZE:
        found, body = data[2:_HEADER_SIZE], data[_HEADER_SIZE:]
        writer = schemas.writers.get(found)
        if writer is None:
            raise EventDecodeError(f"unknown writer schema fingerprint {found.hex()}")
    elif data.startswith(CONFLUENT_MAGIC) and len(data) >= _CONFLUENT_HEADER_SIZE:
        schema_id = int.from_bytes(data[1:_CONFLUENT_HEADER_SIZE], "big")
        known = _framing().registry_ids.get(schema_id)
        writer = None if known is None else schemas.writers.get(known)
        if writer is None:
            raise EventDecodeError(
                f"schema id {schema_id} in the registry's framing is not a schema this process "
                "looked up (set PIPELINE_SCHEMA_REGISTRY_URL to read registry-framed records)"
            )
        body = data[_CONFLUENT_HEADER_SIZE:]
    else:
        raise EventDecodeError(
            "not a lifecycle record (neither the C3 01 single-object header nor the registry's "
            "zero byte)"
        )
    try:
        record = fastavro.schemaless_reader(io.BytesIO(body), writer, schemas.current)
    except (EOFError, ValueError, IndexError) as exc:
        raise EventDecodeError(f"corrupt lifecycle record: {exc}") from exc
    if not isinstance(record, dict):
        raise EventDecodeError("lifecycle record is not an Avro record")
    record["type"] = EventType(record["type"])
    # Read with the current schema, the record holds every field of JobEvent (defaults filled
    # in) and nothing else: set them at once rather than through the frozen dataclass's
    # __init__, one object.__setattr__ call per field, a third of a decode's time.
    event: JobEvent = object.__new__(JobEvent)
    event.__dict__.update(record)
    return event
