"""Faust's aiokafka transport, with an idempotent producer and one fix: seeking back to
committed offsets also rewinds partitions that have no committed offset yet.

Faust seeks every assigned partition back to its committed offset whenever it drops records it
had fetched: when records arrive while a rebalance has paused the flow, and after every
rebalance. aiokafka's ``seek_to_committed`` only seeks partitions whose committed offset is above
0, so a partition nobody has committed yet (a new topic, or one that was empty until now) keeps
the position past the dropped records. Its next records are then processed and committed, and
the dropped ones are lost for good. With two workers this lost about one record in eight
written during a rebalance. Such a partition is rewound to its beginning instead, as
``auto_offset_reset = earliest`` means; records that had already been handled before the drop
are skipped by the job-state table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from faust.transport.drivers import aiokafka as driver
from faust.types import TP


class ConsumerThread(driver.AIOKafkaConsumerThread):
    """The consumer thread, seeking never-committed partitions to their beginning."""

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek every assigned partition to its committed offset, or to its beginning."""
        result: Mapping[TP, int] = await self.call_thread(self._seek_to_committed)
        return result

    async def _seek_to_committed(self) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        committed: Mapping[TP, int] = await consumer.seek_to_committed()
        # Table changelogs are positioned by Faust's recovery, never by committed offsets.
        changelogs = self.app.tables.changelog_topics
        uncommitted = [
            tp for tp, offset in committed.items() if not offset and tp.topic not in changelogs
        ]
        if uncommitted:
            await consumer.seek_to_beginning(*uncommitted)
        return committed


class Consumer(driver.Consumer):
    """The consumer, run by :class:`ConsumerThread`."""

    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Producer(driver.Producer):
    """The producer, idempotent outside transactions too.

    Faust turns idempotence on only with ``processing_guarantee="exactly_once"``. Without it, a
    send that aiokafka retries after a lost ack (a broker restart) can be written twice, and
    records of one partition can land out of order.
    """

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class Transport(driver.Transport):
    """The ``kafka://`` transport with :class:`Consumer` and :class:`Producer`."""

    Consumer: ClassVar[type[Any]] = Consumer
    Producer: ClassVar[type[Any]] = Producer
