"""Lifecycle records on ``job-events``: the record type and its Avro single-object codec.

Wire format (Avro specification, "Single object encoding"): the two bytes ``C3 01``, the 8-byte
little-endian CRC-64-AVRO fingerprint of the writer schema's canonical form, then the Avro binary
body. Any consumer that holds ``schemas/job_event.avsc`` can decode it, in any language.
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import dataclass, field, fields
from enum import StrEnum
from functools import cache
from importlib import resources
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from pipeline.errors import PermanentJobError

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
_HEADER_SIZE = len(SINGLE_OBJECT_MAGIC) + 8


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


def _load_schema(name: str) -> dict[str, Any]:
    text = resources.files("pipeline.schemas").joinpath(name).read_text()
    parsed = fastavro.parse_schema(json.loads(text))
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


def encode_event(event: JobEvent) -> bytes:
    """Encode ``event`` in Avro single-object encoding with the current schema."""
    schemas = _schemas()
    buffer = io.BytesIO()
    buffer.write(SINGLE_OBJECT_MAGIC)
    buffer.write(schemas.current_fingerprint)
    fastavro.schemaless_writer(buffer, schemas.current, event.to_dict())
    return buffer.getvalue()


def decode_event(data: bytes) -> JobEvent:
    """Decode a single-object-encoded record written with any known version of the schema."""
    if len(data) < _HEADER_SIZE or not data.startswith(SINGLE_OBJECT_MAGIC):
        raise EventDecodeError("not an Avro single-object record (missing C3 01 header)")
    schemas = _schemas()
    writer = schemas.writers.get(data[2:_HEADER_SIZE])
    if writer is None:
        raise EventDecodeError(f"unknown writer schema fingerprint {data[2:_HEADER_SIZE].hex()}")
    try:
        record = fastavro.schemaless_reader(
            io.BytesIO(data[_HEADER_SIZE:]), writer, schemas.current
        )
    except (EOFError, ValueError, IndexError) as exc:
        raise EventDecodeError(f"corrupt lifecycle record: {exc}") from exc
    if not isinstance(record, dict):
        raise EventDecodeError("lifecycle record is not an Avro record")
    record["type"] = EventType(record["type"])
    return JobEvent(**record)
