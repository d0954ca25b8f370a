"""A job record's envelope: the headers around the job's JSON, and where the record goes.

Headers (all UTF-8 text): ``job-id``, ``attempt`` (1-based), ``max-attempts`` (optional),
``enqueued-at`` (ms since epoch), ``content-type``; for delayed records ``due-at`` (ms) and
``target-topic``; for redriven jobs ``redrive`` (how many times); for dead letters
``dlq-reason``, ``dlq-error-class``, ``dlq-attempts``, ``dlq-original-topic``/``-partition``/
``-offset`` and ``dlq-failed-at``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from pipeline.errors import InvalidEnvelope
from pipeline.partitioning import key_hash

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
        make it stable across redeliveries). Every header a producer can set is checked:
        anything that is not what this module writes raises ``InvalidEnvelope`` with the
        reason, so the record is dead-lettered instead of run with a guess.
        """
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers)
        found: dict[str, bytes | None] = {}
        for name, raw in pairs:
            if name in _ENVELOPE_HEADERS and name in found:
                raise InvalidEnvelope(f"header {name!r} appears more than once")
            found[name] = raw
        job_id = _text(found, JOB_ID)
        if job_id is not None:
            check_job_id(job_id, InvalidEnvelope)
        attempt = _number(found, ATTEMPT, 1, MAX_ATTEMPT_NUMBER)
        return cls(
            job_id=job_id or fallback_id,
            job_name=job_name_of(key),
            attempt=attempt or 1,
            enqueued_at_ms=_number(found, ENQUEUED_AT, 0, MAX_TIMESTAMP_MS) or timestamp_ms,
            max_attempts=_number(found, MAX_ATTEMPTS, 1, MAX_ATTEMPT_NUMBER),
            due_at_ms=_number(found, DUE_AT, 0, MAX_TIMESTAMP_MS),
            target_topic=_text(found, TARGET_TOPIC),
            redrive=_number(found, REDRIVE, 0, MAX_ATTEMPT_NUMBER) or 0,
        )

    @classmethod
    def unreadable(cls, key: bytes | None, *, fallback_id: str, timestamp_ms: int) -> JobEnvelope:
        """The envelope of a record whose headers could not be read: named by its place."""
        return cls(
            job_id=fallback_id,
            job_name=job_name_of(key),
            attempt=1,
            enqueued_at_ms=timestamp_ms,
        )


# Bounds on what a header may say. Larger numbers are not jobs this code wrote, and Python would
# happily carry 10**30 attempts into an Avro int and crash the writer.
MAX_ATTEMPT_NUMBER = 1000
MAX_TIMESTAMP_MS = 10**15  # the year 33658
MAX_JOB_ID_CHARS = 200
_ENVELOPE_HEADERS = frozenset(
    (JOB_ID, ATTEMPT, MAX_ATTEMPTS, ENQUEUED_AT, DUE_AT, TARGET_TOPIC, REDRIVE)
)
_ASCII_DIGITS = re.compile(r"[0-9]{1,16}")


def check_job_id(job_id: str, error: type[Exception] = ValueError) -> str:
    """``job_id`` if it is a usable id: 1-200 printable characters. Ids name jobs in logs,
    URLs and tables, so control characters (a forged log line) are refused, not escaped."""
    if not job_id:
        raise error("job id is empty")
    if len(job_id) > MAX_JOB_ID_CHARS:
        raise error(f"job id is {len(job_id)} characters, over the limit of {MAX_JOB_ID_CHARS}")
    if not job_id.isprintable():
        raise error("job id holds control or non-printable characters")
    return job_id


def job_name_of(key: bytes | None) -> str:
    """The job name a record's key holds, made safe to log: a key that is not printable UTF-8
    (it names no job anyway) is shown escaped, so it cannot forge a log line."""
    name = (key or b"").decode("utf-8", errors="backslashreplace")[:MAX_JOB_ID_CHARS]
    return name if name.isprintable() else name.encode("unicode_escape").decode("ascii")


def _text(found: Mapping[str, bytes | None], name: str) -> str | None:
    raw = found.get(name)
    if raw is None or raw == b"":
        return None
    try:
        # Strict: two different undecodable ids would both read as U+FFFD and collide.
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEnvelope(f"header {name!r} is not valid UTF-8") from exc


def _number(found: Mapping[str, bytes | None], name: str, low: int, high: int) -> int | None:
    value = _text(found, name)
    if value is None:
        return None
    # ASCII digits only: str.isdigit() accepts "²", which int() then refuses.
    if not _ASCII_DIGITS.fullmatch(value):
        raise InvalidEnvelope(f"header {name!r} is not a whole number")
    number = int(value)
    if not low <= number <= high:
        raise InvalidEnvelope(f"header {name!r} is {number}, outside {low}..{high}")
    return number


def job_hash(job_id: str) -> int:
    """The non-negative murmur2 hash of a job id: Kafka's default partitioner's hash."""
    return key_hash(job_id.encode())


def partition_for(job_id: str, partitions: int) -> int:
    """The partition of a job: by job id (not by the key, the job name), so one popular job
    name spreads over every partition while each job, its retries and its duplicates stay in
    one partition (where its dedupe state lives). Same hash as Kafka's default partitioner."""
    return job_hash(job_id) % partitions
