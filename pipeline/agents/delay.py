"""Delay-tier agents: hold retried and delayed records until due, then send them on."""

from __future__ import annotations

from functools import cache

import faust

from pipeline.agents.runtime import FaustPublisher, incoming
from pipeline.application import app, settings
from pipeline.catalog import DELAYS, QUEUES
from pipeline.delays import DelayForwarder
from pipeline.topics import delay_topics


@cache
def forwarder() -> DelayForwarder:
    """The forwarder shared by every tier."""
    return DelayForwarder(
        publisher=FaustPublisher(),
        delay_topics={seconds: spec.name(settings) for seconds, spec in DELAYS.items()},
        partitions={
            spec.topic.name(settings): spec.topic.partition_count(settings)
            for spec in QUEUES.values()
        },
    )


def _tier_agent(seconds: int) -> None:
    # One agent per tier: each waits on its own head record, so a long tier never holds up a
    # short one.
    async def hold(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await forwarder().process(incoming(event.message), seconds)

    hold.__name__ = hold.__qualname__ = f"delay_{seconds}s_agent"
    app.agent(delay_topics[seconds], name=f"pipeline.agents.delay.{hold.__name__}")(hold)


for _seconds in DELAYS:
    _tier_agent(_seconds)
