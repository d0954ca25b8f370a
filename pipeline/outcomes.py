"""Writing what happened to a job: its state in the job-state table, its lifecycle records, the
record of its next attempt in a delay tier, and its dead letter. Free of Faust.

``pipeline.runner`` decides and runs; this class only writes, in the order the crash guarantee
needs (a job is done once its terminal state and terminal record are both acked).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from pipeline import lifecycle
from pipeline.catalog import QueueSpec
from pipeline.decisions import RetryLater
from pipeline.envelope import JobEnvelope, partition_for
from pipeline.errors import PermanentJobError, redact
from pipeline.events import EventType, encode_event, event_headers, now_ms
from pipeline.lifecycle import STATE_AFTER, JobState
from pipeline.records import IncomingRecord, Publisher, dead_letter_of

# The runner's logger: what happened to a job is logged under one name, wherever it is written.
logger = logging.getLogger("pipeline.runner")

FINISHED_REMEMBERED = 100_000


class StateStore(Protocol):
    """Each job's latest state by job id (a Faust table in the worker)."""

    def get(self, job_id: str) -> dict[str, Any] | None: ...

    async def set(self, job_id: str, state: dict[str, Any], partition: int) -> Awaitable[object]:
        """Record ``state`` in ``partition``; awaiting what is returned waits until the state is
        durable (acked by every in-sync replica), where a worker that takes the partition over
        reads it before it runs anything. It must be awaited."""
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


@dataclass
class BatchWrites:
    """What one batch handed to Kafka, awaited before its offsets may be committed."""

    # Every record written (terminal, active, failed, retrying, progress, queue records).
    deliveries: list[Awaitable[object]] = field(default_factory=list)
    # Each finished job: its id, when its handler returned, what to log once it is done, and
    # its state and terminal writes.
    outcomes: list[
        tuple[str, float | None, Callable[[], None] | None, Awaitable[object], Awaitable[object]]
    ] = field(default_factory=list)
    finished: set[str] = field(default_factory=set)

    def merge(self, other: BatchWrites) -> None:
        """Take ``other``'s writes over, leaving it empty."""
        self.deliveries += other.deliveries
        self.outcomes += other.outcomes
        self.finished |= other.finished
        other.deliveries, other.outcomes, other.finished = [], [], set()


# The batch being run in this task and the lanes it started (contextvars follow tasks).
_BATCH: ContextVar[BatchWrites | None] = ContextVar("pipeline_batch", default=None)


@dataclass(frozen=True)
class RunnerTopics:
    """The full topic names one queue's runner sends to."""

    events: str
    dead_letter: str
    delays: Mapping[int, str]  # tier seconds -> topic
    # The events topic's partitions: a job's records go where its ``added`` record went (by
    # the hash of its id, as the producer side places it); None leaves it to the producer.
    events_partitions: int | None = None


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
        # What was written outside any batch (none is, today): settled with the next batch.
        self._loose = BatchWrites()
        # Milliseconds from a handler's return to its outcome being durable: the window in which
        # a crash makes the job run again. Read by /metrics and the chaos suite.
        self.done_window_ms: deque[float] = deque(maxlen=10_000)

    def finished_here(self, job_id: str) -> bool:
        """Whether this recorder took ``job_id`` to its terminal state: acked, or handed to Kafka
        in the batch being run (whose offsets are committed only once it is settled)."""
        return job_id in self._done or job_id in self._writes().finished

    async def set_state(
        self, envelope: JobEnvelope, state: JobState, record: IncomingRecord, **outcome: Any
    ) -> Awaitable[object]:
        """Record the job's ``state`` at ``record``; what is returned resolves once the state
        is durable, and is awaited by ``settle`` in any case."""
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
        return self._handed(await self._states.set(envelope.job_id, value, record.partition))

    def _handed(self, delivery: Awaitable[object]) -> Awaitable[object]:
        # Every record handed to Kafka is awaited at the next settle: the batch's offsets are
        # committed only once all it wrote (active, failed, retrying records too) is durable,
        # and a record sent while Kafka is unreachable is sent again until it is.
        self._writes().deliveries.append(delivery)
        return delivery

    def _writes(self) -> BatchWrites:
        return _BATCH.get(None) or self._loose

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Run a batch of jobs inside: every record written inside (by its lanes, whatever task
        they run in) is awaited at its end, before it returns. Batches of concurrent agents are
        kept apart, so none is counted done on another's acks."""
        writes = BatchWrites()
        writes.merge(self._loose)
        token = _BATCH.set(writes)
        try:
            yield
        finally:
            _BATCH.reset(token)
        await self._settle(writes)

    async def mark_active(
        self, envelope: JobEnvelope, record: IncomingRecord, max_attempts: int
    ) -> None:
        """Record the job as active; returns once its state is durable and its lifecycle record
        handed to the producer."""
        await (await self.set_state(envelope, JobState.ACTIVE, record))
        await self.emit(envelope, EventType.ACTIVE, max_attempts)

    async def finish(
        self,
        record: IncomingRecord,
        envelope: JobEnvelope,
        kind: EventType,
        max_attempts: int,
        *,
        returned: float | None = None,
        on_done: Callable[[], None] | None = None,
        **outcome: Any,
    ) -> None:
        """Hand the job's terminal state and terminal lifecycle record to Kafka. The job counts
        as done (and its offset may be committed) only when its batch ends, once both are durable:
        the jobs of a batch share that wait, so it costs one round trip per batch, not per job.
        ``returned`` is when the handler returned (monotonic), for the done window; ``on_done``
        runs once the job is done."""
        state_written = await self.set_state(envelope, STATE_AFTER[kind], record, **outcome)
        event_written = await self.emit(envelope, kind, max_attempts, **outcome)
        writes = self._writes()
        writes.outcomes.append((envelope.job_id, returned, on_done, state_written, event_written))
        writes.finished.add(envelope.job_id)

    async def _settle(self, writes: BatchWrites) -> None:
        """Return once every record of the batch is durable, and count the jobs it finished
        done. While Kafka cannot be reached this waits (the sends are repeated); a record Kafka
        refuses for good is logged, and a job whose outcome it was is not counted done."""
        refused: set[int] = set()
        for delivery in writes.deliveries:
            try:
                await delivery
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                refused.add(id(delivery))
                logger.error(
                    "Kafka refused a record of this worker for good (%s)", type(exc).__name__
                )
        for job_id, returned, on_done, *outcome in writes.outcomes:
            if any(id(write) in refused for write in outcome):
                logger.error(
                    "job %s finished, but its outcome was not written; a redelivery writes it",
                    job_id,
                )
                continue
            if returned is not None:
                self.done_window_ms.append((time.monotonic() - returned) * 1000)
            self._done[job_id] = None
            if on_done is not None:
                on_done()
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
        self._handed(
            await self._publisher.publish_soon(
                self._topics.events,
                key=b"",
                value=encode_event(event),
                headers=event_headers(event),
            )
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
        await self.set_state(envelope, JobState.DELAYED, record)
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
        partitions = self._topics.events_partitions
        partition = None if partitions is None else partition_for(envelope.job_id, partitions)
        return self._handed(
            await self._publisher.publish_soon(
                self._topics.events,
                key=envelope.job_id.encode(),
                value=encode_event(event),
                headers=event_headers(event),
                partition=partition,
            )
        )
