"""Glue between Faust and the Faust-free runner: publishing, table state, shared services."""

from __future__ import annotations

from functools import cache
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


class FaustPublisher:
    """Publishes through the worker's own producer and waits for the broker's ack."""

    async def publish(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        headers: Headers,
        partition: int | None = None,
    ) -> None:
        """Send one record; returns once it is written (acks=all)."""
        await app.producer.send_and_wait(topic, key, value, partition, None, headers)


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
