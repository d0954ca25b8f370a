"""Cron jobs, free of Faust: what each firing does and how firings are recorded.

A firing does not do the work itself: it enqueues ordinary jobs, which get retries, dead
letters and lifecycle records of their own. Each firing is recorded on ``job-events`` with
queue ``cron`` (``active`` when it starts, ``completed`` with the number of jobs enqueued,
``failed``, or ``skipped`` when the previous firing of the same cron job is still going).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigurationError
from pipeline.events import EventType, encode_event, event_headers
from pipeline.lifecycle import firing_event
from pipeline.queues import EmailQueue, NewJob
from pipeline.records import Publisher
from pipeline.schemas.jobs import JobName
from pipeline.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recipient:
    """Someone who gets the daily digest."""

    email: str
    name: str


RecipientSource = Callable[[Settings], Awaitable[Iterable[Recipient]]]


async def no_recipients(settings: Settings) -> list[Recipient]:
    """The default recipient source: nobody (point the setting at your own)."""
    return []


def load_recipient_source(path: str) -> RecipientSource:
    """The ``module:function`` named by ``path``."""
    module_name, _, attribute = path.partition(":")
    try:
        source: RecipientSource = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigurationError(f"recipient source {path!r} cannot be loaded") from exc
    return source


async def enqueue_daily_digest(settings: Settings, day: str, queue: EmailQueue) -> int:
    """Enqueue one digest email per recipient on ``queue``; returns how many.

    Job ids are made of the day and the address, so a second firing for the same day (a new
    leader, a manual run) sends nobody a second digest.
    """
    source = load_recipient_source(settings.cron_daily_digest_recipients)
    recipients = list(await source(settings))
    if not recipients:
        return 0
    ids = await queue.add_bulk(
        NewJob(
            JobName.DAILY_DIGEST_EMAIL,
            {"email": r.email, "customer_name": r.name, "day": day},
            job_id=f"daily-digest:{day}:{r.email}",
        )
        for r in recipients
    )
    return len(ids)


class CronRunner:
    """Starts firings in the background and records them; skips one whose last run is going."""

    def __init__(self, *, publisher: Publisher, events_topic: str, worker_id: str) -> None:
        self._publisher = publisher
        self._events_topic = events_topic
        self._worker_id = worker_id
        self._running: dict[str, asyncio.Task[None]] = {}

    async def fire(self, name: str, tick_ms: int, work: Callable[[], Awaitable[int]]) -> EventType:
        """Start the firing of cron job ``name`` for the tick at ``tick_ms``."""
        firing_id = f"{name}@{tick_ms}"
        previous = self._running.get(name)
        if previous is not None and not previous.done():
            logger.info("cron %s skipped: the previous firing is still going", name)
            await self._emit(
                firing_id, name, EventType.SKIPPED, error_message="previous still running"
            )
            return EventType.SKIPPED
        await self._emit(firing_id, name, EventType.ACTIVE)
        self._running[name] = asyncio.create_task(self._run(firing_id, name, work))
        return EventType.ACTIVE

    async def _run(self, firing_id: str, name: str, work: Callable[[], Awaitable[int]]) -> None:
        try:
            count = await work()
        except Exception as exc:
            logger.error("cron %s failed: %s: %s", name, type(exc).__name__, exc)
            await self._emit(
                firing_id,
                name,
                EventType.FAILED,
                will_retry=False,
                error_class=type(exc).__name__,
                error_message=str(exc),
            )
            return
        logger.info("cron %s enqueued %d jobs", name, count)
        await self._emit(firing_id, name, EventType.COMPLETED, result={"enqueued": str(count)})

    async def _emit(self, firing_id: str, name: str, kind: EventType, **fields: Any) -> None:
        event = firing_event(firing_id, name, kind, self._worker_id, **fields)
        await self._publisher.publish(
            self._events_topic,
            key=firing_id.encode(),
            value=encode_event(event),
            headers=event_headers(event),
        )
