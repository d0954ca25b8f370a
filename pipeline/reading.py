"""Reading a topic from its beginning, the one way the project does it. Free of Faust.

Every partition is assigned explicitly (no consumer group, nothing committed), so a reader never
waits for a rebalance and never moves any group's offsets. "To its end" means the end offsets the
topic had when reading began: a topic that keeps growing still returns.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from pipeline.admin import partition_counts
from pipeline.connection import client_options
from pipeline.settings import Settings


async def read_topic(
    settings: Settings, topic: str, *, follow: bool = False
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` from its beginning, up to its end; with ``follow``, on and on.
    A topic that does not exist reads as empty."""
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        count = (await partition_counts(settings, [topic])).get(topic, 0)
        if not count:
            return
        partitions = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends: Mapping[TopicPartition, int] = await consumer.end_offsets(partitions)
        while follow or await _behind(consumer, ends):
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    yield record
    finally:
        await consumer.stop()


async def _behind(consumer: AIOKafkaConsumer, ends: Mapping[TopicPartition, int]) -> bool:
    for partition, end in ends.items():
        if await consumer.position(partition) < end:
            return True
    return False


async def find_record(
    settings: Settings,
    topic: str,
    partition: int,
    since_ms: int,
    match: Callable[[ConsumerRecord[bytes, bytes]], bool],
    *,
    max_records: int = 20_000,
) -> ConsumerRecord[bytes, bytes] | None:
    """The first record of ``partition`` of ``topic`` written from ``since_ms`` on that
    ``match`` accepts, looking at no more than ``max_records``: a bounded search from the offset
    Kafka's time index gives, not a scan of the whole log."""
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        where = TopicPartition(topic, partition)
        consumer.assign([where])
        found = (await consumer.offsets_for_times({where: max(since_ms, 0)})).get(where)
        if found is None:
            return None  # nothing written since
        end = (await consumer.end_offsets([where]))[where]
        consumer.seek(where, found.offset)
        seen = 0
        while seen < max_records and await consumer.position(where) < end:
            for record in (await consumer.getmany(where, timeout_ms=500)).get(where, []):
                seen += 1
                if match(record):
                    return record
        return None
    finally:
        await consumer.stop()
