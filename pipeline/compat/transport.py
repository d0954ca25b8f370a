"""Faust's aiokafka transport, with an idempotent producer and fixes for records Faust can lose
around a rebalance: seeking back to committed offsets also rewinds partitions that have no
committed offset yet (below), and :class:`Consumer` closes four more ways.

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

import logging
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from aiokafka.errors import KafkaError
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, Message
from mode import Service
from mode.utils.futures import notify

from pipeline.compat.fetcher import drain_messages

logger = logging.getLogger(__name__)


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


def first_unacked(acked: list[int], start: int | None) -> bool:
    """Whether the record at ``start`` (the partition's committed offset) is still missing, while
    later ones are acked."""
    if not acked or start is None:
        return False
    return min(acked) > start


def head_dropped(start: int | None, position: int | None, acked: bool, in_flight: bool) -> bool:
    """Whether a partition's first unprocessed record (at ``start``) was fetched (the consumer's
    ``position`` is past it) yet is neither acked nor held by an agent: Faust dropped it."""
    if start is None or position is None or position <= start:
        return False
    return not acked and not in_flight


# How often the consumer looks for fetched records that never reached an agent. A partition is
# read again once two looks in a row saw the same gap with nothing in flight.
DROP_CHECK_S = 2.0


class Consumer(driver.Consumer):
    """The consumer, run by :class:`ConsumerThread`: it commits only offsets whose every earlier
    record was processed, and reads again records it fetched but never handed to an agent.

    Faust drops fetched records in several places during a rebalance (records that arrive while
    the flow is stopped, the rest of a fetch when the generation changes, the agents' buffers
    when the flow resumes) and counts on its seek to the committed offsets to read them again;
    records fetched between that seek and the flow's resumption were lost (the kill test lost
    the last 5 records of a partition, 1 run in about 60). Four changes close that (the README's
    "Records Faust drops around a rebalance" has the figures):

    1. A commit waits until the record at the committed offset is acked (for a partition nobody
       has committed yet, the record at its beginning): Faust checks this one record late.
    2. ``ack`` refuses a message a stream skipped during a rebalance (Faust acks those).
    3. ``_add_gap`` marks no gaps: after a seek back, Faust took the rest of a batch fetched
       before the seek for a jump over offsets without records, and committed past them.
    4. Every ``DROP_CHECK_S`` the consumer looks for a partition whose first unprocessed record
       was fetched (its position is past it) but is neither acked nor held by an agent. Seen
       twice in a row, the partition is read again from that record (records already done are
       skipped by the job-state table). Without this, 1 would wait forever on a dropped record.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Where each partition nobody has committed yet begins: its first record must be
        # processed before any commit, like the record at a committed offset.
        self._beginnings: dict[TP, int] = {}
        self._suspected: dict[TP, tuple[int, int]] = {}

    async def perform_seek(self) -> None:
        """Seek every partition to its committed offset (or beginning) and note where the
        uncommitted ones begin."""
        await super().perform_seek()
        await self._note_beginnings(self.assignment())

    async def _note_beginnings(self, partitions: Iterable[TP]) -> None:
        assigned = self.assignment()
        self._beginnings = {tp: o for tp, o in self._beginnings.items() if tp in assigned}
        changelogs = self.app.tables.changelog_topics
        uncommitted = [
            tp
            for tp in partitions
            if tp.topic not in changelogs and self._committed_offset.get(tp) is None
        ]
        if uncommitted:
            self._beginnings.update(await self.earliest_offsets(*uncommitted))

    def ack(self, message: Message) -> bool:
        """Record ``message`` as processed, unless it was taken while a rebalance is under way.

        Faust's streams skip a message taken while flow control is suspended or from an older
        consumer generation, and ack it "so the lag does not grow": such a record was never
        run, yet its offset could be committed. Here it stays unacked; the re-read check reads
        it again once the rebalance is over.
        """
        if (
            not self.app.flow_control.is_active()
            or message.generation_id != self.app.consumer_generation_id
        ):
            self._unacked_messages.discard(message)
            notify(self._waiting_for_ack)  # a rebalance waits for in-flight messages to end
            return False
        acked: bool = super().ack(message)
        return acked

    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        """Mark no gaps. Faust takes a jump between two records it hands out for offsets with
        no record (compaction, transaction markers) and lets commits pass them; after a seek
        back, the rest of a batch fetched before it makes such a jump over records not yet read
        again, and the commit then passed them: the kill test lost 3 of 30 jobs so. Job topics
        are neither compacted nor written in transactions."""

    def _start(self, tp: TP) -> int | None:
        committed = self._committed_offset.get(tp)
        return committed if committed is not None else self._beginnings.get(tp)

    def _new_offset(self, tp: TP) -> int | None:
        if first_unacked(self._acked[tp], self._start(tp)):
            return None
        offset: int | None = super()._new_offset(tp)
        return offset

    @Service.timer(DROP_CHECK_S)
    async def _read_dropped_again(self) -> None:
        if not self.flow_active or self.app.rebalancing:
            self._suspected = {}
            return
        suspected: dict[TP, tuple[int, int]] = {}
        positions: dict[TP, tuple[int, int | None]] = {}
        for tp in self.assignment():
            start = self._start(tp)
            if start is None or tp.topic in self.app.tables.changelog_topics:
                continue
            try:
                positions[tp] = (start, await self.position(tp))
            except KafkaError:
                continue  # unassigned meanwhile: the next rebalance seeks it anyway
        # The highest offset held by an agent, per partition, in one pass (after the awaits
        # above): a backlog handed over in bulk puts thousands of records in the set, and a
        # pass per partition took 4 % of a loaded worker.
        held: dict[TP, int] = {}
        for message in list(self._unacked_messages):
            if message.offset > held.get(message.tp, -1):
                held[message.tp] = message.offset
        for tp, (start, position) in positions.items():
            in_flight = held.get(tp, -1) >= start
            acked = start in self._acked_index.get(tp, ())
            if position is None or not head_dropped(start, position, acked, in_flight):
                continue
            if self._suspected.get(tp) != (start, position):
                suspected[tp] = (start, position)
                continue
            # Info, not a warning: a rebalance can cause it, and it costs a few skipped records.
            logger.info(
                "reading %s:%d again from offset %d: records fetched around a rebalance never "
                "reached an agent",
                tp.topic,
                tp.partition,
                start,
            )
            if self._committed_offset.get(tp) is None:
                # Its beginning may have moved (retention): note it again.
                self._beginnings.pop(tp, None)
                await self._note_beginnings([tp])
            await self.seek(tp, self._start(tp) or 0)
        self._suspected = suspected

    # Faust's fetch loop, without four asyncio tasks per record (see compat/fetcher.py).
    _drain_messages = drain_messages

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
