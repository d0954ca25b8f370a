"""The cron runner's bookkeeping, without Kafka: what it records, and skipping busy firings."""

from __future__ import annotations

import asyncio

from pipeline.cron import CronRunner, load_recipient_source, no_recipients
from pipeline.envelope import Headers
from pipeline.events import EventType, decode_event


class Recorder:
    """Keeps what the runner publishes (the worker gives it the Faust producer instead)."""

    def __init__(self) -> None:
        self.types: list[tuple[str, EventType]] = []

    async def publish(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        headers: Headers,
        partition: int | None = None,
    ) -> None:
        event = decode_event(value)
        self.types.append((event.job_id, event.type))


async def test_a_firing_is_skipped_while_the_previous_one_runs() -> None:
    recorder = Recorder()
    runner = CronRunner(publisher=recorder, events_topic="job-events", worker_id="w")
    release = asyncio.Event()

    async def slow() -> int:
        await release.wait()
        return 7

    assert await runner.fire("digest", 1000, slow) == EventType.ACTIVE
    assert await runner.fire("digest", 2000, slow) == EventType.SKIPPED
    release.set()
    await asyncio.sleep(0.01)
    assert await runner.fire("digest", 3000, slow) == EventType.ACTIVE
    await asyncio.sleep(0.01)
    assert recorder.types == [
        ("digest@1000", EventType.ACTIVE),
        ("digest@2000", EventType.SKIPPED),
        ("digest@1000", EventType.COMPLETED),
        ("digest@3000", EventType.ACTIVE),
        ("digest@3000", EventType.COMPLETED),
    ]


def test_recipient_sources_load_by_name() -> None:
    assert load_recipient_source("pipeline.cron:no_recipients") is no_recipients
