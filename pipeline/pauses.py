"""Queues an operator paused, kept on the compacted ``queue-control`` topic. Free of Faust.

A pause is a record keyed by the queue's name: every worker reads the topic from its beginning
and follows it, so all of them stop taking new jobs of the queue within about a fetch wait of
the record (jobs already running finish), and a worker started later knows it too. Resuming
writes the queue's record again, unpaused. Anyone who can produce to the topic can pause:
the command line writes it directly, no worker needs to be up.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pipeline import lifecycle
from pipeline.catalog import JOB_EVENTS, QUEUE_CONTROL, QueueSpec
from pipeline.events import encode_event, event_headers, now_ms
from pipeline.reading import read_topic
from pipeline.records import Publisher
from pipeline.settings import Settings

BY_OPERATOR = {True: "paused by an operator", False: "resumed by an operator"}


def control_value(paused: bool, by: str) -> bytes:
    """The record value that pauses (or resumes) a queue."""
    return json.dumps({"paused": paused, "at_ms": now_ms(), "by": by}).encode()


async def set_paused(
    settings: Settings, queue: QueueSpec, publisher: Publisher, *, paused: bool, by: str
) -> None:
    """Pause or resume ``queue`` on every worker; a ``queue_paused``/``queue_resumed`` lifecycle
    record tells job-events readers (and the dashboard) that an operator did it."""
    await publisher.publish(
        QUEUE_CONTROL.name(settings),
        key=queue.name.encode(),
        value=control_value(paused, by),
        headers=[],
        partition=0,
    )
    event = lifecycle.queue_event(
        queue.name, by, paused=paused, cause=BY_OPERATOR[paused], paused_s=0.0
    )
    await publisher.publish(
        JOB_EVENTS.name(settings), key=b"", value=encode_event(event), headers=event_headers(event)
    )


class Pauses:
    """Which queues are paused now, as read from queue-control, and waiting until one is not."""

    def __init__(self) -> None:
        self._paused: dict[str, dict[str, Any]] = {}
        self._resumed: dict[str, asyncio.Event] = {}
        # Set once the topic has been read to its end: until then no queue is known to run.
        self.known = asyncio.Event()

    def apply(self, key: bytes | None, value: bytes | None) -> str | None:
        """Take one queue-control record; returns a problem with it, if any (the record is then
        ignored: a hostile or mistaken producer must not pause anything by accident)."""
        queue = (key or b"").decode("utf-8", errors="replace")
        if not queue:
            return "a queue-control record without a queue name as its key"
        try:
            control = json.loads(value) if value else {"paused": False}
        except ValueError:
            return f"queue-control record for {queue!r} is not JSON"
        if not isinstance(control, dict) or not isinstance(control.get("paused"), bool):
            return f'queue-control record for {queue!r} has no "paused": true|false'
        event = self._resumed.setdefault(queue, _set_event())
        if control["paused"]:
            self._paused[queue] = control
            event.clear()
        else:
            self._paused.pop(queue, None)
            event.set()
        return None

    def is_paused(self, queue: str) -> bool:
        """Whether an operator paused ``queue``."""
        return queue in self._paused

    def paused(self) -> dict[str, dict[str, Any]]:
        """The paused queues with when and by whom: ``{queue: {"at_ms", "by"}}``."""
        return {
            queue: {"at_ms": c.get("at_ms"), "by": c.get("by")} for queue, c in self._paused.items()
        }

    async def until_resumed(self, queue: str) -> None:
        """Return once the pauses are known and ``queue`` is not paused: a worker started while
        its queue is paused takes none of its jobs."""
        await self.known.wait()
        await self._resumed.setdefault(queue, _set_event()).wait()


def _set_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


async def read_pauses(settings: Settings) -> Pauses:
    """The queues paused now, read from queue-control to its end (the command line's view)."""
    pauses = Pauses()
    async for record in read_topic(settings, QUEUE_CONTROL.name(settings)):
        pauses.apply(record.key, record.value)
    return pauses
