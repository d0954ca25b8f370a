"""The tables' RocksDB store (pipeline/compat/store.py): what reaches the disk is only what Kafka
acked, so a worker killed between a write and its ack restarts on a prefix of its changelog.
Real RocksDB (rocksdict) in a temporary folder; no broker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.types import TP

from pipeline.compat import tables
from pipeline.compat.store import MEMORY_OPTION, URL_SCHEME, Store


class Probe:
    """One table on the store, as a worker holding partitions 0 and 1 of it has it."""

    def __init__(self, folder: Path) -> None:
        app = faust.App("store-probe", store=f"{URL_SCHEME}://", datadir=str(folder))
        self.table = app.Table(
            "probe", default=None, partitions=2, options={MEMORY_OPTION: 16 * 1024**2}
        )
        store = self.table.data
        assert isinstance(store, Store)
        self.store = store
        for partition in (0, 1):  # what Faust does for the partitions assigned to the worker
            store._db_for_partition(partition)

    def stage(self, partition: int, key: str, value: Any) -> Callable[[int], None]:
        """Set ``key`` as the worker does; returns what its changelog record's ack calls."""
        on_acked = tables.stage(self.table, key, value, partition).on_acked
        assert on_acked is not None
        return on_acked

    def get(self, key: str, partition: int = 0) -> Any:
        return tables.get(self.table, key, partition)

    def tp(self, partition: int) -> TP:
        return TP(self.table.changelog_topic.get_topic_name(), partition)

    def on_disk(self, key: str, partition: int = 0) -> Any:
        raw = self.store._db_for_partition(partition).get(self.store._encode_key(key))
        return None if raw is None else self.store._decode_value(raw)

    def close(self) -> None:
        for db in self.store._dbs.values():
            db.close()
        self.store._dbs.clear()


async def acks_written() -> None:
    """Let the event loop run what an ack scheduled: the store writes acked values once the loop
    is next free."""
    await asyncio.sleep(0)


@pytest.fixture
def probe(tmp_path: Path) -> Iterator[Probe]:
    opened = Probe(tmp_path)
    yield opened
    opened.close()


async def test_a_write_is_read_at_once_and_reaches_the_disk_with_its_offset_once_acked(
    probe: Probe,
) -> None:
    acked = probe.stage(0, "job-1", {"state": "active"})
    assert probe.get("job-1") == {"state": "active"}
    assert "job-1" in probe.store  # Faust's own lookup sees it too
    assert probe.on_disk("job-1") is None
    assert probe.store.persisted_offset(probe.tp(0)) is None

    acked(41)
    assert probe.get("job-1") == {"state": "active"}  # staged until the loop writes it
    await acks_written()
    assert probe.on_disk("job-1") == {"state": "active"}
    assert probe.store.persisted_offset(probe.tp(0)) == 41
    assert probe.get("job-1") == {"state": "active"}


async def test_a_restart_finds_what_was_acked_and_nothing_that_was_not(tmp_path: Path) -> None:
    first = Probe(tmp_path)
    first.stage(0, "done", {"state": "completed"})(7)
    await acks_written()
    first.stage(0, "in-flight", {"state": "completed"})  # killed before its ack
    first.stage(1, "gone", None)
    first.close()

    again = Probe(tmp_path)
    try:
        assert again.get("done") == {"state": "completed"}
        assert "in-flight" not in again.store
        assert again.store.persisted_offset(again.tp(0)) == 7
        # Faust's recovery reads partition 0 from offset 8 on: the in-flight write's record,
        # if it was written after all, is read from the changelog.
        assert again.store.persisted_offset(again.tp(1)) is None
    finally:
        again.close()


async def test_a_delete_hides_the_key_at_once_and_removes_it_from_disk_once_acked(
    probe: Probe,
) -> None:
    probe.stage(0, "job-1", {"state": "completed"})(1)
    await acks_written()
    acked = probe.stage(0, "job-1", None)
    assert "job-1" not in probe.store
    assert probe.on_disk("job-1") == {"state": "completed"}
    acked(2)
    await acks_written()
    assert probe.on_disk("job-1") is None
    assert probe.store.persisted_offset(probe.tp(0)) == 2


async def test_an_older_ack_leaves_a_newer_write_to_be_read(probe: Probe) -> None:
    first = probe.stage(0, "job-1", {"state": "active"})
    second = probe.stage(0, "job-1", {"state": "completed"})
    first(10)
    await acks_written()
    assert probe.get("job-1") == {"state": "completed"}
    assert probe.on_disk("job-1") == {"state": "active"}
    second(11)
    await acks_written()
    assert probe.on_disk("job-1") == {"state": "completed"}
    # A record sent again after a failed send may be acked after a later one.
    first(9)
    await acks_written()
    assert probe.store.persisted_offset(probe.tp(0)) == 11


async def test_a_revoked_partition_forgets_its_writes_in_flight_and_is_not_reopened(
    probe: Probe,
) -> None:
    acked = probe.stage(1, "job-9", {"state": "active"})
    probe.store.revoke_partitions(probe.table, {probe.tp(1)})
    assert "job-9" not in probe.store
    acked(5)
    await acks_written()
    assert 1 not in probe.store._dbs


async def test_what_was_acked_before_a_revocation_reaches_the_disk_first(probe: Probe) -> None:
    probe.stage(1, "job-9", {"state": "completed"})(5)
    probe.store.revoke_partitions(probe.table, {probe.tp(1)})
    assert 1 not in probe.store._dbs
    reopened = probe.store._db_for_partition(1)  # assigned again later
    assert reopened.get(probe.store._encode_key("job-9")) is not None
    assert probe.store.persisted_offset(probe.tp(1)) == 5


async def test_the_acks_of_one_request_go_to_disk_together_each_partition_with_its_offset(
    probe: Probe,
) -> None:
    acks = [probe.stage(n % 2, f"job-{n}", {"state": "completed"}) for n in range(6)]
    for n, acked in enumerate(acks):
        acked(100 + n)
    assert all(probe.on_disk(f"job-{n}", n % 2) is None for n in range(6))
    await acks_written()
    assert all(probe.on_disk(f"job-{n}", n % 2) == {"state": "completed"} for n in range(6))
    assert probe.store.persisted_offset(probe.tp(0)) == 104
    assert probe.store.persisted_offset(probe.tp(1)) == 105


def test_writes_come_only_through_stage(probe: Probe) -> None:
    with pytest.raises(NotImplementedError, match=r"compat\.tables"):
        probe.store["job-1"] = {"state": "active"}
