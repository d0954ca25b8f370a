"""Resumes partitions that Faust stopped feeding to their agent.

faust-streaming 0.15 can drop the records it fetched while table recovery and the seek to the
committed offsets race after a rebalance: the agent then waits for records the consumer will
never fetch again, and the partition stalls until the next rebalance (see faust-streaming
issues 175 and 640). A stalled partition looks like this: records after the committed offset,
nothing in progress, and the committed offset unchanged since the last check (the end offset
is asked of the broker). Seeking it back to its committed offset makes Faust fetch those
records again; the job-state table skips jobs that had already run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.agents.email import email_runner
from pipeline.agents.media import media_runner
from pipeline.application import app, settings
from pipeline.schemas.jobs import QueueName
from pipeline.topics import DELAYS, QUEUES

logger = logging.getLogger(__name__)

CHECK_INTERVAL_S = 10.0


@dataclass(frozen=True)
class PartitionProgress:
    """Where one partition stood at a check."""

    committed: int
    end: int | None


def stalled(
    previous: Mapping[Any, PartitionProgress], current: Mapping[Any, PartitionProgress]
) -> list[Any]:
    """Partitions with records after an offset that did not move since the previous check."""
    return [
        tp
        for tp, now in current.items()
        if now.end is not None and now.committed < now.end and previous.get(tp) == now
    ]


_previous: dict[Any, PartitionProgress] = {}


def _watched(topic: str) -> bool:
    """Every topic an agent consumes, except table changelogs, the assignor's topic and the
    delay tiers, whose agents hold records on purpose."""
    delays = {spec.name(settings) for spec in DELAYS.values()}
    return not (
        topic in delays
        or topic in app.tables.changelog_topics
        or topic.endswith("__assignor-__leader")
    )


@app.timer(interval=CHECK_INTERVAL_S)
async def resume_stalled_partitions() -> None:
    """Seek stalled partitions back to their committed offsets."""
    consumer = app.consumer
    runners = {QueueName.EMAIL: email_runner, QueueName.MEDIA_UPLOAD: media_runner}
    # A queue with a job running may hold records for as long as the job takes.
    busy = {
        QUEUES[queue].name(settings)
        for queue, runner in runners.items()
        if runner.cache_info().currsize and runner().busy
    }
    partitions = [tp for tp in consumer.assignment() if _watched(tp.topic) and tp.topic not in busy]
    if not partitions:
        _previous.clear()
        return
    # Ask the broker: the consumer's own idea of the end is stale for a partition it stopped
    # fetching.
    ends = await consumer.highwaters(*partitions)
    committed = getattr(consumer, "_committed_offset", {})
    current = {
        # No committed offset yet: the group starts from the beginning (auto_offset_reset).
        tp: PartitionProgress(committed.get(tp) or 0, ends.get(tp))
        for tp in partitions
    }
    for tp in stalled(_previous, current):
        logger.warning(
            "partition %s:%s stalled at offset %s of %s with nothing in progress; "
            "fetching it again",
            tp.topic,
            tp.partition,
            current[tp].committed,
            current[tp].end,
        )
        # Faust may also have left it out of the partitions it fetches: put it back first.
        consumer.resume_partitions([tp])
        await consumer.seek(tp, current[tp].committed)
    _previous.clear()
    _previous.update(current)
