"""Glue between Faust and the Faust-free runner: publishing, table state, shared services."""

from __future__ import annotations

import asyncio
import logging
from functools import cache, partial
from typing import Any

import faust
from aiolimiter import AsyncLimiter

from pipeline.application import app, settings
from pipeline.envelope import Headers
from pipeline.handlers import registry
from pipeline.records import IncomingRecord
from pipeline.runner import JobRunner, RunnerTopics
from pipeline.schemas.jobs import QueueName
from pipeline.services import Services
from pipeline.topics import DEAD_LETTERS, DELAYS, JOB_EVENTS

logger = logging.getLogger(__name__)


class FaustPublisher:
    """Publishes through the worker's own producer.

    With ``wait`` (the default) each record is waited for until the broker has it (acks=all).
    Without it the record is only handed to the producer: inside an agent that is enough,
    because Faust flushes the producer before it commits the offsets of the records being
    processed, so a job's records are on the broker before the job counts as consumed. A record
    that still fails is logged.
    """

    def __init__(self, *, wait: bool = True) -> None:
        self._wait = wait

    async def publish(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        headers: Headers,
        partition: int | None = None,
    ) -> None:
        """Send one record; with ``wait``, return once it is written."""
        if self._wait:
            await app.producer.send_and_wait(topic, key, value, partition, None, headers)
            return
        sent = asyncio.ensure_future(
            await app.producer.send(topic, key, value, partition, None, headers)
        )
        sent.add_done_callback(partial(_log_failure, topic))


def _log_failure(topic: str, sent: asyncio.Future[Any]) -> None:
    if not sent.cancelled() and (exc := sent.exception()) is not None:
        logger.error("a record for %s was not written: %r", topic, exc)


class TableStateStore:
    """A ``StateStore`` over a Faust table (changelog-backed, so it survives restarts)."""

    def __init__(self, table: faust.types.TableT[str, dict[str, Any]]) -> None:
        self._table = table

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job's latest state, or None."""
        value = self._table.get(job_id)
        return dict(value) if value else None

    def set(self, job_id: str, state: dict[str, Any]) -> None:
        """Record the job's state (written to the current event's partition)."""
        self._table[job_id] = state


@cache
def services() -> Services:
    """The worker's services, built on first use and shared by every agent."""
    return Services.from_settings(settings)


@app.on_before_shutdown.connect
async def close_services(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    """Close SMTP connections (and the like) when the worker stops."""
    if services.cache_info().currsize:
        await services().close()


def build_runner(
    queue: QueueName,
    states: faust.types.TableT[str, dict[str, Any]],
    job_timeout_s: float,
    limiter: AsyncLimiter | None = None,
) -> JobRunner:
    """The job runner of ``queue``, wired to this worker's producer, table and services."""
    return JobRunner(
        queue=queue,
        topics=RunnerTopics(
            events=JOB_EVENTS.name(settings),
            dead_letter=DEAD_LETTERS[queue].name(settings),
            delays={seconds: spec.name(settings) for seconds, spec in DELAYS.items()},
        ),
        registry=registry,
        publisher=FaustPublisher(),
        event_publisher=FaustPublisher(wait=False),
        states=TableStateStore(states),
        services=services(),
        worker_id=settings.worker_id,
        max_job_bytes=settings.max_job_bytes,
        job_timeout_s=job_timeout_s,
        limiter=limiter,
    )


def incoming(event: faust.EventT[bytes]) -> IncomingRecord:
    """The runner's view of a Faust event."""
    message = event.message
    headers = event.headers or {}
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    return IncomingRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=int(message.timestamp * 1000),
        key=message.key,
        value=message.value if isinstance(message.value, bytes) else bytes(message.value or b""),
        headers=[(k, v if isinstance(v, bytes) else str(v).encode()) for k, v in pairs],
    )
