"""What the job runner and the delay tiers take in and send out, free of Faust."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pipeline.envelope import JOB_ID, Headers


@dataclass(frozen=True)
class IncomingRecord:
    """A consumed Kafka record, as the runner needs it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]]


class Publisher(Protocol):
    """Sends records; while Kafka cannot be reached it waits for it rather than fail."""

    async def publish(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        headers: Headers,
        partition: int | None = None,
    ) -> None:
        """Send one record and return once the broker has it (acks=all)."""
        ...

    async def publish_soon(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        headers: Headers,
        partition: int | None = None,
    ) -> Awaitable[object]:
        """Hand one record to the producer; awaiting what is returned waits until the broker has
        it (and, while Kafka cannot be reached, sends it again): it must be awaited."""
        ...


def record_id(record: IncomingRecord) -> str:
    """A record's place, which names a job that carries no usable id of its own."""
    return f"{record.topic}:{record.partition}:{record.offset}"


def record_size(record: IncomingRecord) -> int:
    """Bytes of a record's value and headers, as the broker counts them (roughly)."""
    return len(record.value) + sum(len(k) + len(v) for k, v in record.headers)


def dead_letter_of(
    record: IncomingRecord, *, job_id: str, max_bytes: int, reasons: dict[str, str | int]
) -> tuple[bytes, Headers]:
    """The value and headers of ``record``'s dead letter: the original record with the
    ``reasons`` (``dlq-*`` headers) and where it came from, under ``job_id``.

    A record over ``max_bytes`` is not copied (the dead-letter topic may refuse it): its dead
    letter is a reference, empty but for ``dlq-original-size``; the original stays on its topic.
    A job id header that was refused is kept as ``dlq-original-job-id``.
    """
    place = {
        "dlq-original-topic": record.topic,
        "dlq-original-partition": record.partition,
        "dlq-original-offset": record.offset,
    }
    kept = [(k, v) for k, v in record.headers if not k.startswith("dlq-") and k != JOB_ID]
    value = record.value
    size = record_size(record)
    if size > max_bytes:
        value, kept = b"", []
        place["dlq-original-size"] = size
    elif (given := dict(record.headers).get(JOB_ID)) is not None and given != job_id.encode():
        kept.append(("dlq-original-job-id", given))
    added = [(name, str(text).encode()) for name, text in {**reasons, **place}.items()]
    return value, [*kept, (JOB_ID, job_id.encode()), *added]
