"""The private names of Faust and aiokafka that pipeline/compat/ relies on, so an upgrade of
faust-streaming or aiokafka that changes them fails here first (no broker)."""

from __future__ import annotations

import inspect

import faust
from faust.tables.base import Collection
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


def test_the_table_internals_compat_tables_uses_are_still_there() -> None:
    parameters = list(inspect.signature(Collection.send_changelog).parameters)
    assert parameters[:4] == ["self", "partition", "key", "value"]
    assert "value_serializer" in parameters
    # ``data`` is the local store: a mapping that writes no changelog record by itself.
    app = faust.App("compat-probe", store="memory://")
    table = app.Table("probe", default=None)
    table.data["k"] = 1
    assert dict(table.data.items()) == {"k": 1}
