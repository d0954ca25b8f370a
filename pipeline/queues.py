"""The producer API application code calls to enqueue jobs.

    async with EmailQueue.connect() as queue:
        job_id = await queue.add_otp_email_job(OtpEmailJob(email=..., customer_name=..., otp=...))

Data is validated with the job's model before anything is sent. A job record goes to its queue
topic, keyed by job name, in the partition of its job id; an ``added`` lifecycle record goes to
``job-events``. With ``delay_s`` the job waits in a delay tier first.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Self

from aiokafka import AIOKafkaProducer

from pipeline import lifecycle
from pipeline.admin import ensure_topics
from pipeline.catalog import DELAYS, EMAIL, JOB_EVENTS, MEDIA_UPLOAD, QueueSpec, all_topics
from pipeline.connection import client_options, start_client
from pipeline.delays import delay_tier_for
from pipeline.envelope import Headers, JobEnvelope, check_job_id, job_hash
from pipeline.events import encode_event, event_headers, now_ms
from pipeline.handlers import registry
from pipeline.registry import prepare as prepare_registry
from pipeline.schemas.email import ForgotPasswordEmailJob, OtpEmailJob
from pipeline.schemas.jobs import JobModel, JobName
from pipeline.schemas.media import MediaUploadJob
from pipeline.settings import Settings

# Job ids this process has added recently: a second add with the same id sends nothing (the
# worker's job-state table catches duplicates from other processes).
_RECENT_IDS = 100_000


@dataclass(frozen=True)
class NewJob:
    """One job for ``add_bulk``."""

    name: str
    data: JobModel | Mapping[str, Any]
    job_id: str | None = None
    delay_s: float | None = None
    attempts: int | None = None


@dataclass(frozen=True)
class _Planned:
    """What enqueueing one job sends; ``event`` is None when there is nothing to send."""

    job_id: str
    topic: str = ""
    partition: int = 0
    key: bytes = b""
    value: bytes = b""
    headers: Headers = field(default_factory=list)
    event: bytes | None = None
    event_headers: Headers = field(default_factory=list)
    event_partition: int = 0


class Queue:
    """Enqueues jobs of one queue: ``async with EmailQueue.connect()``, or for any registered
    queue ``async with Queue.connect(queue=queue_named("media-upload"))``."""

    queue: QueueSpec  # set by each subclass, or given to connect()

    def __init__(
        self,
        producer: AIOKafkaProducer,
        settings: Settings,
        partitions: int,
        event_partitions: int,
        queue: QueueSpec | None = None,
    ) -> None:
        if queue is not None:
            self.queue = queue
        self._producer = producer
        self._settings = settings
        self._partitions = partitions
        self._event_partitions = event_partitions
        self._topic = self.queue.topic.name(settings)
        self._events_topic = JOB_EVENTS.name(settings)
        self._recent: OrderedDict[str, None] = OrderedDict()

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, settings: Settings | None = None, *, queue: QueueSpec | None = None
    ) -> AsyncIterator[Self]:
        """Connect with ``settings`` (default: from the environment) to ``queue`` (default: the
        class's); close on exit."""
        settings = settings or Settings()
        queue = queue or cls.queue
        await ensure_topics(settings, [queue.topic, JOB_EVENTS, *DELAYS.values()])
        async with _producer(settings, f"pipeline-{queue.name}-queue") as producer:
            partitions = len(await producer.partitions_for(queue.topic.name(settings)))
            event_partitions = len(await producer.partitions_for(JOB_EVENTS.name(settings)))
            yield cls(producer, settings, partitions, event_partitions, queue)

    async def add(
        self,
        job_name: str,
        data: JobModel | Mapping[str, Any],
        *,
        job_id: str | None = None,
        delay_s: float | None = None,
        attempts: int | None = None,
    ) -> str:
        """Validate and enqueue one job; returns its id once the broker has it."""
        [new_id] = await self.add_bulk([NewJob(job_name, data, job_id, delay_s, attempts)])
        return new_id

    async def add_bulk(self, jobs: Iterable[NewJob]) -> list[str]:
        """Validate every job first, then send them all, with their ``added`` records, and wait
        once: one round trip. A worker may record a job's outcome before its ``added`` lands;
        the monitor reads a job's records in any order (``pipeline.monitoring.apply_event``).
        """
        planned = [self._plan(*self._prepare(job)) for job in jobs]
        fresh: dict[str, _Planned] = {}
        for plan in planned:  # one record per id, the first given
            if plan.event is not None:
                fresh.setdefault(plan.job_id, plan)
        await self._send_all(
            [
                *(
                    (
                        self._events_topic,
                        job_id.encode(),
                        plan.event,
                        plan.event_partition,
                        plan.event_headers,
                    )
                    for job_id, plan in fresh.items()
                    if plan.event is not None
                ),
                *(
                    (plan.topic, plan.key, plan.value, plan.partition, plan.headers)
                    for plan in fresh.values()
                ),
            ]
        )
        # Only now: a send that failed must leave the id free for the caller's retry.
        for job_id in fresh:
            self._remember(job_id)
        return [plan.job_id for plan in planned]

    async def _send_all(self, records: Iterable[tuple[str, bytes, bytes, int, Headers]]) -> None:
        """Send ``records`` in one batch per partition (or more, if one fills up), then wait for
        all of them: far cheaper than a send and a future per record."""
        builders: dict[tuple[str, int], Any] = {}
        sent: list[asyncio.Future[Any]] = []
        for topic, key, value, partition, headers in records:
            builder = builders.get((topic, partition))
            if builder is None:
                builder = builders[topic, partition] = self._producer.create_batch()
            if builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
                sent.append(await self._producer.send_batch(builder, topic, partition=partition))
                builder = builders[topic, partition] = self._producer.create_batch()
                # An empty batch takes any one record, however large.
                builder.append(key=key, value=value, timestamp=None, headers=headers)
        for (topic, partition), builder in builders.items():
            sent.append(await self._producer.send_batch(builder, topic, partition=partition))
        await asyncio.gather(*sent)

    def _prepare(self, job: NewJob) -> tuple[NewJob, JobModel, int]:
        job_type = registry.get(job.name, self.queue)
        model = (
            job.data
            if isinstance(job.data, job_type.model)
            else job_type.model.model_validate(job.data)
        )
        if job.attempts is not None and job.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if job.delay_s is not None and job.delay_s < 0:
            raise ValueError("delay_s must not be negative")
        return job, model, job.attempts or job_type.retry.attempts

    def _plan(self, job: NewJob, model: JobModel, max_attempts: int) -> _Planned:
        job_id = check_job_id(job.job_id) if job.job_id is not None else uuid.uuid4().hex
        if job_id in self._recent:
            return _Planned(job_id)  # added by this process already: send nothing
        # One hash places both records: the job in its queue, the event in job-events.
        hashed = job_hash(job_id)
        now = now_ms()
        due_at_ms = now + int(job.delay_s * 1000) if job.delay_s else None
        envelope = JobEnvelope(
            job_id=job_id,
            job_name=job.name,
            attempt=1,
            enqueued_at_ms=now,
            max_attempts=job.attempts,
            due_at_ms=due_at_ms,
            target_topic=self._topic if due_at_ms else None,
        )
        if due_at_ms is not None and job.delay_s is not None:
            tier = delay_tier_for(job.delay_s, list(DELAYS))
            topic, partition = DELAYS[tier].name(self._settings), 0
        else:
            topic, partition = self._topic, hashed % self._partitions
        event = lifecycle.added(self.queue.name, envelope, max_attempts, timestamp_ms=now)
        return _Planned(
            job_id,
            topic=topic,
            partition=partition,
            key=job.name.encode(),
            value=model.to_wire(),
            headers=envelope.headers(),
            event=encode_event(event),
            event_headers=event_headers(event),
            event_partition=hashed % self._event_partitions,
        )

    def _remember(self, job_id: str) -> None:
        self._recent[job_id] = None
        if len(self._recent) > _RECENT_IDS:
            self._recent.popitem(last=False)


@asynccontextmanager
async def _producer(settings: Settings, client_id: str) -> AsyncIterator[AIOKafkaProducer]:
    # Lifecycle records are framed for the schema registry, when one is set, from the first.
    await prepare_registry(settings)
    producer = AIOKafkaProducer(
        **client_options(settings),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
    )
    await start_client(settings, producer)
    try:
        yield producer
    finally:
        await producer.stop()


class ProducerPublisher:
    """A ``Publisher`` over a producer of its own, for what changes a queue from outside a
    worker: the command line's redrive, discard, pause and resume."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    @classmethod
    @asynccontextmanager
    async def connect(cls, settings: Settings) -> AsyncIterator[Self]:
        """Connect with ``settings``; close on exit."""
        await ensure_topics(settings, all_topics())
        async with _producer(settings, "pipeline-operator") as producer:
            yield cls(producer)

    async def publish(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        headers: Headers,
        partition: int | None = None,
    ) -> None:
        """Send one record and return once the broker has it."""
        await self._producer.send_and_wait(
            topic, value, key=key, partition=partition, headers=headers
        )

    async def publish_soon(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        headers: Headers,
        partition: int | None = None,
    ) -> Awaitable[object]:
        """Hand one record to the producer; awaiting what is returned waits for the broker."""
        sent: Awaitable[object] = await self._producer.send(
            topic, value, key=key, partition=partition, headers=headers
        )
        return sent


class EmailQueue(Queue):
    """The ``email`` queue, with a typed helper per built-in email job."""

    queue = EMAIL

    async def add_otp_email_job(
        self, job: OtpEmailJob, *, job_id: str | None = None, delay_s: float | None = None
    ) -> str:
        """Enqueue a verification-code email."""
        return await self.add(JobName.OTP_EMAIL_VERIFICATION, job, job_id=job_id, delay_s=delay_s)

    async def add_forgot_password_email_job(
        self,
        job: ForgotPasswordEmailJob,
        *,
        job_id: str | None = None,
        delay_s: float | None = None,
    ) -> str:
        """Enqueue a password-reset email."""
        return await self.add(JobName.FORGOT_PASSWORD_EMAIL, job, job_id=job_id, delay_s=delay_s)


class MediaUploadQueue(Queue):
    """The ``media-upload`` queue."""

    queue = MEDIA_UPLOAD

    async def add_media_upload_job(
        self, job: MediaUploadJob, *, job_id: str | None = None, delay_s: float | None = None
    ) -> str:
        """Enqueue moving a staged file into object storage."""
        return await self.add(JobName.MEDIA_UPLOAD, job, job_id=job_id, delay_s=delay_s)
