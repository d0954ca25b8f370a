"""The one mechanism around every handler: dedupe, limiter, lifecycle records, retries through
the delay tiers, and dead letters. Free of Faust: the agents hand it records, a publisher and a
state store, so it is tested directly.

Decisions for a record, in order:
1. Too large or no handler for its key: dead letter at once.
2. Its job already completed or was dead-lettered, or it is an older copy of a job that has
   moved on: skipped (a duplicate add or a redelivery), logged, nothing sent.
3. Data fails the model: dead letter. Otherwise ``active``, the handler, then ``completed``.
4. The handler raised: a ``PermanentJobError``, or the last attempt, goes to the dead-letter
   topic; anything else waits in a delay tier and comes back as the next attempt. A handler
   still running after the queue's job timeout is abandoned, recorded as ``stalled`` and
   treated the same way. A record whose job is still ``active`` in the state table (its
   worker died or lost the partition mid-job) is recorded as ``stalled`` and run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from aiolimiter import AsyncLimiter
from pydantic import ValidationError

from pipeline.delays import delay_tier_for
from pipeline.envelope import JobEnvelope
from pipeline.errors import InvalidJobData, JobStalled, PermanentJobError, redact
from pipeline.events import EventType, JobEvent, encode_event, now_ms
from pipeline.jobs import JobContext, JobRegistry, JobType
from pipeline.records import IncomingRecord, Publisher
from pipeline.schemas.jobs import JobModel, QueueName

logger = logging.getLogger(__name__)


class StateStore(Protocol):
    """Each job's latest state by job id (a Faust table in the worker)."""

    def get(self, job_id: str) -> dict[str, Any] | None: ...

    def set(self, job_id: str, state: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class RunnerTopics:
    """The full topic names one queue's runner sends to."""

    events: str
    dead_letter: str
    delays: Mapping[int, str]  # tier seconds -> topic


def describe_validation_error(exc: ValidationError) -> str:
    """Where and why validation failed, without the offending input (it may be a secret)."""
    problems = [
        f"{'.'.join(str(part) for part in error['loc']) or 'value'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False, include_context=False)
    ]
    return "invalid job data: " + "; ".join(problems)


class JobRunner:
    """Runs the records of one queue."""

    def __init__(
        self,
        *,
        queue: QueueName,
        topics: RunnerTopics,
        registry: JobRegistry,
        publisher: Publisher,
        event_publisher: Publisher | None = None,
        states: StateStore,
        services: Any,
        worker_id: str,
        max_job_bytes: int,
        job_timeout_s: float,
        limiter: AsyncLimiter | None = None,
    ) -> None:
        self.queue = queue
        self._topics = topics
        self._registry = registry
        self._publisher = publisher
        # Lifecycle records may go out without waiting for each ack (see build_runner); the
        # records that carry the job on (retries, dead letters) always wait.
        self._event_publisher = event_publisher or publisher
        self._states = states
        self._services = services
        self._worker_id = worker_id
        self._max_job_bytes = max_job_bytes
        self._job_timeout_s = job_timeout_s
        self._limiter = limiter
        self._in_flight: set[str] = set()

    async def process(self, record: IncomingRecord) -> EventType:
        """Take one record to its next state; returns the last lifecycle type it reached."""
        envelope = JobEnvelope.from_record(
            record.key,
            record.headers,
            fallback_id=f"{record.topic}:{record.partition}:{record.offset}",
            timestamp_ms=record.timestamp_ms,
        )
        try:
            if len(record.value) > self._max_job_bytes:
                raise InvalidJobData(
                    f"job record is {len(record.value)} bytes, over the limit of "
                    f"{self._max_job_bytes}"
                )
            job_type = self._registry.get(envelope.job_name, self.queue)
        except PermanentJobError as exc:
            return await self._dead_letter(record, envelope, envelope.max_attempts or 1, exc, [])
        max_attempts = envelope.max_attempts or job_type.retry.attempts
        state = self._states.get(envelope.job_id)
        if envelope.job_id in self._in_flight or not self._should_run(envelope, record, state):
            logger.info(
                "job %s (%s, attempt %d) skipped: it already ran or moved on",
                envelope.job_id,
                envelope.job_name,
                envelope.attempt,
            )
            return EventType.SKIPPED
        if (
            state is not None
            and state["state"] == "active"
            and int(state.get("redrive", 0)) == envelope.redrive
        ):
            # Its worker died, or lost the partition, mid-job (BullMQ's "stalled"): the same
            # attempt runs again here.
            logger.warning(
                "job %s (%s, attempt %d) was interrupted mid-run; running it again",
                envelope.job_id,
                envelope.job_name,
                envelope.attempt,
            )
            await self._emit(envelope, EventType.STALLED, max_attempts)
        self._in_flight.add(envelope.job_id)
        try:
            return await self._run(record, envelope, job_type, max_attempts)
        finally:
            self._in_flight.discard(envelope.job_id)

    @staticmethod
    def _should_run(
        envelope: JobEnvelope, record: IncomingRecord, state: dict[str, Any] | None
    ) -> bool:
        if state is None:
            return True
        generation = int(state.get("redrive", 0))
        if envelope.redrive != generation:
            # A redrive starts the job afresh; copies from before it are stale.
            return envelope.redrive > generation
        if state["state"] == "active":
            # The same record again means the worker died mid-job: run it again.
            return bool(state["offset"] == record.offset and state["topic"] == record.topic)
        if state["state"] == "retrying":
            return envelope.attempt > int(state["attempt"])
        return False  # completed or dead-lettered

    def _set_state(self, envelope: JobEnvelope, state: str, record: IncomingRecord) -> None:
        self._states.set(
            envelope.job_id,
            {
                "state": state,
                "attempt": envelope.attempt,
                "topic": record.topic,
                "offset": record.offset,
                "redrive": envelope.redrive,
                "updated_ms": now_ms(),
            },
        )

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
            return await self._dead_letter(record, envelope, max_attempts, error, [])
        secrets = job.secret_values()
        async with self._limiter or contextlib.nullcontext():
            self._set_state(envelope, "active", record)
            await self._emit(envelope, EventType.ACTIVE, max_attempts)
            context = JobContext(
                job_id=envelope.job_id,
                attempt=envelope.attempt,
                max_attempts=max_attempts,
                services=self._services,
                report_progress=lambda percent, done=None, total=None: self._emit(
                    envelope,
                    EventType.PROGRESS,
                    max_attempts,
                    progress_percent=percent,
                    progress_bytes_done=done,
                    progress_bytes_total=total,
                ),
            )
            started = time.monotonic()
            try:
                try:
                    async with asyncio.timeout(self._job_timeout_s):
                        result = await job_type.handler(job, context)
                except TimeoutError as exc:
                    # A hung handler: recorded as stalled, then retried like any other failure.
                    await self._emit(envelope, EventType.STALLED, max_attempts)
                    raise JobStalled(
                        f"no result after {self._job_timeout_s:g} s; the attempt was abandoned"
                    ) from exc
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                duration_ms = int((time.monotonic() - started) * 1000)
                if isinstance(exc, PermanentJobError) or envelope.attempt >= max_attempts:
                    return await self._dead_letter(
                        record, envelope, max_attempts, exc, secrets, duration_ms
                    )
                return await self._retry(record, envelope, job_type, max_attempts, exc, secrets)
        duration_ms = int((time.monotonic() - started) * 1000)
        self._set_state(envelope, "completed", record)
        await self._emit(
            envelope,
            EventType.COMPLETED,
            max_attempts,
            duration_ms=duration_ms,
            result={k: redact(str(v), secrets) for k, v in (result or {}).items()},
        )
        logger.info(
            "job %s (%s) completed on attempt %d in %d ms",
            envelope.job_id,
            envelope.job_name,
            envelope.attempt,
            duration_ms,
        )
        return EventType.COMPLETED

    async def _retry(
        self,
        record: IncomingRecord,
        envelope: JobEnvelope,
        job_type: JobType[Any],
        max_attempts: int,
        exc: Exception,
        secrets: list[str],
    ) -> EventType:
        delay_s = job_type.retry.delay_s(envelope.attempt)
        due_at_ms = now_ms() + int(delay_s * 1000)
        tier = delay_tier_for(delay_s, list(self._topics.delays))
        following = replace(envelope.next_attempt(), due_at_ms=due_at_ms, target_topic=record.topic)
        await self._publisher.publish(
            self._topics.delays[tier],
            key=record.key,
            value=record.value,
            headers=following.headers(),
            partition=0,
        )
        self._set_state(envelope, "retrying", record)
        message = redact(str(exc) or type(exc).__name__, secrets)
        await self._emit(
            envelope,
            EventType.FAILED,
            max_attempts,
            will_retry=True,
            error_class=type(exc).__name__,
            error_message=message,
        )
        await self._emit(envelope, EventType.RETRYING, max_attempts, due_at_ms=due_at_ms)
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

    async def _dead_letter(
        self,
        record: IncomingRecord,
        envelope: JobEnvelope,
        max_attempts: int,
        exc: Exception,
        secrets: list[str],
        duration_ms: int | None = None,
    ) -> EventType:
        message = redact(str(exc) or type(exc).__name__, secrets)
        reason_headers = [
            ("dlq-reason", message.encode()),
            ("dlq-error-class", type(exc).__name__.encode()),
            ("dlq-attempts", str(envelope.attempt).encode()),
            ("dlq-original-topic", record.topic.encode()),
            ("dlq-original-partition", str(record.partition).encode()),
            ("dlq-original-offset", str(record.offset).encode()),
            ("dlq-failed-at", str(now_ms()).encode()),
        ]
        original = [(k, v) for k, v in record.headers if not k.startswith("dlq-")]
        if not any(k == "job-id" for k, _ in original):
            original.append(("job-id", envelope.job_id.encode()))
        await self._publisher.publish(
            self._topics.dead_letter,
            key=record.key,
            value=record.value,
            headers=original + reason_headers,
        )
        self._set_state(envelope, "dead_lettered", record)
        await self._emit(
            envelope,
            EventType.FAILED,
            max_attempts,
            will_retry=False,
            duration_ms=duration_ms,
            error_class=type(exc).__name__,
            error_message=message,
        )
        await self._emit(
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

    async def _emit(
        self, envelope: JobEnvelope, kind: EventType, max_attempts: int, **fields: Any
    ) -> None:
        event = JobEvent(
            job_id=envelope.job_id,
            queue=self.queue.value,
            job_name=envelope.job_name,
            type=kind,
            attempt=envelope.attempt,
            max_attempts=max_attempts,
            worker_id=self._worker_id,
            **fields,
        )
        await self._event_publisher.publish(
            self._topics.events,
            key=envelope.job_id.encode(),
            value=encode_event(event),
            headers=[],
        )
