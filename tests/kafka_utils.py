"""Small waits and look-ups on the real broker, shared by the integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient

from pipeline import reading
from pipeline.catalog import JOB_EVENTS
from pipeline.connection import client_options
from pipeline.events import EventType, JobEvent, decode_event
from pipeline.settings import Settings


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout_s: float = 30.0, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


async def group_members(admin: AIOKafkaAdminClient, group_id: str) -> int:
    """How many members the consumer group has right now."""
    responses = await admin.describe_consumer_groups([group_id])
    groups = [g for response in responses for g in response.to_object()["groups"]]
    return sum(len(g["members"]) for g in groups if g["group"] == group_id)


class EventLog:
    """Collects every lifecycle record on the settings' job-events topic, from the beginning."""

    def __init__(self, settings: Settings) -> None:
        self.topic = JOB_EVENTS.name(settings)
        self.events: list[JobEvent] = []
        self.raw: list[bytes] = []
        # Records whose headers do not name what their value holds (pipeline.events.event_headers).
        self.mislabelled: list[str] = []
        self._consumer = AIOKafkaConsumer(
            self.topic, **client_options(settings), auto_offset_reset="earliest", group_id=None
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for record in self._consumer:
            self.raw.append(record.value)
            event = decode_event(record.value)
            self.events.append(event)
            headers = {key: value.decode() for key, value in record.headers}
            named = (headers.get("event-type"), headers.get("queue"), headers.get("job-name"))
            if named != (event.type.value, event.queue, event.job_name) or not headers.get(
                "content-type", ""
            ).startswith("application/vnd.apache.avro+binary"):
                self.mislabelled.append(f"{event.type.value} of {event.job_id!r}: {headers}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    def of(self, job_id: str) -> list[JobEvent]:
        """The records of one job, in order."""
        return [e for e in self.events if e.job_id == job_id]

    def types(self, job_id: str) -> list[str]:
        return [e.type.value for e in self.of(job_id)]

    async def wait_for(
        self, job_ids: Iterable[str], kind: EventType, timeout_s: float = 60.0
    ) -> dict[str, JobEvent]:
        """Wait until each job has a record of type ``kind``; returns the first of each."""
        wanted = list(job_ids)

        async def check() -> dict[str, JobEvent] | None:
            found = {}
            for event in self.events:
                if event.type == kind and event.job_id in wanted:
                    found.setdefault(event.job_id, event)
            return found if len(found) == len(wanted) else None

        result: dict[str, JobEvent] = await eventually(
            check, timeout_s=timeout_s, what=f"{kind.value} records for {len(wanted)} jobs"
        )
        return result


async def read_topic(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record ``topic`` holds now."""
    settings = Settings(kafka_bootstrap_servers=bootstrap)
    return [record async for record in reading.read_topic(settings, topic)]
