"""Follows ``queue-control`` (pipeline.pauses) on every worker that runs jobs: the queues an
operator paused take no new jobs here until resumed."""

from __future__ import annotations

import asyncio
import logging

from pipeline.application import app, settings
from pipeline.catalog import QUEUE_CONTROL
from pipeline.pauses import Pauses
from pipeline.reading import read_topic

logger = logging.getLogger(__name__)

pauses = Pauses()


@app.task
async def follow_queue_control() -> None:
    """Apply every queue-control record, from the topic's beginning, for the worker's life.
    Not a Faust agent: every worker must read every record, not its share of a group's."""
    while True:
        try:
            async for record in read_topic(settings, QUEUE_CONTROL.name(settings), follow=True):
                was_paused = pauses.is_paused(record.key.decode() if record.key else "")
                problem = pauses.apply(record.key, record.value)
                if problem:
                    logger.warning("ignored: %s", problem)
                    continue
                queue = (record.key or b"").decode()
                if pauses.is_paused(queue) != was_paused:
                    logger.warning(
                        "queue %s %s by an operator",
                        queue,
                        "paused" if pauses.is_paused(queue) else "resumed",
                    )
        except Exception:
            # Kafka gone for a while, or the topic deleted under us: the pauses known stay in
            # force, and reading starts again from the beginning.
            logger.exception("reading %s failed; again in 5 s", QUEUE_CONTROL.name(settings))
        await asyncio.sleep(5)
