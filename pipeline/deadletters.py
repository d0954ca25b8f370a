"""Listing, redriving and discarding a queue's dead letters. Free of Faust: the worker's web
API and the command line (which needs no worker) both call it.

The dead-letter topic is the record of truth (the list ``/dlq`` shows is the monitor's
dead-letters table): a redrive finds the job's latest record there, sends the original job back
to its queue (attempt 1, the redrive count one higher, so the job-state table lets it run again)
and appends a marker record, so a later redrive of the same job finds nothing until it is
dead-lettered again. A discard appends the same kind of marker and a ``skipped`` lifecycle
record: the job is done for good, and the monitor takes it off its list.
"""

from __future__ import annotations

import contextlib
from typing import Any

from pipeline import lifecycle
from pipeline.catalog import JOB_EVENTS, QueueSpec
from pipeline.envelope import REDRIVE, JobEnvelope, partition_for
from pipeline.errors import UnknownJobError
from pipeline.events import encode_event, event_headers, now_ms
from pipeline.handlers import registry
from pipeline.reading import read_topic
from pipeline.records import Publisher
from pipeline.retry import RetryPolicy
from pipeline.settings import Settings

REDRIVEN = "dlq-redriven"
DISCARDED = "dlq-discarded"


def _text(headers: dict[str, bytes], name: str) -> str | None:
    value = headers.get(name)
    return value.decode("utf-8", errors="replace") if value is not None else None


async def latest_dead_letters(settings: Settings, queue: QueueSpec) -> dict[str, Any]:
    """The latest dead-letter record of each job still dead, by job id."""
    latest: dict[str, Any] = {}
    topic = queue.dead_letter.name(settings)
    async for record in read_topic(settings, topic):
        headers = dict(record.headers)
        job_id = _text(headers, "job-id")
        if job_id is None:
            continue
        if REDRIVEN in headers or DISCARDED in headers:
            latest.pop(job_id, None)
        else:
            latest[job_id] = record
    return latest


def _number(headers: dict[str, bytes], name: str) -> int:
    """A count header as written by the runner; 0 when absent or unreadable (a dead letter may
    carry a hostile producer's headers as they came)."""
    value = _text(headers, name) or ""
    return int(value) if value.isascii() and value.isdigit() and len(value) < 16 else 0


def describe(queue: QueueSpec, job_id: str, record: Any) -> dict[str, Any]:
    """How the command line lists a dead letter (never the job's data: it may hold secrets)."""
    headers = dict(record.headers)
    return {
        "job_id": job_id,
        "queue": queue.name,
        "job_name": (record.key or b"").decode("utf-8", errors="replace"),
        "reason": _text(headers, "dlq-reason"),
        "error_class": _text(headers, "dlq-error-class"),
        "attempts": _number(headers, "dlq-attempts"),
        "max_attempts": _number(headers, "dlq-max-attempts") or _number(headers, "max-attempts"),
        "failed_at_ms": _number(headers, "dlq-failed-at") or record.timestamp,
        "redrive": _number(headers, REDRIVE),
    }


async def redrive(
    settings: Settings, queue: QueueSpec, job_id: str, publisher: Publisher
) -> dict[str, Any] | None:
    """Send job ``job_id`` back to its queue with fresh attempts; None if it is not dead."""
    record = (await latest_dead_letters(settings, queue)).get(job_id)
    if record is None:
        return None
    return await _redrive(settings, queue, job_id, record, publisher)


async def redrive_all(
    settings: Settings, queue: QueueSpec, publisher: Publisher, *, job_name: str | None = None
) -> list[dict[str, Any]]:
    """Redrive every dead letter of ``queue`` (of job ``job_name`` only, if given)."""
    letters = await latest_dead_letters(settings, queue)
    return [
        await _redrive(settings, queue, job_id, record, publisher)
        for job_id, record in letters.items()
        if job_name is None or record.key == job_name.encode()
    ]


async def discard(
    settings: Settings,
    queue: QueueSpec,
    publisher: Publisher,
    *,
    job_ids: list[str] | None = None,
    job_name: str | None = None,
) -> list[str]:
    """Discard the dead letters ``job_ids`` of ``queue`` (all, if None; of job ``job_name``
    only, if given); the ids discarded."""
    letters = await latest_dead_letters(settings, queue)
    gone = [
        job_id
        for job_id, record in letters.items()
        if (job_ids is None or job_id in job_ids)
        and (job_name is None or record.key == job_name.encode())
    ]
    for job_id in gone:
        letter = describe(queue, job_id, letters[job_id])
        event = lifecycle.discarded(
            queue.name, job_id, letter["job_name"], letter["attempts"], letter["max_attempts"]
        )
        await publisher.publish(
            JOB_EVENTS.name(settings),
            key=job_id.encode(),
            value=encode_event(event),
            headers=event_headers(event),
        )
        await publisher.publish(
            queue.dead_letter.name(settings),
            key=letters[job_id].key,
            value=b"",
            headers=[("job-id", job_id.encode()), (DISCARDED, b"1")],
        )
    return gone


async def _redrive(
    settings: Settings, queue: QueueSpec, job_id: str, record: Any, publisher: Publisher
) -> dict[str, Any]:
    headers = dict(record.headers)
    # The job keeps the attempts it was given (dead letters from before dlq-max-attempts existed
    # fall back to what its own header said, then to the job type's default).
    job_name = (record.key or b"").decode("utf-8", errors="replace")
    max_attempts = _number(headers, "dlq-max-attempts") or _number(headers, "max-attempts")
    if not max_attempts:
        with contextlib.suppress(UnknownJobError):
            max_attempts = registry.get(job_name, queue).retry.attempts
    envelope = JobEnvelope(
        job_id=job_id,
        job_name=job_name,
        attempt=1,
        enqueued_at_ms=now_ms(),
        max_attempts=max_attempts or None,
        redrive=_number(headers, REDRIVE) + 1,
    )
    # The added record first, so no worker records the job active ahead of it.
    event = lifecycle.added(queue.name, envelope, max_attempts or RetryPolicy().attempts)
    await publisher.publish(
        JOB_EVENTS.name(settings),
        key=job_id.encode(),
        value=encode_event(event),
        headers=event_headers(event),
    )
    await publisher.publish(
        queue.topic.name(settings),
        key=record.key,
        value=record.value,
        headers=envelope.headers(),
        partition=partition_for(job_id, queue.topic.partition_count(settings)),
    )
    await publisher.publish(
        queue.dead_letter.name(settings),
        key=record.key,
        value=b"",
        headers=[("job-id", job_id.encode()), (REDRIVEN, str(envelope.redrive).encode())],
    )
    return {"job_id": job_id, "redrive": envelope.redrive}
