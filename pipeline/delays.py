"""Delay tiers: where retried and delayed records wait until they are due.

A record enters the longest tier not longer than its remaining wait; a tier agent holds each
record until the tier's wait has passed (or the record is due), then sends it to its queue
when due, else to the tier that fits the rest. Within a tier records come due in the order they
arrived, so waiting for the head never holds back one that is due sooner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence

from pipeline.envelope import DUE_AT, TARGET_TOPIC, JobEnvelope, partition_for
from pipeline.events import now_ms
from pipeline.records import IncomingRecord, Publisher

logger = logging.getLogger(__name__)


def delay_tier_for(remaining_s: float, tiers: Sequence[int]) -> int:
    """The longest tier not longer than ``remaining_s`` (the shortest for shorter waits)."""
    fitting = [tier for tier in tiers if tier <= remaining_s]
    return max(fitting) if fitting else min(tiers)


class DelayForwarder:
    """Holds records in a delay tier until due, then sends them on (to their queue when due,
    else to the tier that fits the rest of the wait)."""

    def __init__(
        self,
        *,
        publisher: Publisher,
        delay_topics: Mapping[int, str],
        partitions: Mapping[str, int],
    ) -> None:
        self._publisher = publisher
        self._delay_topics = delay_topics
        self._partitions = partitions  # queue topic -> partition count

    async def process(self, record: IncomingRecord, tier_s: int) -> None:
        """Wait for ``record`` (consumed from tier ``tier_s``) and forward it."""
        envelope = JobEnvelope.from_record(
            record.key,
            record.headers,
            fallback_id=f"{record.topic}:{record.partition}:{record.offset}",
            timestamp_ms=record.timestamp_ms,
        )
        target = envelope.target_topic
        if target is None or target not in self._partitions:
            logger.error("delayed record %s has no known target topic; dropped", envelope.job_id)
            return
        due_at_ms = envelope.due_at_ms or record.timestamp_ms
        release_at_ms = min(due_at_ms, record.timestamp_ms + tier_s * 1000)
        wait_s = (release_at_ms - now_ms()) / 1000
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        remaining_s = (due_at_ms - now_ms()) / 1000
        if remaining_s > 0.05:
            tier = delay_tier_for(remaining_s, list(self._delay_topics))
            await self._publisher.publish(
                self._delay_topics[tier],
                key=record.key,
                value=record.value,
                headers=list(record.headers),
                partition=0,
            )
            return
        headers = [(k, v) for k, v in record.headers if k not in (DUE_AT, TARGET_TOPIC)]
        await self._publisher.publish(
            target,
            key=record.key,
            value=record.value,
            headers=headers,
            partition=partition_for(envelope.job_id, self._partitions[target]),
        )
