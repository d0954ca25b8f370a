"""Writing a Faust table outside its stream's partitioning, through ``table.data`` (the local
store) and one changelog record handed straight to the worker's producer, both private to Faust.

``table[key] = value`` would put the changelog record in the partition of the stream's current
event, which is wrong for a batch (only its last record's partition) and for a timer (no event
at all), and it drops the send's future, so nobody could wait until the state is durable.

Faust's own ``send_changelog`` goes through its topic's send buffer, a task that takes one record
at a time from a queue: about 200 us of the worker's CPU per record, the largest single cost of a
noop job. The record here is the same (the table's key and value serializers, the partition
given), added to the producer's batch of its partition (``compat/sends.py``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any, cast

import faust
from faust.tables.base import Collection
from faust.types import TP
from faust.types.stores import StoreT

from pipeline.compat.sends import batched_sends


def write(
    table: faust.types.TableT[Any, Any], key: Any, value: Any, partition: int
) -> Coroutine[Any, Any, Awaitable[None]]:
    """Set ``key`` locally now; awaiting what is returned hands its changelog record to the
    producer and gives what resolves once the record is acked."""
    table.data[key] = value
    return send(table, key, value, partition)


async def send(
    table: faust.types.TableT[Any, Any], key: Any, value: Any, partition: int
) -> Awaitable[None]:
    """Send ``key``'s changelog record to ``partition`` again, leaving the local store as it is
    (a later write may have changed it since)."""
    topic = table.changelog_topic
    key_bytes = serialized(table, key, "key_serializer", topic.prepare_key)
    value_bytes = (
        None if value is None else serialized(table, value, "value_serializer", topic.prepare_value)
    )
    name = topic.get_topic_name()
    written = await batched_sends(table.app).send(name, key_bytes, value_bytes, partition, [])
    written.on_written(partial(_persisted, table, TP(name, partition)))
    return written


# Faust's JSON codec writes this same compact JSON; its generic path (schema, codec lookup,
# encoder class) took 7 % of a noop load in `make profile`. Raw keys are sent as they are.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode


def serialized(
    table: faust.types.TableT[Any, Any],
    item: Any,
    serializer_name: str,
    prepare: Callable[[Any, Any], tuple[Any, Any]],
) -> bytes | None:
    # The serializers are attributes of Faust's Collection, not of its TableT interface.
    serializer = getattr(cast(Collection, table), serializer_name)
    if serializer == "json" and isinstance(item, str | dict | int):
        return _compact_json(item).encode()
    if serializer == "raw" and isinstance(item, bytes):
        return item
    serialized: bytes | None = prepare(item, serializer)[0]
    return serialized


def _persisted(table: faust.types.TableT[Any, Any], tp: TP, offset: int) -> None:
    # What Faust's own send does once a changelog record is acked: a persistent store (RocksDB)
    # keeps the offset, so a restarted worker reads only the records after it.
    cast("StoreT[Any, Any]", table.data).set_persisted_offset(tp, offset)


def delete(
    table: faust.types.TableT[Any, Any], key: Any, partition: int
) -> Coroutine[Any, Any, Awaitable[None]]:
    """Drop ``key`` locally now; awaiting what is returned sends its tombstone to ``partition``
    (compaction then drops the key from the changelog for good)."""
    table.data.pop(key, None)
    return send(table, key, None, partition)


def items(table: faust.types.TableT[Any, Any]) -> list[tuple[Any, Any]]:
    """Every key and value of the table this worker holds (standby copies included)."""
    return list(table.data.items())
