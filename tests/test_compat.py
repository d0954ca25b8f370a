"""The private names of Faust and aiokafka that pipeline/compat/ relies on, so an upgrade of
faust-streaming or aiokafka that changes them fails here first (no broker)."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from typing import Any
from weakref import WeakSet

import faust
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from faust.assignor import client_assignment, partition_assignor
from faust.stores import STORES
from faust.stores import rocksdb as faust_rocksdb
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as driver

from pipeline.application import create_app
from pipeline.compat.bulk import BulkTopic, Fetch, bulk_topics
from pipeline.compat.fetcher import deliver, drain_messages
from pipeline.compat.tables import serialized
from pipeline.compat.transport import Consumer, first_unacked, head_dropped
from pipeline.settings import Settings


def test_the_faust_internals_the_patches_use_are_still_there() -> None:
    # Faust's commit rule that can jump over records a rebalance dropped (see the README's
    # open problems): a change here is worth reading before an upgrade.
    new_offset = inspect.getsource(faust_consumer.Consumer._new_offset)
    assert "min(acked) - committed_offset > 1" in new_offset
    # Streams skip, and ack, a message taken during a rebalance: Consumer.ack refuses those.
    stream_iter = inspect.getsource(faust.Stream._py_aiter)
    assert "message.generation_id != self.app.consumer_generation_id" in stream_iter
    assert "value = skipped_value" in stream_iter
    assert list(inspect.signature(faust_consumer.Consumer.ack).parameters) == ["self", "message"]
    assert "self._acked_index = defaultdict(set)" in inspect.getsource(faust_consumer.Consumer)
    assert hasattr(driver.AIOKafkaConsumerThread, "_ensure_consumer")
    assert hasattr(driver.Producer, "_settings_extra")
    assert hasattr(driver.Consumer, "_new_consumer_thread")
    # compat/sends.py: the aiokafka producer behind Faust's, and its batch API.
    assert hasattr(driver.Producer, "_ensure_producer")
    assert list(inspect.signature(AIOKafkaProducer.send_batch).parameters) == [
        "self",
        "batch",
        "topic",
        "partition",
    ]
    assert hasattr(AIOKafkaClient, "_wait_on_metadata")


def test_the_table_internals_compat_tables_uses_are_still_there() -> None:
    # ``data`` is the local store: a mapping that writes no changelog record by itself, and
    # keeps the offset of the last changelog record acked (for a persistent store).
    app = faust.App("compat-probe", store="memory://")
    table = app.Table("probe", default=None)
    table.data["k"] = 1
    assert dict(table.data.items()) == {"k": 1}
    assert callable(table.data.set_persisted_offset)
    assert (table.key_serializer, table.value_serializer) == ("json", "json")
    assert callable(table.changelog_topic.prepare_key)
    assert callable(table.changelog_topic.prepare_value)


def test_the_rocksdb_store_internals_compat_store_uses_are_still_there() -> None:
    rocks = faust_rocksdb.Store
    # Recovery and standby copies go through apply_changelog_batch, which keeps its offsets with
    # set_persisted_offset (compat/store.py follows them there).
    assert "self.set_persisted_offset(tp, offset)" in inspect.getsource(rocks.apply_changelog_batch)
    assert "_dbs_for_actives" in inspect.getsource(rocks._iteritems)
    assert list(inspect.signature(rocks.revoke_partitions).parameters) == ["self", "table", "tps"]
    assert "self._dbs.pop(tp.partition" in inspect.getsource(rocks.revoke_partitions)
    assert "_DBValueTuple(db, value)" in inspect.getsource(rocks._get_bucket_for_key)
    assert isinstance(rocks.offset_key, bytes)
    assert {"max_open_files", "bloom_filter_size"} <= set(vars(faust_rocksdb.RocksDBOptions))
    # Where store URLs are looked up: the scheme of compat/store.py is registered there.
    assert isinstance(STORES.aliases, dict)


@pytest.mark.parametrize(
    ("acked", "start", "missing"),
    [
        ([], 5, False),  # nothing acked: nothing to commit anyway
        ([5, 6, 7], 5, False),  # the record at the committed offset is done
        ([6, 7], 5, True),  # it was dropped: no commit may pass it
        ([6, 7], None, False),  # no start known: Faust's own rule
    ],
)
def test_a_commit_waits_for_the_record_at_the_committed_offset(
    acked: list[int], start: int | None, missing: bool
) -> None:
    assert first_unacked(acked, start) is missing


@pytest.mark.parametrize(
    ("start", "position", "acked", "in_flight", "dropped"),
    [
        (2, 7, False, False, True),  # fetched, not done, not held: read it again
        (2, 7, True, False, False),  # done: the commit moves on
        (2, 7, False, True, False),  # an agent holds it (or a later record)
        (2, 2, False, False, False),  # not fetched yet
        (None, 7, False, False, False),  # nothing to compare with
        (2, None, False, False, False),  # position unknown (a reset in progress)
    ],
)
def test_records_fetched_but_never_handed_out_are_read_again(
    start: int | None, position: int | None, acked: bool, in_flight: bool, dropped: bool
) -> None:
    assert head_dropped(start, position, acked, in_flight) is dropped


def test_the_consumer_runs_the_re_read_check() -> None:
    tasks = Consumer._tasks or {}
    assert "_read_dropped_again" in tasks[f"{Consumer.__module__}.{Consumer.__qualname__}"]


# faust-streaming 0.15.3's Consumer._drain_messages, which compat/fetcher.py copies with one
# change: an upgrade that changes it must be read before the copy is trusted again.
UPSTREAM_DRAIN_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"


def test_the_fetch_loop_compat_fetcher_copies_is_unchanged_upstream() -> None:
    source = inspect.getsource(faust_consumer.Consumer._drain_messages)
    assert hashlib.sha256(source.encode()).hexdigest() == UPSTREAM_DRAIN_SHA256
    assert Consumer._drain_messages is drain_messages


class Recorder:
    """Stands in for mode's ``Service.wait_first``: runs what it is given, as Faust would."""

    def __init__(self) -> None:
        self.calls = 0

    async def wait_first(self, *coros: Any) -> None:
        self.calls += 1
        first, *others = coros
        for other in others:
            other.close()
        await first


async def test_a_callback_that_need_not_wait_runs_inline_without_tasks() -> None:
    ran: list[int] = []

    async def callback() -> None:
        ran.append(1)

    faust_wait = Recorder()
    await deliver(callback(), asyncio.Event(), faust_wait.wait_first)
    assert (ran, faust_wait.calls) == ([1], 0)


async def test_a_callback_that_waits_is_finished_as_faust_would() -> None:
    ready = asyncio.Event()
    ran: list[str] = []

    async def callback() -> None:
        ran.append("started")
        await ready.wait()  # an agent's buffer is full
        ran.append("delivered")

    asyncio.get_running_loop().call_later(0.01, ready.set)
    faust_wait = Recorder()
    await deliver(callback(), asyncio.Event(), faust_wait.wait_first)
    assert (ran, faust_wait.calls) == (["started", "delivered"], 1)


async def test_a_waiting_callback_is_cancelled_like_any_coroutine() -> None:
    cleaned: list[str] = []

    async def callback() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.append("cancelled")

    faust_wait = Recorder()
    delivering = asyncio.ensure_future(deliver(callback(), asyncio.Event(), faust_wait.wait_first))
    await asyncio.sleep(0.01)
    delivering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await delivering
    assert cleaned == ["cancelled"]


async def test_with_the_flow_suspended_faust_decides_and_errors_propagate() -> None:
    async def failing() -> None:
        raise ValueError("bad record")

    faust_wait = Recorder()
    suspended = asyncio.Event()
    suspended.set()
    with pytest.raises(ValueError, match="bad record"):
        await deliver(failing(), suspended, faust_wait.wait_first)
    assert faust_wait.calls == 1
    with pytest.raises(ValueError, match="bad record"):
        await deliver(failing(), asyncio.Event(), faust_wait.wait_first)


def test_changelog_records_are_the_bytes_faust_itself_would_write() -> None:
    app = faust.App("compat-serial", store="memory://")
    cases = [
        (app.Table("by-id", default=None, key_type=str), "j1", {"state": "completed", "n": None}),
        (app.Table("by-bytes", default=None, key_type=bytes), b"j1", {"result": {"a": "é"}}),
        (app.Table("counts", default=int, key_type=str), "0:email/x/added", 7),
    ]
    for table, key, value in cases:
        topic = table.changelog_topic
        assert (
            serialized(table, key, "key_serializer", topic.prepare_key)
            == (topic.prepare_key(key, table.key_serializer)[0])
        )
        assert (
            serialized(table, value, "value_serializer", topic.prepare_value)
            == (topic.prepare_value(value, table.value_serializer)[0])
        )


def test_a_topic_read_in_bulk_is_subscribed_and_only_current_records_are_handled() -> None:
    # The worker's app, with compat/transport.py's consumer (nothing connects before it starts).
    app = create_app(Settings(app_id="compat-bulk", table_store="memory"))
    topic = app.topic("bulk-probe", value_type=bytes)
    records = BulkTopic(app, topic)
    assert topic in app.topics  # subscribed, assigned and committed by Faust's consumer
    assert bulk_topics(app) == {"bulk-probe": records}
    # The Faust internals BulkTopic uses.
    assert callable(app.flow_control.acquire)
    for method in ("track_message", "on_buffer_full", "on_buffer_drop"):
        parameters = list(inspect.signature(getattr(faust_consumer.Consumer, method)).parameters)
        assert parameters == ["self", "message" if method == "track_message" else "tp"]
    fetched = [
        faust.types.Message(
            "bulk-probe", 0, offset, 0.0, 0, None, b"k", b"v", None, generation_id=7
        )
        for offset in range(3)
    ]
    app.consumer_generation_id = 7
    app.flow_control.resume()
    assert records.current(fetched) == fetched
    consumer = app.consumer
    try:
        for message in fetched:
            consumer.track_message(message)
        app.consumer_generation_id = 8  # a rebalance since: Faust reads them again
        assert records.current(fetched) == []
        # ... and a rebalance or a stop no longer waits for them.
        assert not consumer._unacked_messages
    finally:
        # The event loop of the consumer's thread, made when it was built, with its sockets.
        consumer._thread.thread_loop.close()


def test_a_fetch_dropped_around_a_rebalance_stops_counting_as_waiting() -> None:
    waiting: WeakSet[Fetch] = WeakSet()
    fetch = Fetch([])
    waiting.add(fetch)
    assert len(waiting) == 1
    del fetch
    assert len(waiting) == 0


def test_the_assignor_reads_changelog_topics_where_compat_assignor_adds_them() -> None:
    # compat/assignor.py swaps the assignor's table manager for one that knows every role's
    # changelogs: Faust must still keep it in _table_manager and ask it for changelog_topics.
    assigner = inspect.getsource(partition_assignor.PartitionAssignor)
    assert "self._table_manager = self.app.tables" in assigner
    assert assigner.count("self._table_manager.changelog_topics") == 2
    assert "kafka_protocol_assignment(self._table_manager)" in assigner
    protocol = inspect.getsource(client_assignment.ClientAssignment.kafka_protocol_assignment)
    assert "table_manager.changelog_topics" in protocol


def test_the_worker_help_names_the_web_servers_real_defaults() -> None:
    import faust.cli.faust  # noqa: F401  # registers the worker command, as `faust` does
    from faust.cli.base import cli

    from pipeline.compat.cli_help import tell_web_defaults

    tell_web_defaults(Settings())
    helps = {param.name: getattr(param, "help", "") for param in cli.commands["worker"].params}
    assert "default: 127.0.0.1, from PIPELINE_WEB_HOST" in helps["web_bind"]
    assert "0.0.0.0" not in helps["web_host"]
    assert "PIPELINE_WEB_PORT" in helps["web_port"]
