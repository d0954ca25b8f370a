"""Lifecycle records: Avro single-object encoding that the reference implementation reads."""

from __future__ import annotations

import dataclasses
import io
from importlib import resources
from pathlib import Path

import avro.io
import avro.schema
import pytest

from pipeline.events import (
    EventDecodeError,
    EventType,
    JobEvent,
    decode_event,
    encode_event,
    event_headers,
)

GOLDEN = Path(__file__).parent / "data" / "job_event_v1.bin"


def sample_event() -> JobEvent:
    return JobEvent(
        job_id="0f1e2d3c",
        queue="email",
        job_name="otp-email-verification",
        type=EventType.COMPLETED,
        attempt=2,
        max_attempts=3,
        timestamp_ms=1_795_000_000_000,
        event_id="e-1",
        worker_id="host:1",
        duration_ms=42,
        result={"message_id": "<0f1e2d3c@pipeline.jobs>"},
    )


def reference_schema() -> avro.schema.Schema:
    text = resources.files("pipeline.schemas").joinpath("job_event.avsc").read_text()
    return avro.schema.parse(text)


def test_round_trip() -> None:
    event = sample_event()
    assert decode_event(encode_event(event)) == event


def test_a_decoded_record_is_a_whole_frozen_event() -> None:
    # decode_event fills the event's fields from the record without __init__: the schema's
    # fields must be exactly JobEvent's, and the event stays frozen.
    schema_fields = [field.name for field in reference_schema().fields]
    assert sorted(schema_fields) == sorted(field.name for field in dataclasses.fields(JobEvent))
    event = decode_event(encode_event(sample_event()))
    assert sorted(vars(event)) == sorted(schema_fields)
    assert isinstance(event.type, EventType)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.attempt = 3  # type: ignore[misc]


def test_apache_avro_reads_our_bytes() -> None:
    data = encode_event(sample_event())
    schema = reference_schema()
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == schema.fingerprint("CRC-64-AVRO")
    record = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(data[10:])))
    assert record == {**sample_event().to_dict(), "type": "completed"}


def test_headers_name_the_record_without_decoding_it() -> None:
    headers = dict(event_headers(sample_event()))
    fingerprint = reference_schema().fingerprint("CRC-64-AVRO").hex()
    assert headers == {
        "event-type": b"completed",
        "queue": b"email",
        "job-name": b"otp-email-verification",
        "content-type": (
            f"application/vnd.apache.avro+binary; encoding=single-object; fingerprint={fingerprint}"
        ).encode(),
    }


def test_we_read_apache_avro_bytes() -> None:
    schema = reference_schema()
    buffer = io.BytesIO()
    buffer.write(b"\xc3\x01" + schema.fingerprint("CRC-64-AVRO"))
    avro.io.DatumWriter(schema).write(sample_event().to_dict(), avro.io.BinaryEncoder(buffer))
    assert decode_event(buffer.getvalue()) == sample_event()


def test_records_written_by_the_first_release_still_decode() -> None:
    # The bytes were written by the first version of job_event.avsc and are never regenerated:
    # a schema change that cannot read them fails here.
    event = decode_event(GOLDEN.read_bytes())
    assert event == sample_event()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "single-object"),
        (b'{"json": true}', "single-object"),
        (b"\xc3\x01" + b"\x00" * 8 + b"\x02", "unknown writer schema"),
    ],
)
def test_foreign_bytes_are_refused(data: bytes, reason: str) -> None:
    with pytest.raises(EventDecodeError, match=reason):
        decode_event(data)
