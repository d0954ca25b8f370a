"""Reading a topic from its beginning (pipeline.reading), on the real broker."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline.reading import read_topic
from pipeline.settings import Settings


async def test_a_topic_is_read_to_the_end_it_had_across_partitions(
    pipeline_settings: Settings,
    kafka_admin: AIOKafkaAdminClient,
    producer: AIOKafkaProducer,
    topic_prefix: str,
) -> None:
    topic = f"{topic_prefix}reading"
    await kafka_admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    for index in range(30):
        await producer.send_and_wait(topic, f"{index}".encode(), partition=index % 3)

    values = [record.value async for record in read_topic(pipeline_settings, topic)]
    assert sorted(int(v) for v in values if v is not None) == list(range(30))

    # With follow it keeps going past that end.
    seen: list[bytes] = []

    async def follow() -> None:
        async for record in read_topic(pipeline_settings, topic, follow=True):
            assert record.value is not None
            seen.append(record.value)
            if len(seen) == 31:
                return

    following = asyncio.create_task(follow())
    await producer.send_and_wait(topic, b"30", partition=0)
    await asyncio.wait_for(following, timeout=30)
    assert b"30" in seen


async def test_a_missing_topic_reads_as_empty(
    pipeline_settings: Settings, topic_prefix: str
) -> None:
    assert [r async for r in read_topic(pipeline_settings, f"{topic_prefix}none")] == []
