"""Resumes queue partitions that Faust stopped feeding to their agent.

faust-streaming 0.15 can drop the records it fetched while table recovery and the seek to the
committed offsets race after a rebalance: the agent then waits for records the consumer will
never fetch again, and the partition stalls until the next rebalance (see faust-streaming
issues 175 and 640). A stalled partition looks like this: records after the committed offset,
no job running, and the committed offset unchanged since the last check. Seeking it back to its
committed offset makes Faust fetch those records again; the job-state table skips any that had
already run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.agents.email import email_runner
from pipeline.agents.media import media_runner
from pipeline.application import app, settings
from pipeline.topics import QUEUES

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


@app.timer(interval=CHECK_INTERVAL_S)
async def resume_stalled_partitions() -> None:
    """Seek stalled queue partitions back to their committed offsets."""
    runners = (email_runner, media_runner)
    if any(runner.cache_info().currsize and runner().busy for runner in runners):
        _previous.clear()  # work in flight: nothing can be called stalled now
        return
    consumer = app.consumer
    queue_topics = {spec.name(settings) for spec in QUEUES.values()}
    committed = getattr(consumer, "_committed_offset", {})
    current = {
        # No committed offset yet: the group starts from the beginning (auto_offset_reset).
        tp: PartitionProgress(committed.get(tp) or 0, consumer.highwater(tp))
        for tp in consumer.assignment()
        if tp.topic in queue_topics
    }
    for tp in stalled(_previous, current):
        logger.warning(
            "partition %s:%s stalled at offset %s of %s with no job running; fetching it again",
            tp.topic,
            tp.partition,
            current[tp].committed,
            current[tp].end,
        )
        await consumer.seek(tp, current[tp].committed)
    _previous.clear()
    _previous.update(current)
