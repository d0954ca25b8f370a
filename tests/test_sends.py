"""Records handed to the producer a batch per partition (compat/sends.py), on the real broker:
where they land, in what order, and what a failed batch tells its records' waiters."""

from __future__ import annotations

from functools import partial

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline.compat.sends import BatchedSends
from pipeline.partitioning import key_hash
from tests.kafka_utils import read_topic

PARTITIONS = 3


async def _topic(admin: AIOKafkaAdminClient, name: str) -> str:
    await admin.create_topics([NewTopic(name, PARTITIONS, 1)])
    return name


async def test_records_land_in_order_where_kafkas_partitioner_puts_them(
    kafka_bootstrap: str, topic_prefix: str, kafka_admin: AIOKafkaAdminClient
) -> None:
    topic = await _topic(kafka_admin, f"{topic_prefix}sends")
    # Small batches: a partition's records fill several builders, which must keep their order.
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True, max_batch_size=1024
    )
    await producer.start()
    offsets: dict[int, int] = {}
    try:
        sends = BatchedSends(lambda: producer, linger_s=0.005)
        written = []
        for i in range(90):
            # Odd records are placed by their key, even ones by the partition given.
            partition = None if i % 2 else i % PARTITIONS
            record = await sends.send(
                topic, f"job-{i}".encode(), b"x" * 100, partition, [("n", str(i).encode())]
            )
            record.on_written(partial(offsets.__setitem__, i))
            written.append(record)
        for record in written:
            await record  # the first await hands every batch over
    finally:
        await producer.stop()

    landed = await read_topic(kafka_bootstrap, topic)
    assert len(landed) == 90
    seen: dict[int, list[int]] = {}
    for record in landed:
        i = int(dict(record.headers)["n"])
        expected = key_hash(f"job-{i}".encode()) % PARTITIONS if i % 2 else i % PARTITIONS
        assert record.partition == expected
        assert offsets[i] == record.offset
        seen.setdefault(record.partition, []).append(i)
    assert all(order == sorted(order) for order in seen.values())


async def test_a_batch_the_producer_refuses_fails_its_own_records_only(
    kafka_bootstrap: str, topic_prefix: str, kafka_admin: AIOKafkaAdminClient
) -> None:
    topic = await _topic(kafka_admin, f"{topic_prefix}refused")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        sends = BatchedSends(lambda: producer, linger_s=0.005)
        nowhere = await sends.send(topic, b"k", b"lost", PARTITIONS + 4, [])
        kept = await sends.send(topic, b"k", b"kept", 0, [])
        with pytest.raises(Exception):  # noqa: B017, PT011 (aiokafka's own check of the partition)
            await nowhere
        await kept
    finally:
        await producer.stop()
    assert [record.value for record in await read_topic(kafka_bootstrap, topic)] == [b"kept"]
