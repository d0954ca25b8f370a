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
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from typing import Any, cast

import faust
from faust.tables.base import Collection

from pipeline.compat.sends import batched_sends
from pipeline.compat.store import Store


def write(
    table: faust.types.TableT[Any, Any], key: Any, value: Any, partition: int
) -> Coroutine[Any, Any, Awaitable[None]]:
    """Set ``key`` locally now (None: delete it); awaiting what is returned hands its changelog
    record to the producer and gives what resolves once the record is acked."""
    return send(table, key, value, partition, stage(table, key, value, partition))


def delete(
    table: faust.types.TableT[Any, Any], key: Any, partition: int
) -> Coroutine[Any, Any, Awaitable[None]]:
    """Drop ``key`` locally now; awaiting what is returned sends its tombstone to ``partition``
    (compaction then drops the key from the changelog for good)."""
    return write(table, key, None, partition)


def stage(
    table: faust.types.TableT[Any, Any], key: Any, value: Any, partition: int
) -> Callable[[int], None] | None:
    """Set ``key`` locally (None: delete it); returns what ``send`` must call with the offset
    of the changelog record once it is acked, if the store needs it (see compat/store.py)."""
    data = table.data
    if isinstance(data, Store):
        return data.stage(partition, key, value)
    if value is None:
        data.pop(key, None)
    else:
        data[key] = value
    return None


async def send(
    table: faust.types.TableT[Any, Any],
    key: Any,
    value: Any,
    partition: int,
    on_acked: Callable[[int], None] | None = None,
) -> Awaitable[None]:
    """Send ``key``'s changelog record to ``partition``, leaving the local store as it is (a
    record sent again: pass the first one's ``on_acked``)."""
    topic = table.changelog_topic
    key_bytes = serialized(table, key, "key_serializer", topic.prepare_key)
    value_bytes = (
        None if value is None else serialized(table, value, "value_serializer", topic.prepare_value)
    )
    written = await batched_sends(table.app).send(
        topic.get_topic_name(), key_bytes, value_bytes, partition, []
    )
    if on_acked is not None:
        written.on_written(on_acked)
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


def items(table: faust.types.TableT[Any, Any]) -> Iterator[tuple[Any, Any]]:
    """Every key and value of the table this worker holds: of its active partitions on disk
    (read lazily, from a snapshot), standby copies included in memory (copied at once, so
    writes while it is read do not disturb it)."""
    if isinstance(table.data, Store):
        return iter(table.data.items())
    return iter(list(table.data.items()))
