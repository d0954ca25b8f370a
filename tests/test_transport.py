"""The private names of Faust that pipeline/transport.py relies on, so an upgrade of
faust-streaming that changes them fails here first (no broker)."""

from __future__ import annotations

import inspect

from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as driver


def test_the_faust_internals_the_patches_use_are_still_there() -> None:
    # Faust's commit rule that can jump over records a rebalance dropped (see the README's
    # open problems): a change here is worth reading before an upgrade.
    new_offset = inspect.getsource(faust_consumer.Consumer._new_offset)
    assert "min(acked) - committed_offset > 1" in new_offset
    assert hasattr(driver.AIOKafkaConsumerThread, "_ensure_consumer")
    assert hasattr(driver.Producer, "_settings_extra")
    assert hasattr(driver.Consumer, "_new_consumer_thread")
