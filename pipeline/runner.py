"""The one mechanism around every handler: dedupe, limiter, lifecycle records, retries through
the delay tiers, and dead letters. Free of Faust: the agents hand it records, a publisher and a
state store, so it is tested directly. What a record means and where a failure goes are decided by
the pure functions of ``pipeline.decisions``; what happened is written by ``pipeline.outcomes``;
this class runs the handler and sequences the two.

Decisions for a record, in order (none raises: an unforeseen error dead-letters the record):
1. Headers that cannot be read, a record too large (dead-lettered as a reference) or no
   handler for its key: dead letter at once.
2. Its job already completed or was dead-lettered, or it is an older copy of a job that has
   moved on: skipped (a duplicate add or a redelivery), logged, nothing sent; a redelivered
   record of a job another worker finished writes its terminal record again (same event id).
3. Data fails the model: dead letter. Otherwise the handler, ``active`` if it is still running
   after ``active_after_s`` (with 0: before it starts, waited for), then ``completed``: the job
   is done once that state and its lifecycle record are acked, which the batch it came in
   waits for at its end.
4. The handler raised: a dependency that cannot be reached (``DependencyDown``) pauses the
   queue (``pipeline.breaker``) and the job runs again when it is back, same attempt. A
   ``PermanentJobError``, or the last attempt, goes to the dead-letter topic; anything else
   waits in a delay tier and comes back as the next attempt. A handler still running after the
   queue's job timeout is abandoned, recorded as ``stalled`` and treated the same way. A record
   whose job is still ``active`` in the state table (its worker died or lost the partition
   mid-job) is recorded as ``stalled`` and run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from aiolimiter import AsyncLimiter
from pydantic import ValidationError

from pipeline.breaker import CircuitBreaker
from pipeline.catalog import DELAYS, JOB_EVENTS, QueueSpec
from pipeline.decisions import (
    Admission,
    DeadLetter,
    admit,
    route_failure,
)
from pipeline.envelope import JobEnvelope
from pipeline.errors import (
    DependencyDown,
    InternalError,
    InvalidEnvelope,
    InvalidJobData,
    JobStalled,
    PermanentJobError,
    describe_validation_error,
    redact,
)
from pipeline.events import EventType, now_ms
from pipeline.handlers import registry
from pipeline.jobs import JobContext, JobRegistry, JobType
from pipeline.lifecycle import TERMINAL_EVENT_OF, JobState
from pipeline.outcomes import ActiveMark, JobRecorder, RunnerTopics, StateStore
from pipeline.records import IncomingRecord, Publisher, record_id, record_size
from pipeline.schemas.jobs import JobModel
from pipeline.settings import Settings

logger = logging.getLogger(__name__)


SKIPPED = frozenset((Admission.SKIP_REPEAT, Admission.SKIP_STALE, Admission.REWRITE_TERMINAL))


class JobRunner:
    """Runs the records of one queue."""

    def __init__(
        self,
        *,
        queue: QueueSpec,
        topics: RunnerTopics,
        registry: JobRegistry,
        publisher: Publisher,
        states: StateStore,
        services: Any,
        worker_id: str,
        max_job_bytes: int,
        job_timeout_s: float,
        limiter: AsyncLimiter | None = None,
        breaker_max_pause_s: float = 30.0,
        active_after_s: float = 0.0,
    ) -> None:
        self.queue = queue
        self._delay_tiers_s = list(topics.delays)
        self._registry = registry
        self._states = states
        self._services = services
        self._max_job_bytes = max_job_bytes
        self._job_timeout_s = job_timeout_s
        self._limiter = limiter
        self._active_after_s = active_after_s
        self._outcomes = JobRecorder(
            queue=queue,
            topics=topics,
            publisher=publisher,
            states=states,
            worker_id=worker_id,
            max_job_bytes=max_job_bytes,
        )
        self.breaker = CircuitBreaker(
            max_pause_s=breaker_max_pause_s, on_change=self._outcomes.queue_changed
        )
        # Jobs running now, each with the event set when its run is over.
        self._in_flight: dict[str, asyncio.Event] = {}
        self.done_window_ms = self._outcomes.done_window_ms

    async def process_batch(
        self, records: Sequence[IncomingRecord], concurrency: int
    ) -> list[EventType]:
        """Take each record of a batch to its next state, at most ``concurrency`` jobs at a time;
        returns once every outcome is durable (the batch's offsets may then be committed)."""
        reached: list[EventType] = [EventType.UNKNOWN] * len(records)
        pending = iter(enumerate(records))

        async def lane() -> None:
            # Each lane takes the next record when its job is over: no task per job.
            for index, record in pending:
                reached[index] = await self._take(record)

        async with self._outcomes.batch():
            await asyncio.gather(*(lane() for _ in range(min(concurrency, len(records)))))
        return reached

    async def process(self, record: IncomingRecord) -> EventType:
        """Take one record to its next state; returns once its outcome is durable."""
        async with self._outcomes.batch():
            reached = await self._take(record)
        return reached

    async def _take(self, record: IncomingRecord) -> EventType:
        """Take one record to its next state; returns the last lifecycle type it reached, once
        its outcome is handed to Kafka (durable once its batch ends).

        Never raises for anything a record holds: a record that trips an unforeseen error in
        this code is dead-lettered with the error's class, so no record can stop the agent.
        """
        try:
            return await self._process(record)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Only the class and the frames: the exception's text may quote the record.
            logger.error(
                "record %s:%d:%d tripped an internal error (%s); dead-lettering it\n%s",
                record.topic,
                record.partition,
                record.offset,
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)),
            )
            error = InternalError(f"the worker failed on this record ({type(exc).__name__})")
            return await self._outcomes.dead_letter(record, self._unreadable(record), 1, error, [])

    @staticmethod
    def _unreadable(record: IncomingRecord) -> JobEnvelope:
        return JobEnvelope.unreadable(
            record.key, fallback_id=record_id(record), timestamp_ms=record.timestamp_ms
        )

    async def _process(self, record: IncomingRecord) -> EventType:
        try:
            envelope = JobEnvelope.from_record(
                record.key,
                record.headers,
                fallback_id=record_id(record),
                timestamp_ms=record.timestamp_ms,
            )
        except InvalidEnvelope as exc:
            return await self._outcomes.dead_letter(record, self._unreadable(record), 1, exc, [])
        try:
            size = record_size(record)
            if size > self._max_job_bytes:
                raise InvalidJobData(
                    f"job record is {size} bytes, over the limit of {self._max_job_bytes}"
                )
            job_type = self._registry.get(envelope.job_name, self.queue)
        except PermanentJobError as exc:
            return await self._outcomes.dead_letter(
                record, envelope, envelope.max_attempts or 1, exc, []
            )
        max_attempts = envelope.max_attempts or job_type.retry.attempts
        running = self._in_flight.get(envelope.job_id)
        while running is not None:
            # A copy of a job this runner is running (a rebalance delivered its record again):
            # decide once that run is over. Skipping now would let this copy's offset be
            # committed while the job runs, and a crash meanwhile would then lose the job.
            await running.wait()
            running = self._in_flight.get(envelope.job_id)
        state = self._states.get(envelope.job_id)
        admission = admit(
            envelope,
            state,
            topic=record.topic,
            offset=record.offset,
            finished_here=self._outcomes.finished_here(envelope.job_id),
        )
        if admission in SKIPPED:
            logger.info(
                "job %s (%s, attempt %d) skipped: %s",
                envelope.job_id,
                envelope.job_name,
                envelope.attempt,
                "it already ran or moved on"
                if admission is Admission.SKIP_STALE
                else "its record came again",
            )
            if admission is Admission.REWRITE_TERMINAL and state is not None:
                kind = TERMINAL_EVENT_OF[JobState.of(state["state"])]
                await (
                    await self._outcomes.emit(
                        envelope, kind, max_attempts, **state.get("outcome", {})
                    )
                )
            return EventType.SKIPPED
        # Registered before the first await, so a copy that arrives meanwhile waits for it.
        done = self._in_flight[envelope.job_id] = asyncio.Event()
        try:
            if admission is Admission.RUN_STALLED:
                logger.warning(
                    "job %s (%s, attempt %d) was interrupted mid-run; running it again",
                    envelope.job_id,
                    envelope.job_name,
                    envelope.attempt,
                )
                await self._outcomes.emit(envelope, EventType.STALLED, max_attempts)
            return await self._run(record, envelope, job_type, max_attempts)
        finally:
            del self._in_flight[envelope.job_id]
            done.set()

    async def _run(
        self,
        record: IncomingRecord,
        envelope: JobEnvelope,
        job_type: JobType[Any],
        max_attempts: int,
    ) -> EventType:
        try:
            job: JobModel = job_type.model.model_validate_json(record.value)
        except ValidationError as exc:
            error = InvalidJobData(describe_validation_error(exc))
            return await self._outcomes.dead_letter(record, envelope, max_attempts, error, [])
        secrets = job.secret_values()
        started_ms = now_ms()
        # With active_after_ms 0 the job is known to be active before its side effect starts:
        # a worker that takes the partition over then records it as stalled, and while Kafka
        # cannot be reached no email goes out that could not be recorded. Otherwise only jobs
        # that run longer get the mark (see ActiveMark).
        mark = ActiveMark(partial(self._outcomes.mark_active, envelope, record, max_attempts))
        await mark.after(self._active_after_s)
        context = JobContext(
            job_id=envelope.job_id,
            attempt=envelope.attempt,
            max_attempts=max_attempts,
            services=self._services,
            report_progress=partial(self._outcomes.progress, envelope, max_attempts),
        )
        started = time.monotonic()
        try:
            result = await self._call(job_type, job, context, envelope, max_attempts, secrets)
        except asyncio.CancelledError:
            mark.cancel()
            raise
        except Exception as exc:
            await mark.settle()
            duration_ms = int((time.monotonic() - started) * 1000)
            route = route_failure(
                exc,
                attempt=envelope.attempt,
                max_attempts=max_attempts,
                policy=job_type.retry,
                tiers_s=self._delay_tiers_s,
            )
            if isinstance(route, DeadLetter):
                return await self._outcomes.dead_letter(
                    record, envelope, max_attempts, exc, secrets, duration_ms, started_ms
                )
            return await self._outcomes.retry(
                record, envelope, route, max_attempts, exc, secrets, started_ms
            )
        returned = time.monotonic()
        await mark.settle()
        duration_ms = int((returned - started) * 1000)
        await self._outcomes.finish(
            record,
            envelope,
            EventType.COMPLETED,
            max_attempts,
            returned=returned,
            # Logged once the outcome is acked: the line means the job is done for good.
            on_done=partial(
                logger.info,
                "job %s (%s) completed on attempt %d in %d ms",
                envelope.job_id,
                envelope.job_name,
                envelope.attempt,
                duration_ms,
            ),
            duration_ms=duration_ms,
            started_ms=started_ms,
            result={k: redact(str(v), secrets) for k, v in (result or {}).items()},
        )
        return EventType.COMPLETED

    async def _call(
        self,
        job_type: JobType[Any],
        job: JobModel,
        context: JobContext,
        envelope: JobEnvelope,
        max_attempts: int,
        secrets: list[str],
    ) -> Mapping[str, str] | None:
        """Run the handler. While its dependency cannot be reached, wait on the queue's breaker
        and run it again: an outage spends none of the job's attempts."""
        while True:
            probe = await self.breaker.admit()
            try:
                async with self._limiter or contextlib.nullcontext():
                    result = await self._handle(job_type, job, context, envelope, max_attempts)
            except DependencyDown as exc:
                cause = redact(str(exc) or type(exc).__name__, secrets)
                await self.breaker.unreachable(cause, probe=probe)
                probe = False
                logger.info(
                    "job %s (%s) waits for the queue: %s", envelope.job_id, envelope.job_name, cause
                )
            except JobStalled:
                raise  # no answer either way: another job may probe
            except Exception:
                await self.breaker.reachable()  # it answered, if only to refuse
                probe = False
                raise
            else:
                await self.breaker.reachable()
                probe = False
                return result
            finally:
                if probe:
                    self.breaker.abandon_probe()

    async def _handle(
        self,
        job_type: JobType[Any],
        job: JobModel,
        context: JobContext,
        envelope: JobEnvelope,
        max_attempts: int,
    ) -> Mapping[str, str] | None:
        try:
            async with asyncio.timeout(self._job_timeout_s):
                result: Mapping[str, str] | None = await job_type.handler(job, context)
                return result
        except TimeoutError as exc:
            # A hung handler: recorded as stalled, then retried like any other failure.
            await self._outcomes.emit(envelope, EventType.STALLED, max_attempts)
            raise JobStalled(
                f"no result after {self._job_timeout_s:g} s; the attempt was abandoned"
            ) from exc


def runner_for(
    queue: QueueSpec,
    settings: Settings,
    *,
    publisher: Publisher,
    states: StateStore,
    services: Any,
    job_timeout_s: float,
    limiter: AsyncLimiter | None = None,
) -> JobRunner:
    """The runner of ``queue`` with the topics, limits and worker id the settings give, writing
    through ``publisher`` and keeping job state in ``states``."""
    return JobRunner(
        queue=queue,
        topics=RunnerTopics(
            events=JOB_EVENTS.name(settings),
            dead_letter=queue.dead_letter.name(settings),
            delays={seconds: spec.name(settings) for seconds, spec in DELAYS.items()},
            # Checked against the broker at start (admin.check_partitions).
            events_partitions=JOB_EVENTS.partition_count(settings),
        ),
        registry=registry,
        publisher=publisher,
        states=states,
        services=services,
        worker_id=settings.worker_id,
        max_job_bytes=settings.max_job_bytes,
        job_timeout_s=job_timeout_s,
        limiter=limiter,
        breaker_max_pause_s=settings.breaker_max_pause_s,
        active_after_s=settings.active_after_ms / 1000,
    )
