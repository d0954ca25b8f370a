"""Writing what happened to a job: its state in the job-state table, its lifecycle records, the
record of its next attempt in a delay tier, and its dead letter. Free of Faust.

``pipeline.runner`` decides and runs; this class only writes, in the order the crash guarantee
needs (a job is done once its terminal state and terminal record are both acked).
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections import OrderedDict
from collections.abc import Awaitable, Mapping
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

    def finished_here(self, job_id: str) -> bool:
        """Whether this recorder took ``job_id`` to its terminal state (and it is acked)."""
        return job_id in self._done

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

    async def finish(
        self,
        record: IncomingRecord,
        envelope: JobEnvelope,
        kind: EventType,
        max_attempts: int,
        **outcome: Any,
    ) -> None:
        """Record the job's terminal state and its terminal lifecycle record, and return once
        both are durable: only then does the job count as done (and its offset get committed).
        Concurrent jobs share the producer's batches, so this costs a round trip per batch."""
        state_written = self.set_state(envelope, STATE_AFTER[kind], record, **outcome)
        event_written = await self.emit(envelope, kind, max_attempts, **outcome)
        await asyncio.gather(state_written, event_written)
        self._done[envelope.job_id] = None
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
