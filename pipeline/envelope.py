"""A job record's envelope: the headers around the job's JSON, and where the record goes.

Headers (all UTF-8 text): ``job-id``, ``attempt`` (1-based), ``max-attempts`` (optional),
``enqueued-at`` (ms since epoch), ``content-type``; for delayed records ``due-at`` (ms) and
``target-topic``; for redriven jobs ``redrive`` (how many times); for dead letters
``dlq-reason``, ``dlq-error-class``, ``dlq-attempts``, ``dlq-original-topic``/``-partition``/
``-offset`` and ``dlq-failed-at``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from aiokafka.partitioner import murmur2

JOB_ID = "job-id"
ATTEMPT = "attempt"
MAX_ATTEMPTS = "max-attempts"
ENQUEUED_AT = "enqueued-at"
CONTENT_TYPE = "content-type"
DUE_AT = "due-at"
TARGET_TOPIC = "target-topic"
REDRIVE = "redrive"
JSON_CONTENT_TYPE = "application/json"

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class JobEnvelope:
    """What travels with a job besides its data."""

    job_id: str
    job_name: str
    attempt: int
    enqueued_at_ms: int
    max_attempts: int | None = None
    due_at_ms: int | None = None
    target_topic: str | None = None
    redrive: int = 0  # how many times the job was sent back from the dead-letter topic

    def headers(self) -> Headers:
        """Kafka headers for this envelope."""
        values: dict[str, str | int | None] = {
            JOB_ID: self.job_id,
            ATTEMPT: self.attempt,
            MAX_ATTEMPTS: self.max_attempts,
            ENQUEUED_AT: self.enqueued_at_ms,
            CONTENT_TYPE: JSON_CONTENT_TYPE,
            DUE_AT: self.due_at_ms,
            TARGET_TOPIC: self.target_topic,
            REDRIVE: self.redrive or None,
        }
        return [(name, str(value).encode()) for name, value in values.items() if value is not None]

    def next_attempt(self) -> JobEnvelope:
        """The envelope of the following try."""
        return replace(self, attempt=self.attempt + 1)

    @classmethod
    def from_record(
        cls,
        key: bytes | None,
        headers: Mapping[str, bytes] | Iterable[tuple[str, bytes]],
        *,
        fallback_id: str,
        timestamp_ms: int,
    ) -> JobEnvelope:
        """Read an envelope; records from plain producers (no headers) get stable defaults.

        ``fallback_id`` names a record without a ``job-id`` header (topic, partition and offset
        make it stable across redeliveries). Malformed numbers fall back the same way: the job
        still runs, and a wrong header never stops the worker.
        """
        found = dict(headers.items() if isinstance(headers, Mapping) else headers)

        def text(name: str) -> str | None:
            raw = found.get(name)
            return raw.decode("utf-8", errors="replace") if raw else None

        def number(name: str) -> int | None:
            value = text(name)
            return int(value) if value is not None and value.isdigit() else None

        return cls(
            job_id=text(JOB_ID) or fallback_id,
            job_name=(key or b"").decode("utf-8", errors="replace"),
            attempt=max(number(ATTEMPT) or 1, 1),
            enqueued_at_ms=number(ENQUEUED_AT) or timestamp_ms,
            max_attempts=number(MAX_ATTEMPTS),
            due_at_ms=number(DUE_AT),
            target_topic=text(TARGET_TOPIC),
            redrive=number(REDRIVE) or 0,
        )


def job_hash(job_id: str) -> int:
    """The non-negative murmur2 hash of a job id: Kafka's default partitioner's hash."""
    hashed: int = murmur2(job_id.encode())
    return hashed & 0x7FFFFFFF


def partition_for(job_id: str, partitions: int) -> int:
    """The partition of a job: by job id (not by the key, the job name), so one popular job
    name spreads over every partition while each job, its retries and its duplicates stay in
    one partition (where its dedupe state lives). Same hash as Kafka's default partitioner."""
    return job_hash(job_id) % partitions
