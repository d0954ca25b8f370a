"""Writing what happened to a job: its state in the job-state table, its lifecycle records, the
record of its next attempt in a delay tier, and its dead letter. Free of Faust.

``pipeline.runner`` decides and runs; this class only writes, in the order the crash guarantee
needs (a job is done once its terminal state and terminal record are both acked).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from pipeline import lifecycle
from pipeline.catalog import QueueSpec
from pipeline.decisions import RetryLater
from pipeline.envelope import JobEnvelope
from pipeline.errors import PermanentJobError, redact
from pipeline.events import EventType, encode_event, now_ms
from pipeline.lifecycle import STATE_AFTER, JobState
from pipeline.records import IncomingRecord, Publisher, dead_letter_of

# The runner's logger: what happened to a job is logged under one name, wherever it is written.
logger = logging.getLogger("pipeline.runner")

FINISHED_REMEMBERED = 100_000


class StateStore(Protocol):
    """Each job's latest state by job id (a Faust table in the worker)."""

    def get(self, job_id: str) -> dict[str, Any] | None: ...

    def set(self, job_id: str, state: dict[str, Any], partition: int) -> Awaitable[object]:
        """Record ``state`` in ``partition``; the awaitable resolves once the state is durable
        (acked by every in-sync replica), where a worker that takes the partition over reads
        it before it runs anything."""
        ...


class ActiveMark:
    """A job's active state and lifecycle record, written only if its handler is still running
    ``after_s`` into the attempt (at once, and waited for, when ``after_s`` is 0).

    Most jobs finish in a few ms, and for them the two records said nothing the terminal record
    does not (it carries ``started_ms``); skipping them halves what a noop job writes. A job that
    runs longer is marked active as before, so a worker that takes its partition over while it
    runs records it as stalled.
    """

    def __init__(self, write: Callable[[], Awaitable[None]]) -> None:
        self._write = write
        self._timer: asyncio.TimerHandle | None = None
        self._written: asyncio.Future[None] | None = None

    async def after(self, after_s: float) -> None:
        """Write the mark once ``after_s`` has passed; with 0, write it now and return once the
        state is durable."""
        if after_s <= 0:
            await self._write()
            return
        self._timer = asyncio.get_running_loop().call_later(after_s, self._fire)

    def _fire(self) -> None:
        self._written = asyncio.ensure_future(self._write())

    async def settle(self) -> None:
        """Before the attempt's outcome is written: drop the mark if it is not due yet, or wait
        for it, so the active state can never land after the terminal one."""
        self.cancel()
        if self._written is not None:
            await self._written

    def cancel(self) -> None:
        """Drop the mark if it is not due yet (a mark being written is left to finish)."""
        if self._timer is not None:
            self._timer.cancel()


@dataclass(frozen=True)
class RunnerTopics:
    """The full topic names one queue's runner sends to."""

    events: str
    dead_letter: str
    delays: Mapping[int, str]  # tier seconds -> topic


class JobRecorder:
    """Writes the outcomes of one queue's jobs."""

    def __init__(
        self,
        *,
        queue: QueueSpec,
        topics: RunnerTopics,
        publisher: Publisher,
        states: StateStore,
        worker_id: str,
        max_job_bytes: int,
    ) -> None:
        self._queue = queue
        self._topics = topics
        self._publisher = publisher
        self._states = states
        self._worker_id = worker_id
        self._max_job_bytes = max_job_bytes
        # Jobs this recorder took to a terminal state, whose terminal records are acked.
        self._done: OrderedDict[str, None] = OrderedDict()
        # Outcomes handed to Kafka since the last settle: (job id, when its handler returned,
        # what resolves once its state and terminal record are acked).
        self._unsettled: list[tuple[str, float | None, Awaitable[object], Awaitable[object]]] = []
        self._settling: set[str] = set()
        # Milliseconds from a handler's return to its outcome being durable: the window in which
        # a crash makes the job run again. Read by /metrics and the chaos suite.
        self.done_window_ms: deque[float] = deque(maxlen=10_000)

    def finished_here(self, job_id: str) -> bool:
        """Whether this recorder took ``job_id`` to its terminal state: acked, or handed to Kafka
        in the batch being run (whose offsets are committed only once it is settled)."""
        return job_id in self._done or job_id in self._settling

    def set_state(
        self, envelope: JobEnvelope, state: JobState, record: IncomingRecord, **outcome: Any
    ) -> Awaitable[object]:
        """Record the job's ``state`` at ``record``; resolves once the state is durable."""
        value = {
            "state": state,
            "attempt": envelope.attempt,
            "topic": record.topic,
            "offset": record.offset,
            "redrive": envelope.redrive,
            "updated_ms": now_ms(),
        }
        if outcome:
            value["outcome"] = outcome  # what the terminal record said, to write it again
        return self._states.set(envelope.job_id, value, record.partition)

    async def mark_active(
        self, envelope: JobEnvelope, record: IncomingRecord, max_attempts: int
    ) -> None:
        """Record the job as active; returns once its state is durable and its lifecycle record
        handed to the producer."""
        await self.set_state(envelope, JobState.ACTIVE, record)
        await self.emit(envelope, EventType.ACTIVE, max_attempts)

    async def finish(
        self,
        record: IncomingRecord,
        envelope: JobEnvelope,
        kind: EventType,
        max_attempts: int,
        *,
        returned: float | None = None,
        **outcome: Any,
    ) -> None:
        """Hand the job's terminal state and terminal lifecycle record to Kafka. The job counts
        as done (and its offset may be committed) only after ``settle``, once both are durable:
        the jobs of a batch share that wait, so it costs one round trip per batch, not per job.
        ``returned`` is when the handler returned (monotonic), for the done window."""
        state_written = self.set_state(envelope, STATE_AFTER[kind], record, **outcome)
        event_written = await self.emit(envelope, kind, max_attempts, **outcome)
        self._unsettled.append((envelope.job_id, returned, state_written, event_written))
        self._settling.add(envelope.job_id)

    async def settle(self) -> None:
        """Return once every outcome handed to Kafka so far is durable, and count those jobs
        done. While Kafka cannot be reached this waits (the sends are repeated); an outcome
        Kafka refuses for good is logged, and its job is not counted done."""
        unsettled, self._unsettled = self._unsettled, []
        for job_id, returned, *writes in unsettled:
            self._settling.discard(job_id)
            try:
                for write in writes:
                    await write
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.error(
                    "the outcome of job %s was not written (%s): its record stays uncommitted "
                    "only if the worker stops before the next commit",
                    job_id,
                    type(exc).__name__,
                )
                continue
            if returned is not None:
                self.done_window_ms.append((time.monotonic() - returned) * 1000)
            self._done[job_id] = None
            if len(self._done) > FINISHED_REMEMBERED:
                self._done.popitem(last=False)

    async def queue_changed(self, opened: bool, cause: str, paused_s: float) -> None:
        """Log and record the queue's breaker opening (paused) or closing (resumed)."""
        if opened:
            logger.warning("queue %s paused: %s; probing until it answers", self._queue.name, cause)
        else:
            logger.warning("queue %s resumed after %.1f s", self._queue.name, paused_s)
        event = lifecycle.queue_event(
            self._queue.name, self._worker_id, paused=opened, cause=cause, paused_s=paused_s
        )
        await self._publisher.publish_soon(
            self._topics.events, key=b"", value=encode_event(event), headers=[]
        )

    async def retry(
        self,
        record: IncomingRecord,
        envelope: JobEnvelope,
        route: RetryLater,
        max_attempts: int,
        exc: Exception,
        secrets: list[str],
        started_ms: int | None = None,
    ) -> EventType:
        """Send the job's next attempt to its delay tier, then record the failure and the wait."""
        delay_s = route.delay_s
        due_at_ms = now_ms() + int(delay_s * 1000)
        following = replace(envelope.next_attempt(), due_at_ms=due_at_ms, target_topic=record.topic)
        await self._publisher.publish(
            self._topics.delays[route.tier_s],
            key=record.key,
            value=record.value,
            headers=following.headers(),
            partition=0,
        )
        self.set_state(envelope, JobState.DELAYED, record)
        message = redact(str(exc) or type(exc).__name__, secrets)
        await self.emit(
            envelope,
            EventType.FAILED,
            max_attempts,
            will_retry=True,
            started_ms=started_ms,
            error_class=type(exc).__name__,
            error_message=message,
        )
        await self.emit(envelope, EventType.RETRYING, max_attempts, due_at_ms=due_at_ms)
        logger.info(
            "job %s (%s) attempt %d/%d failed (%s: %s); retrying in %.1f s",
            envelope.job_id,
            envelope.job_name,
            envelope.attempt,
            max_attempts,
            type(exc).__name__,
            message,
            delay_s,
        )
        return EventType.RETRYING

    async def dead_letter(
        self,
        record: IncomingRecord,
        envelope: JobEnvelope,
        max_attempts: int,
        exc: Exception,
        secrets: list[str],
        duration_ms: int | None = None,
        started_ms: int | None = None,
    ) -> EventType:
        """Send the record to the dead-letter topic with its reasons, then finish the job."""
        message = redact(str(exc) or type(exc).__name__, secrets)
        value, headers = dead_letter_of(
            record,
            job_id=envelope.job_id,
            max_bytes=self._max_job_bytes,
            reasons={
                "dlq-reason": message,
                "dlq-error-class": type(exc).__name__,
                "dlq-attempts": envelope.attempt,
                "dlq-max-attempts": max_attempts,
                "dlq-failed-at": now_ms(),
            },
        )
        await self._publisher.publish(
            self._topics.dead_letter, key=record.key, value=value, headers=headers
        )
        await self.emit(
            envelope,
            EventType.FAILED,
            max_attempts,
            will_retry=False,
            duration_ms=duration_ms,
            started_ms=started_ms,
            error_class=type(exc).__name__,
            error_message=message,
        )
        await self.finish(
            record,
            envelope,
            EventType.DEAD_LETTERED,
            max_attempts,
            error_class=type(exc).__name__,
            error_message=message,
        )
        if isinstance(exc, PermanentJobError):
            logger.error(
                "job %s (%s) dead-lettered: %s: %s",
                envelope.job_id,
                envelope.job_name or "<no key>",
                type(exc).__name__,
                message,
            )
        else:
            # A handler bug or an outage that outlasted every attempt: show where, but only the
            # frames (the exception's own text may hold a secret and is redacted above).
            logger.error(
                "job %s (%s) dead-lettered after %d attempts: %s: %s\n%s",
                envelope.job_id,
                envelope.job_name,
                envelope.attempt,
                type(exc).__name__,
                message,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
        return EventType.DEAD_LETTERED

    async def progress(
        self,
        envelope: JobEnvelope,
        max_attempts: int,
        percent: float,
        bytes_done: int | None = None,
        bytes_total: int | None = None,
    ) -> None:
        """Record how far a running job has got (the handler's ``report_progress``)."""
        await self.emit(
            envelope,
            EventType.PROGRESS,
            max_attempts,
            progress_percent=percent,
            progress_bytes_done=bytes_done,
            progress_bytes_total=bytes_total,
        )

    async def emit(
        self, envelope: JobEnvelope, kind: EventType, max_attempts: int, **fields: Any
    ) -> Awaitable[object]:
        """Hand a lifecycle record to the producer; returns what resolves once it is written.

        Terminal records carry an id derived from the job and attempt, so a copy written again
        after a crash (see ``JobRunner._process``) is recognised as the same record.
        """
        event = lifecycle.attempt_event(
            self._queue.name, envelope, kind, max_attempts, self._worker_id, **fields
        )
        return await self._publisher.publish_soon(
            self._topics.events,
            key=envelope.job_id.encode(),
            value=encode_event(event),
            headers=[],
        )
