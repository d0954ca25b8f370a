"""Faust crontabs that run the scheduled jobs, on the leader only (one firing per schedule
across every worker; a new leader takes over when the old one dies)."""

from __future__ import annotations

import time
from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo

from croniter import croniter

from pipeline.agents.runtime import FaustPublisher
from pipeline.application import app, settings
from pipeline.catalog import JOB_EVENTS
from pipeline.cron import CronRunner, enqueue_daily_digest


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
        await cron_runner().fire(
            "daily-digest", tick_ms, lambda: enqueue_daily_digest(settings, day)
        )
