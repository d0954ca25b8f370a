"""Records of a topic handed to its agent a whole fetch at a time.

Faust hands every record to its agent on its own: a message, an event, a queue put, a stream
step, sensor calls and an ack, about 80 us per record on the bench machine, for records a job
agent or the monitor does little with. A topic read through a ``BulkTopic`` is still subscribed,
assigned and committed by Faust's consumer; the fetch loop (``compat/fetcher.py``) collects its
records and sends the list of one fetch as one value on an in-memory channel, which the agent
iterates. The agent acks each record once it has handled it (``ack``), and skips records
fetched before a rebalance (``current``), as Faust's streams do. When fetches wait for the
agent, the topic's partitions stop being fetched, as Faust does when an agent's buffer is full:
a queue paused by an outage holds its own partitions, never the fetch loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from weakref import WeakSet

from faust.types import TP, AppT, ChannelT, Message, TopicT

# Fetches waiting for the agent before the topic's partitions stop being fetched.
BUFFERED_FETCHES = 8


class Fetch:
    """The records of one topic from one fetch. Counted as waiting by weak reference: a fetch
    Faust drops from the channel around a rebalance stops counting once it is gone."""

    __slots__ = ("__weakref__", "messages")

    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages


class BulkTopic:
    """A topic whose records reach its agent a fetch at a time, on ``channel``."""

    def __init__(self, app: AppT, topic: TopicT, buffered: int = BUFFERED_FETCHES) -> None:
        self.app = app
        self.channel: ChannelT[Fetch] = app.channel()
        self._buffered = buffered
        self._waiting: WeakSet[Fetch] = WeakSet()
        self._paused: set[TP] = set()
        app.topics.add(topic)  # subscribed with acks, like an agent's topic
        _registry(app)[topic.get_topic_name()] = self

    async def hand_over(self, messages: list[Message]) -> None:
        """Send one fetch's records to the channel, tracked as in flight (a rebalance waits for
        them, and the consumer's check for dropped records counts them as held)."""
        consumer = self.app.consumer
        await self.app.flow_control.acquire()
        fetch = Fetch(messages)
        for message in messages:
            message.tracked = True
            consumer.track_message(message)
        self._waiting.add(fetch)
        if len(self._waiting) >= self._buffered:
            # Faust's own TPs: a message's may be aiokafka's, and Faust asserts on its type.
            fetched = {TP(message.topic, message.partition) for message in messages}
            for tp in fetched - self._paused:
                consumer.on_buffer_full(tp)
                self._paused.add(tp)
        await self.channel.send(value=fetch)

    def taken(self, fetch: Fetch) -> None:
        """The agent took ``fetch`` off the channel."""
        self._waiting.discard(fetch)
        self.relieve()

    def relieve(self) -> None:
        """Fetch the paused partitions again once few enough fetches wait."""
        if self._paused and len(self._waiting) < self._buffered:
            assigned = self.app.consumer.assignment()
            for tp in self._paused:
                if tp in assigned:
                    self.app.consumer.on_buffer_drop(tp)
            self._paused.clear()

    def current(self, messages: Sequence[Message]) -> list[Message]:
        """The records still this worker's to handle: none while a rebalance is under way, and
        none fetched in an earlier consumer generation (Faust seeks back and reads them
        again). The others stop counting as in flight, unacked: otherwise a rebalance or a
        stop waits for them (Faust's wait_empty) as long as anything still holds the fetch."""
        if not self.app.flow_control.is_active():
            self.ack(messages)  # refused, so never committed (compat/transport.py)
            return []
        generation = self.app.consumer_generation_id
        held = [message for message in messages if message.generation_id == generation]
        if len(held) < len(messages):
            self.ack([message for message in messages if message.generation_id != generation])
        return held

    def ack(self, messages: Sequence[Message]) -> None:
        """Mark ``messages`` handled: their offsets may be committed."""
        consumer = self.app.consumer
        for message in messages:
            consumer.ack(message)


def _registry(app: AppT) -> dict[str, BulkTopic]:
    topics: dict[str, BulkTopic] | None = getattr(app, "_pipeline_bulk_topics", None)
    if topics is None:
        topics = {}
        app._pipeline_bulk_topics = topics  # type: ignore[attr-defined]
    return topics


def bulk_topics(app: AppT) -> dict[str, BulkTopic]:
    """The topics read in bulk, by name."""
    return _registry(app)
