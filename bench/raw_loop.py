"""The baseline: a plain aiokafka consume-then-produce loop, one output record per input.

It commits as the worker does (Faust's defaults: every 2.8 s or 10,000 records, after flushing
the producer) and produces with the worker's producer settings (acks=all, linger 0). It prints
one JSON line: when it produced its last expected output record (epoch ms).

    python -m bench.raw_loop IN_TOPIC OUT_TOPIC GROUP COUNT

It connects as the settings in its environment say (``PIPELINE_KAFKA_*``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition

from pipeline.connection import client_options
from pipeline.settings import Settings

COMMIT_INTERVAL_S = 2.8
COMMIT_EVERY = 10_000


class _Assigned(ConsumerRebalanceListener):  # type: ignore[misc]
    """Notes the first assignment."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def on_partitions_revoked(self, revoked: object) -> None:
        """Nothing to do."""

    async def on_partitions_assigned(self, assigned: object) -> None:
        """The loop may start."""
        self.event.set()


async def run(source: str, sink: str, group: str, count: int) -> None:
    """Copy ``count`` records from ``source`` to ``sink``, then report."""
    connection = client_options(Settings())
    consumer = AIOKafkaConsumer(
        **connection,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(**connection, acks="all", linger_ms=0)
    await producer.start()
    assigned = _Assigned()
    consumer.subscribe([source], listener=assigned)
    await consumer.start()
    try:
        await assigned.event.wait()
        print(json.dumps({"ready": True}), flush=True)
        seen = 0
        pending: dict[TopicPartition, int] = {}
        last_commit = time.monotonic()
        since_commit = 0
        while seen < count:
            batches = await consumer.getmany(timeout_ms=100, max_records=1000)
            for tp, records in batches.items():
                for record in records:
                    await producer.send(sink, record.value, key=record.key, partition=tp.partition)
                    pending[tp] = record.offset + 1
                seen += len(records)
                since_commit += len(records)
            if pending and (
                since_commit >= COMMIT_EVERY or time.monotonic() - last_commit > COMMIT_INTERVAL_S
            ):
                await producer.flush()
                await consumer.commit(dict(pending))
                pending.clear()
                since_commit = 0
                last_commit = time.monotonic()
        await producer.flush()
        finished_ms = time.time() * 1000
        if pending:
            await consumer.commit(dict(pending))
        print(json.dumps({"finished_ms": finished_ms}), flush=True)
    finally:
        await consumer.stop()
        await producer.stop()


if __name__ == "__main__":
    source, sink, group, count = sys.argv[1:5]
    asyncio.run(run(source, sink, group, int(count)))
