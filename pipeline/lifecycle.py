"""The one vocabulary of a job's life: the states a job can be in, and the lifecycle records that
move it between them, built here and nowhere else (the producer, the runner, redrive and cron all
call these). Free of Faust.

    added ──> waiting ──> active ──> completed
                 ^          │  └───> failed ──> delayed (a retry, or ``delay_s``) ──> active ...
                 │          │              └──> dead_lettered ──(redrive)──> waiting
                 │          └──> stalled (its worker died, or it ran past the timeout)
    cron firings end in completed, failed or skipped.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

from pipeline.envelope import JobEnvelope
from pipeline.events import EventType, JobEvent

CRON_QUEUE = "cron"


class JobState(StrEnum):
    """Where a job is, as the runner's job-state tables, the monitor's job-status table, retention,
    ``/jobs/{id}`` and the dashboard all name it."""

    WAITING = "waiting"
    ACTIVE = "active"
    DELAYED = "delayed"
    COMPLETED = "completed"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"
    STALLED = "stalled"
    SKIPPED = "skipped"

    @classmethod
    def of(cls, word: str) -> JobState:
        """The state a stored word names; "retrying" is what earlier versions called delayed."""
        return cls.DELAYED if word == "retrying" else cls(word)


# The state a job is in after a record of each type; progress and queue records keep it.
STATE_AFTER = {
    EventType.ADDED: JobState.WAITING,
    EventType.ACTIVE: JobState.ACTIVE,
    EventType.COMPLETED: JobState.COMPLETED,
    EventType.FAILED: JobState.FAILED,
    EventType.RETRYING: JobState.DELAYED,
    EventType.DEAD_LETTERED: JobState.DEAD_LETTERED,
    EventType.STALLED: JobState.STALLED,
    EventType.SKIPPED: JobState.SKIPPED,
}
# Why a discarded dead letter's ``skipped`` record says it was skipped.
DISCARDED = "discarded from the dead letters"
# Records after which a job does nothing more on its own (a redrive starts it afresh).
TERMINAL_EVENTS = frozenset((EventType.COMPLETED, EventType.DEAD_LETTERED))
TERMINAL_STATES = frozenset(STATE_AFTER[kind] for kind in TERMINAL_EVENTS)
# States retention may forget: the terminal ones, and how a cron firing ends.
FINISHED_STATES = TERMINAL_STATES | {JobState.FAILED, JobState.SKIPPED}
TERMINAL_EVENT_OF = {STATE_AFTER[kind]: kind for kind in TERMINAL_EVENTS}


def terminal_event_id(envelope: JobEnvelope, kind: EventType) -> str:
    """The event id of a job's terminal record: the same every time it is written, so a copy
    written again after a crash is recognised as the same record."""
    name = f"{envelope.job_id}\x00{envelope.redrive}\x00{envelope.attempt}\x00{kind.value}"
    return hashlib.blake2b(name.encode(), digest_size=16).hexdigest()


def added(
    queue: str, envelope: JobEnvelope, max_attempts: int, *, timestamp_ms: int | None = None
) -> JobEvent:
    """The ``added`` record of a job sent to ``queue`` (by a producer, or by a redrive)."""
    extra: dict[str, Any] = {}
    if timestamp_ms is not None:
        extra["timestamp_ms"] = timestamp_ms
    if envelope.redrive:
        extra["result"] = {"redrive": str(envelope.redrive)}
    return JobEvent(
        job_id=envelope.job_id,
        queue=queue,
        job_name=envelope.job_name,
        type=EventType.ADDED,
        attempt=envelope.attempt,
        max_attempts=max_attempts,
        due_at_ms=envelope.due_at_ms,
        **extra,
    )


def attempt_event(
    queue: str,
    envelope: JobEnvelope,
    kind: EventType,
    max_attempts: int,
    worker_id: str,
    **fields: Any,
) -> JobEvent:
    """A record of a worker's attempt at a job: active, progress, stalled, failed, retrying,
    completed, dead_lettered. Terminal ones carry their fixed event id."""
    if kind in TERMINAL_EVENTS:
        fields["event_id"] = terminal_event_id(envelope, kind)
    return JobEvent(
        job_id=envelope.job_id,
        queue=queue,
        job_name=envelope.job_name,
        type=kind,
        attempt=envelope.attempt,
        max_attempts=max_attempts,
        worker_id=worker_id,
        **fields,
    )


def discarded(queue: str, job_id: str, job_name: str, attempt: int, max_attempts: int) -> JobEvent:
    """A dead-lettered job an operator discarded: it is skipped for good (no redrive finds it)."""
    return JobEvent(
        job_id=job_id,
        queue=queue,
        job_name=job_name,
        type=EventType.SKIPPED,
        attempt=attempt,
        max_attempts=max_attempts,
        error_message=DISCARDED,
    )


def queue_event(
    queue: str, worker_id: str, *, paused: bool, cause: str, paused_s: float
) -> JobEvent:
    """A queue paused (its dependency is unreachable) or resumed; no job's record."""
    return JobEvent(
        job_id="",
        queue=queue,
        job_name="",
        type=EventType.QUEUE_PAUSED if paused else EventType.QUEUE_RESUMED,
        attempt=0,
        max_attempts=0,
        worker_id=worker_id,
        error_message=cause,
        duration_ms=None if paused else int(paused_s * 1000),
    )


def firing_event(
    firing_id: str, name: str, kind: EventType, worker_id: str, **fields: Any
) -> JobEvent:
    """A record of cron job ``name``'s firing ``firing_id`` (queue ``cron``, one attempt)."""
    return JobEvent(
        job_id=firing_id,
        queue=CRON_QUEUE,
        job_name=name,
        type=kind,
        attempt=1,
        max_attempts=1,
        worker_id=worker_id,
        **fields,
    )
