"""What every worker reads and writes beside its jobs, whatever its role: the queues an operator
paused (``queue-control``, pipeline.pauses) and the workers' heartbeats (``worker-heartbeats``,
pipeline.workers). Plain readers, not agents: every worker must read every record, not its
share of a group's."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import ConsumerRecord

from pipeline.application import app, settings
from pipeline.catalog import QUEUE_CONTROL, WORKERS
from pipeline.events import now_ms
from pipeline.pauses import Pauses
from pipeline.reading import read_topic
from pipeline.workers import HEARTBEAT_S, Roster, heartbeat

logger = logging.getLogger(__name__)

pauses = Pauses()
roster = Roster()
STARTED_MS = now_ms()


async def _follow(topic: str, apply: Callable[[ConsumerRecord[bytes, bytes]], None]) -> None:
    """Apply every record of ``topic``, from its beginning, for the worker's life."""
    while True:
        try:
            async for record in read_topic(settings, topic, follow=True):
                apply(record)
        except Exception:
            # Kafka gone for a while, or the topic deleted under us: what was read stays in
            # force, and reading starts again from the beginning.
            logger.exception("reading %s failed; again in 5 s", topic)
        await asyncio.sleep(5)


def _apply_control(record: ConsumerRecord[bytes, bytes]) -> None:
    queue = (record.key or b"").decode("utf-8", errors="replace")
    was_paused = pauses.is_paused(queue)
    problem = pauses.apply(record.key, record.value)
    if problem:
        logger.warning("ignored: %s", problem)
    elif pauses.is_paused(queue) != was_paused:
        state = "paused" if pauses.is_paused(queue) else "resumed"
        logger.warning("queue %s %s by an operator", queue, state)


@app.task
async def follow_queue_control() -> None:
    """Keep ``pauses`` as queue-control says: first to the topic's end, before any queue's
    jobs run, then following it."""
    topic = QUEUE_CONTROL.name(settings)
    try:
        async for record in read_topic(settings, topic):
            _apply_control(record)
    except Exception:
        # Fail open: an unreadable control topic must not stop every queue.
        logger.exception("reading %s failed: queues run until it can be read", topic)
    pauses.known.set()
    await _follow(topic, _apply_control)


@app.task
async def follow_heartbeats() -> None:
    """Keep ``roster`` as the workers' heartbeats say."""
    await _follow(WORKERS.name(settings), lambda record: roster.apply(record.value))


def _beat(*, stopped: bool = False) -> bytes:
    owned: dict[str, list[int]] = {}
    for tp in app.assignor.assigned_actives():
        # Tables' changelogs and Faust's leader topic go with the topics they serve.
        if not tp.topic.endswith("-changelog") and "__assignor" not in tp.topic:
            owned.setdefault(tp.topic, []).append(tp.partition)
    return heartbeat(
        settings.worker_id,
        role=settings.role,
        web=str(app.conf.canonical_url),
        started_ms=STARTED_MS,
        partitions={topic: sorted(parts) for topic, parts in sorted(owned.items())},
        stopped=stopped,
    )


@app.timer(interval=HEARTBEAT_S)
async def send_heartbeat() -> None:
    """Say this worker is up, and which partitions it owns."""
    try:
        await asyncio.wait_for(
            app.producer.send_and_wait(
                WORKERS.name(settings), settings.worker_id.encode(), _beat(), 0, None, None
            ),
            HEARTBEAT_S,
        )
    except Exception:  # Kafka out of reach: the silence says so, and the next beat goes on
        logger.debug("heartbeat not sent", exc_info=True)


@app.on_before_shutdown.connect
async def say_stopped(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    """A last heartbeat: stopped, not gone (best effort: a killed worker goes silent)."""
    try:
        await asyncio.wait_for(
            app.producer.send_and_wait(
                WORKERS.name(settings),
                settings.worker_id.encode(),
                _beat(stopped=True),
                0,
                None,
                None,
            ),
            2.0,
        )
    except Exception:  # stopping anyway; the heartbeat's silence says the rest
        logger.debug("no last heartbeat", exc_info=True)
