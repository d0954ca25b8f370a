"""Faust's RocksDB table store (``rocksdb://``, through rocksdict), changed in three ways, all on
private parts of it (``tests/test_compat.py`` pins them).

**Never ahead of the changelog.** Faust's store writes a key to disk as soon as the table is set
and keeps the offset of the last changelog record it wrote; a restarted worker reads the
changelog from there on. A write whose changelog record never reached Kafka (the worker killed
in between) would then stay on disk for good: a job would read as completed here while its
changelog, job-events and every standby copy say it never finished, and its redelivery would be
skipped. Here a write waits in memory, where reads see it, until its changelog record is acked,
and then goes to disk with that record's offset, in one RocksDB write batch with the other
writes of its partition acked in the same turn of the event loop: what the disk holds is always
the changelog up to an offset, as a restart after a crash assumes.

**Partitions given, not taken from the current event.** Faust's store finds a write's partition
(and a read's) in the stream's current event; the worker writes outside any stream (a batch, the
monitor's fetches, a timer), so writes and the worker's reads name their partition (Faust's
lookup without one probes every partition's database: 21 us a missing job id here).

**No write-ahead log**, as Kafka Streams' state stores: the changelog is the log. A kill loses
the writes RocksDB had not flushed and the offset written beside them, so the restarted worker
reads them again from the changelog; a stop or a revocation flushes.

Memory: every table partition is a RocksDB database of its own (dozens per worker), and
Faust's defaults give each a 2 GiB block cache and three 64 MiB memtables. Here they share one
block cache, which also counts their memtables (RocksDB's write buffer manager): one bound for
all of them, ``table_memory_mb``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import rocksdict
from faust.stores import STORES
from faust.stores import rocksdb as faust_rocksdb
from faust.types import TP, CollectionT

URL_SCHEME = "pipeline-rocksdb"
# A table's ``options={"memory_bytes": ...}``: the budget of every table of the process.
MEMORY_OPTION = "memory_bytes"
# Memtables of a few MiB each, flushed once the shared budget is used up.
_WRITE_BUFFER_BYTES = 4 * 1024**2


class _Staged(NamedTuple):
    partition: int
    value: bytes | None  # None: deleted


@functools.cache
def _shared(memory_bytes: int) -> tuple[rocksdict.Cache, rocksdict.WriteBufferManager]:
    cache = rocksdict.Cache(memory_bytes)
    buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
        memory_bytes // 2, False, cache
    )
    return cache, buffers


class _Options(faust_rocksdb.RocksDBOptions):
    def __init__(self, memory_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.memory_bytes = memory_bytes

    def open(self, path: Path, *, read_only: bool = False) -> rocksdict.Rdict:
        db: rocksdict.Rdict = super().open(path, read_only=read_only)
        # No write-ahead log, as Kafka Streams' state stores: the changelog is the log. A kill
        # loses the writes not yet flushed, and the offset written with them, so the restart
        # reads them again from the changelog. Stopping flushes (see Store.stop).
        options = rocksdict.WriteOptions()
        options.disable_wal = True  # type: ignore[assignment]  # a property; the stub says a method
        db.set_write_options(options)
        return db

    def as_options(self) -> rocksdict.Options:
        cache, buffers = _shared(self.memory_bytes)
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_max_open_files(self.max_open_files or -1)
        options.set_write_buffer_size(_WRITE_BUFFER_BYTES)
        options.set_max_write_buffer_number(2)
        options.set_write_buffer_manager(buffers)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_block_cache(cache)
        # Index and filter blocks inside the cache too, so the bound holds as data grows.
        table.set_cache_index_and_filter_blocks(True)
        options.set_block_based_table_factory(table)
        return options


class Store(faust_rocksdb.Store):
    """Faust's RocksDB store whose disk never runs ahead of the changelog."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = dict(self.options or {})
        memory_bytes = int(options.pop(MEMORY_OPTION, 64 * 1024**2))
        self.rocksdb_options = _Options(memory_bytes, **options, use_rocksdict=True)
        self._staged: dict[bytes, _Staged] = {}
        self._offsets: dict[int, int] = {}
        self._acked_writes: list[tuple[bytes, _Staged, int]] = []

    def stage(self, partition: int, key: bytes, value: bytes | None) -> Callable[[int], None]:
        """Hold ``key``'s new value (None: deleted) where reads see it; returns what to call with
        the offset of its changelog record once that is acked, which writes it to disk."""
        staged = _Staged(partition, value)
        self._staged[key] = staged
        return functools.partial(self._acked, key, staged)

    def get_in(self, partition: int, key: bytes) -> bytes | None:
        """``key``'s value, looked up in ``partition`` only (when this worker holds it)."""
        staged = self._staged.get(key)
        if staged is not None:
            return staged.value
        db = self._dbs.get(partition)
        if db is None:
            return self._get(key)
        value: bytes | None = db.get(key)
        return value

    def _acked(self, key: bytes, staged: _Staged, offset: int) -> None:
        # The acks of one produce request arrive together, so their writes go to disk together
        # once the event loop is next free: one RocksDB write batch per partition instead of
        # one per record (py-spy, noop load: 24 -> 14 us of the main thread per job).
        if not self._acked_writes:
            asyncio.get_running_loop().call_soon(self.write_acked)
        self._acked_writes.append((key, staged, offset))

    def write_acked(self) -> None:
        """Write what was acked since the last call to disk, each partition's writes with the
        offset of its last record in one RocksDB write batch; until then reads see them staged."""
        writes, self._acked_writes = self._acked_writes, []
        batches: dict[int, rocksdict.WriteBatch] = {}
        offsets: dict[int, int] = {}
        for key, staged, offset in writes:
            if self._staged.get(key) is staged:
                del self._staged[key]
            partition = staged.partition
            if partition not in self._dbs:
                continue  # revoked since: whoever holds it now reads it from the changelog
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = rocksdict.WriteBatch(raw_mode=True)
            if staged.value is None:
                batch.delete(key)
            else:
                batch.put(key, staged.value)
                self._key_index[key] = partition
            offsets[partition] = max(offset, offsets.get(partition, -1))
        for partition, batch in batches.items():
            # Acks come in offset order within a partition; a record sent again may be acked
            # late.
            offset = offsets[partition]
            if offset > self._offsets.get(partition, -1):
                self._offsets[partition] = offset
                batch.put(self.offset_key, str(offset).encode())
            self._dbs[partition].write(batch)

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        # Faust's recovery applies changelog records here, and so do standby copies.
        self._offsets[tp.partition] = max(offset, self._offsets.get(tp.partition, -1))
        super().set_persisted_offset(tp, offset)

    def _set(self, key: bytes, value: bytes | None) -> None:
        raise NotImplementedError("tables are written through pipeline.compat.tables")

    def _get(self, key: bytes) -> bytes | None:
        staged = self._staged.get(key)
        if staged is not None:
            return staged.value
        found = self._get_bucket_for_key(key)
        return None if found is None else found.value

    def _contains(self, key: bytes) -> bool:
        return self._get(key) is not None

    def _iteritems(self) -> Iterator[tuple[bytes, bytes]]:
        staged = dict(self._staged)
        for key, value in super()._iteritems():
            if key not in staged:
                yield key, value
        held = set(self._dbs)
        for key, item in staged.items():
            if item.value is not None and item.partition in held:
                yield key, item.value

    def _iterkeys(self) -> Iterator[bytes]:
        return (key for key, _ in self._iteritems())

    def _itervalues(self) -> Iterator[bytes]:
        return (value for _, value in self._iteritems())

    def _size(self) -> int:
        return sum(1 for _ in self._iteritems())

    def revoke_partitions(self, table: CollectionT, tps: set[TP]) -> None:
        revoked = {tp.partition for tp in tps if tp.topic in table.changelog_topic.topics}
        self.write_acked()
        self._flush(revoked)
        super().revoke_partitions(table, tps)
        for key in [key for key, item in self._staged.items() if item.partition in revoked]:
            del self._staged[key]
        for partition in revoked:
            self._offsets.pop(partition, None)

    async def stop(self) -> None:
        self.write_acked()
        self._flush(set(self._dbs))
        await super().stop()

    def _flush(self, partitions: set[int]) -> None:
        for partition in partitions:
            db = self._dbs.get(partition)
            if db is not None:
                db.flush()


STORES.aliases[URL_SCHEME] = f"{__name__}:Store"
