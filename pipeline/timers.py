"""Faust crontabs that run the scheduled jobs, on the leader only (one firing per schedule
across every worker; a new leader takes over when the old one dies)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from pipeline.agents.runtime import FaustPublisher
from pipeline.application import app, settings
from pipeline.catalog import JOB_EVENTS
from pipeline.cron import CronRunner, enqueue_daily_digest
from pipeline.queues import EmailQueue


class CronQueues:
    """The queue connections cron firings enqueue through: opened at the first firing that
    needs one and kept until the worker stops, not opened again for every firing."""

    def __init__(self) -> None:
        self._open = contextlib.AsyncExitStack()
        self._email: EmailQueue | None = None
        self._opening = asyncio.Lock()

    async def email(self) -> EmailQueue:
        """The email queue's connection."""
        async with self._opening:
            if self._email is None:
                self._email = await self._open.enter_async_context(EmailQueue.connect(settings))
            return self._email

    async def close(self) -> None:
        """Close every connection opened."""
        self._email = None
        await self._open.aclose()


cron_queues = CronQueues()


@app.on_before_shutdown.connect
async def close_cron_queues(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    """Close the cron jobs' queue connections when the worker stops."""
    await cron_queues.close()


@cache
def cron_runner() -> CronRunner:
    """This worker's cron runner."""
    return CronRunner(
        publisher=FaustPublisher(),
        events_topic=JOB_EVENTS.name(settings),
        worker_id=settings.worker_id,
    )


def nearest_tick_ms(schedule: str, zone: ZoneInfo) -> int:
    """The scheduled time closest to now: the firing's identity, whatever the timer's jitter."""
    now = datetime.now(zone)
    ticks = croniter(schedule, now)
    previous, following = ticks.get_prev(float), croniter(schedule, now).get_next(float)
    nearest = min((previous, following), key=lambda tick: abs(tick - time.time()))
    return int(nearest * 1000)


if settings.cron_daily_digest_enabled:
    _digest_zone = ZoneInfo(settings.cron_daily_digest_timezone)

    @app.crontab(settings.cron_daily_digest_schedule, timezone=_digest_zone, on_leader=True)
    async def daily_digest() -> None:
        """Enqueue the day's digest emails."""
        tick_ms = nearest_tick_ms(settings.cron_daily_digest_schedule, _digest_zone)
        day = datetime.fromtimestamp(tick_ms / 1000, _digest_zone).date().isoformat()

        async def enqueue() -> int:
            return await enqueue_daily_digest(settings, day, await cron_queues.email())

        await cron_runner().fire("daily-digest", tick_ms, enqueue)
