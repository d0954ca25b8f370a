"""Records handed to aiokafka's producer one batch per partition instead of one ``send`` each.

A record sent with ``AIOKafkaProducer.send`` costs the worker about 24 us here besides its key
hash: a coroutine chain, a partition lookup and a future of its own, plus Faust's wrapper
around it. A worker writes four records per job (its terminal record, its state, and the
monitor's two writes of its status), so that was the largest cost of a noop job left. Here a
record is appended to an open ``BatchBuilder`` of its partition (about 5 us) and each builder
goes to the producer with one ``send_batch``, the bulk API aiokafka offers for this.

When: once the first record of the open batches has waited the producer's linger (as records
lingered in the producer before), or at once when anyone awaits a record not yet handed over
(a runner settling its batch: a batch of noop jobs hands all its records over in one go). A
builder is closed when it is handed over, so the producer sends it at once rather than
lingering a second time, and nothing else is added to it. Batches go out in the order their
first record came, one flush at a time, so the records of a partition keep their order.

Delivery is aiokafka's, unchanged: the same idempotent producer, ``acks`` and retries; awaiting
a record waits for its batch's ack and raises what the batch raised (``runtime.Delivery`` sends
it again on its own while Kafka cannot be reached).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Generator
from typing import Any, cast

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata
from faust.types import AppT

from pipeline.envelope import Headers
from pipeline.partitioning import default_partitioner


class _Batch:
    """One partition's builder and what awaits it: one future for all its records."""

    __slots__ = ("builder", "callbacks", "count", "handed", "partition", "topic", "written")

    def __init__(self, topic: str, partition: int, builder: Any) -> None:
        self.topic = topic
        self.partition = partition
        self.builder = builder
        self.count = 0
        self.written: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        self.callbacks: list[tuple[int, Callable[[int], None]]] = []
        self.handed = False

    def append(self, key: bytes | None, value: bytes | None, headers: Headers) -> int | None:
        """The record's index in the batch, or None if the builder is full."""
        if self.builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
            return None
        self.count += 1
        return self.count - 1

    def fail(self, error: BaseException) -> None:
        self.written.set_exception(error)
        # Its records' waiters see the error; nobody else need (a monitor write is not waited
        # for), so it is not reported again as never retrieved.
        self.written.exception()

    def resolve(self, sent: asyncio.Future[RecordMetadata]) -> None:
        if sent.cancelled():
            self.written.cancel()
        elif (error := sent.exception()) is not None:
            self.fail(error)
        else:
            metadata = sent.result()
            self.written.set_result(metadata)
            for index, callback in self.callbacks:
                callback(metadata.offset + index)


class Written:
    """One record in a batch: awaiting it hands its batch over if need be, then returns once
    the batch is acked (``None``)."""

    __slots__ = ("_batch", "_index", "_sends")

    def __init__(self, sends: BatchedSends, batch: _Batch, index: int) -> None:
        self._sends = sends
        self._batch = batch
        self._index = index

    def on_written(self, callback: Callable[[int], None]) -> None:
        """Call ``callback`` with the record's offset once it is acked."""
        self._batch.callbacks.append((self._index, callback))

    def __await__(self) -> Generator[Any, None, None]:
        return self._wait().__await__()

    async def _wait(self) -> None:
        if not self._batch.handed:
            await self._sends.flush()
        # Shielded: one record's waiter cancelled must not cancel its batch-mates' wait.
        await asyncio.shield(self._batch.written)


class BatchedSends:
    """The batches of one producer, opened as records come and handed over in order."""

    def __init__(self, producer: Callable[[], AIOKafkaProducer], linger_s: float) -> None:
        self._producer = producer
        self._linger_s = linger_s
        self._open: dict[tuple[str, int], _Batch] = {}
        self._batches: list[_Batch] = []
        self._lock = asyncio.Lock()
        self._flush_due = False
        # The flushes started by the linger timer (the loop keeps only weak references).
        self._flushing: set[asyncio.Task[None]] = set()

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        headers: Headers,
    ) -> Written:
        """Add one record (to the partition Kafka's default partitioner picks for ``key`` when
        ``partition`` is None); await what is returned to wait until it is acked."""
        producer = self._producer()
        if partition is None:
            partition = await self._partition_of(producer, topic, key)
        batch = self._open.get((topic, partition))
        index = batch.append(key, value, headers) if batch is not None else None
        if batch is None or index is None:
            # A full builder stays in line; an empty one takes any one record, however large.
            batch = self._open[topic, partition] = _Batch(topic, partition, producer.create_batch())
            self._batches.append(batch)
            index = batch.append(key, value, headers) or 0
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_later(self._linger_s, self._flush_soon)
        return Written(self, batch, index)

    @staticmethod
    async def _partition_of(producer: AIOKafkaProducer, topic: str, key: bytes | None) -> int:
        await producer.client._wait_on_metadata(topic)
        cluster = producer.client.cluster
        everyone = sorted(cluster.partitions_for_topic(topic))
        return default_partitioner(
            key, everyone, list(cluster.available_partitions_for_topic(topic))
        )

    def _flush_soon(self) -> None:
        self._flush_due = False
        if self._batches:
            task = asyncio.ensure_future(self.flush())
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def flush(self) -> None:
        """Hand every batch opened so far to the producer, oldest first."""
        async with self._lock:
            batches, self._batches, self._open = self._batches, [], {}
            for batch in batches:
                batch.handed = True
                batch.builder.close()
            producer = self._producer()
            for at, batch in enumerate(batches):
                try:
                    sent = await producer.send_batch(
                        batch.builder, batch.topic, partition=batch.partition
                    )
                except asyncio.CancelledError:
                    for left in batches[at:]:
                        left.written.cancel()
                    raise
                except Exception as exc:
                    batch.fail(exc)  # its records' waiters send them again themselves
                else:
                    sent.add_done_callback(batch.resolve)


@functools.cache
def batched_sends(app: AppT) -> BatchedSends:
    """The batches of ``app``'s producer (Faust's keeps one aiokafka producer per worker)."""
    return BatchedSends(
        lambda: cast(Any, app.producer)._ensure_producer(), linger_s=app.conf.producer_linger
    )
