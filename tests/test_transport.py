"""The patches of Faust in pipeline/transport.py: their rule, and the private names they rely
on, so an upgrade of faust-streaming that changes those fails here first (no broker)."""

from __future__ import annotations

import inspect

from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as driver

from pipeline.transport import first_unacked


def test_a_commit_waits_for_the_first_record_after_the_start() -> None:
    assert not first_unacked([574, 575, 576], [], 574)  # contiguous from the start
    assert first_unacked([575, 576], [], 574)  # 574 was dropped: wait for it to come again
    assert not first_unacked([575, 576], [574], 574)  # a known gap (a transaction marker)
    assert not first_unacked([], [], 574)
    assert not first_unacked([7], [], None)  # start unknown: Faust's own rule applies


def test_the_faust_internals_the_patches_use_are_still_there() -> None:
    new_offset = inspect.getsource(faust_consumer.Consumer._new_offset)
    assert "self._acked[tp]" in new_offset
    assert "self._gap[tp]" in new_offset
    assert "self._committed_offset[tp]" in new_offset
    assert "min(acked) - committed_offset > 1" in new_offset  # the rule patched around
    assert hasattr(driver.AIOKafkaConsumerThread, "_ensure_consumer")
    assert hasattr(driver.Producer, "_settings_extra")
    assert hasattr(driver.Consumer, "_new_consumer_thread")
