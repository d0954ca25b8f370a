"""Glue between Faust and the Faust-free runner: publishing, table state, shared services."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Generator, Mapping
from functools import cache, partial
from typing import Any, cast

import faust
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiolimiter import AsyncLimiter
from faust.types import Message

from pipeline.application import app, settings
from pipeline.catalog import QueueSpec
from pipeline.compat import tables
from pipeline.compat.sends import batched_sends
from pipeline.envelope import Headers, partition_for
from pipeline.records import IncomingRecord
from pipeline.runner import JobRunner, runner_for
from pipeline.services.bundle import Services

logger = logging.getLogger(__name__)


async def until_written(
    send: Callable[[], Awaitable[object]], what: str, first: Awaitable[object] | None = None
) -> None:
    """Await ``first`` (a send already made), else ``send()``; while Kafka cannot be reached,
    ``send()`` again after a growing pause, for as long as it takes."""
    pause_s = 0.5
    while True:
        try:
            await (first if first is not None else send())
            return
        except KafkaError as exc:
            if not exc.retriable and not isinstance(exc, KafkaConnectionError):
                raise
            logger.warning(
                "Kafka did not take a record for %s (%s); sending it again in %.1f s",
                what,
                type(exc).__name__,
                pause_s,
            )
        first = None
        await asyncio.sleep(pause_s)
        # Short pauses: until this record is written its job is not done, and a crash
        # meanwhile repeats it, so it must go out soon after Kafka is back.
        pause_s = min(pause_s * 2, 2.0)


class FaustPublisher:
    """Publishes through the worker's own producer (idempotent, acks=all: see compat/transport.py).

    A send that fails because Kafka cannot be reached is sent again after a growing pause, for
    as long as it takes: a broker outage holds the job where it is instead of failing it, and
    the worker needs no restart when the broker is back. The idempotent producer keeps the
    retries of one send from writing it twice.
    """

    async def publish(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        headers: Headers,
        partition: int | None = None,
    ) -> None:
        """Send one record and return once it is written."""
        await until_written(
            partial(app.producer.send_and_wait, topic, key, value, partition, None, headers),
            topic,
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
        """Hand one record to the producer; awaiting what is returned waits until it is
        written."""
        # In the producer's batch of its partition (compat/sends.py): sent by the next flush.
        sent = await batched_sends(app).send(topic, key, value, partition, headers)
        resend = partial(app.producer.send_and_wait, topic, key, value, partition, None, headers)
        return Delivery(sent, resend, topic)


class Delivery:
    """A record handed to the producer. Awaiting it waits for the broker's ack and, while Kafka
    cannot be reached, sends the record again (``until_written``); awaiting it again returns at
    once. No task runs for it meanwhile: the runner awaits every delivery of a batch once, when
    it settles the batch, so a record costs no task of its own."""

    __slots__ = ("_first", "_resend", "_what", "_written")

    def __init__(
        self, first: Awaitable[object], resend: Callable[[], Awaitable[object]], what: str
    ) -> None:
        self._first = first
        self._resend = resend
        self._what = what
        self._written = False

    def __await__(self) -> Generator[Any, None, None]:
        return self._wait().__await__()

    async def _wait(self) -> None:
        if not self._written:
            await until_written(self._resend, self._what, first=self._first)
            self._written = True


class TableStateStore:
    """A ``StateStore`` over a Faust table (changelog-backed, so it survives restarts)."""

    def __init__(self, table: faust.types.TableT[str, dict[str, Any]]) -> None:
        self._table = table

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job's latest state, or None."""
        # Tables are partitioned like their queue's topic, by job id (envelope.partition_for).
        partition = partition_for(job_id, cast(int, self._table.partitions))  # declared: topics.py
        value = tables.get(self._table, job_id, partition)
        return dict(value) if value else None

    async def set(self, job_id: str, state: dict[str, Any], partition: int) -> Awaitable[object]:
        """Record the job's state; returns once its changelog record is handed to the producer,
        with what resolves once it is acked.

        Not ``table[key] = value``: that drops the future, and Faust's commit only waits
        0.1 s for the producer buffer to drain, so an offset could be committed (or the job
        reported done) ahead of the state that makes its redelivery a no-op.
        """
        change = tables.stage(self._table, job_id, state, partition)
        sent = await tables.send(self._table, change)

        async def resend() -> None:
            await (await tables.send(self._table, change))

        return Delivery(sent, resend, self._table.name)


@cache
def services() -> Services:
    """The worker's services, built on first use and shared by every agent."""
    return Services.from_settings(settings)


@app.on_before_shutdown.connect
async def close_services(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    """Close SMTP connections (and the like) when the worker stops."""
    if services.cache_info().currsize:
        await services().close()


# The runners this worker built, by queue: /metrics reads their breakers and done windows.
runners: dict[str, JobRunner] = {}
# The job-state table of each queue this worker consumes, by queue name.
job_state_tables: dict[str, faust.types.TableT[str, dict[str, Any]]] = {}


def build_runner(
    queue: QueueSpec,
    states: faust.types.TableT[str, dict[str, Any]],
    job_timeout_s: float,
    limiter: AsyncLimiter | None = None,
) -> JobRunner:
    """The job runner of ``queue``, wired to this worker's producer, table and services."""
    runner = runners[queue.name] = runner_for(
        queue,
        settings,
        publisher=FaustPublisher(),
        states=TableStateStore(states),
        services=services(),
        job_timeout_s=job_timeout_s,
        limiter=limiter,
    )
    return runner


def incoming(message: Message) -> IncomingRecord:
    """The runner's view of a record Faust fetched."""
    # The message's headers as they came: the event's are a dict, where a repeated header
    # (a forged second job-id) would silently replace the first.
    headers = message.headers or []
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    return IncomingRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=int(message.timestamp * 1000),
        key=message.key,
        value=message.value if isinstance(message.value, bytes) else bytes(message.value or b""),
        # A header with a null value (Kafka allows it) reads as an empty one: absent.
        headers=[(k, v if isinstance(v, bytes) else b"") for k, v in pairs],
    )
