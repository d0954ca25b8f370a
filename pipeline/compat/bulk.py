"""Records of a topic handed to its agent a whole fetch at a time.

Faust hands every record to its agent on its own: a message, an event, a queue put, a stream
step, sensor calls and an ack, about 80 us per record on the bench machine. The monitor reads
two ``job-events`` records per job and does little with each, so that path was most of its
cost, and it fell seconds behind the job agents under load. A topic read with ``bulk_channel``
is still subscribed, assigned and committed by Faust's consumer; the fetch loop
(``compat/fetcher.py``) collects its records and sends the list of one fetch as one value on an
in-memory channel, which the agent iterates. The agent acks each record once it has handled
it (``ack``), and skips records fetched before a rebalance (``current``), as Faust's streams do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from faust.types import AppT, ChannelT, Message, TopicT

# Fetches waiting for the agent: when it is this far behind, the fetch loop waits for it.
BUFFERED_FETCHES = 8


def _channels(app: AppT) -> dict[str, ChannelT[Any]]:
    channels: dict[str, ChannelT[Any]] | None = getattr(app, "_pipeline_bulk_channels", None)
    if channels is None:
        channels = {}
        app._pipeline_bulk_channels = channels  # type: ignore[attr-defined]
    return channels


def bulk_channel(app: AppT, topic: TopicT) -> ChannelT[Any]:
    """Subscribe the app to ``topic`` and return the channel on which its records arrive, one
    ``list[Message]`` per fetch (raw keys and values)."""
    channel: ChannelT[Any] = app.channel(maxsize=BUFFERED_FETCHES)
    app.topics.add(topic)
    _channels(app)[topic.get_topic_name()] = channel
    return channel


def bulk_topics(app: AppT) -> dict[str, ChannelT[Any]]:
    """The channel of each topic read in bulk, by topic name."""
    return _channels(app)


async def hand_over(app: AppT, channel: ChannelT[Any], messages: list[Message]) -> None:
    """Send one fetch's records of a topic to its channel, tracked as in flight (a rebalance
    waits for them, and the consumer's check for dropped records counts them as held)."""
    consumer = app.consumer
    await app.flow_control.acquire()
    for message in messages:
        message.tracked = True
        consumer.track_message(message)
    await channel.send(value=messages)


def current(app: AppT, messages: Sequence[Message]) -> list[Message]:
    """The records still this worker's to handle: none while a rebalance is under way, and
    none fetched in an earlier consumer generation (Faust seeks back and reads them again)."""
    if not app.flow_control.is_active():
        return []
    generation = app.consumer_generation_id
    return [message for message in messages if message.generation_id == generation]


def ack(app: AppT, messages: Sequence[Message]) -> None:
    """Mark ``messages`` handled: their offsets may be committed."""
    consumer = app.consumer
    for message in messages:
        consumer.ack(message)
