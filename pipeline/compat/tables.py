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

from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, cast

import faust
import orjson
from faust.tables.base import Collection

from pipeline.compat.sends import batched_sends
from pipeline.compat.store import Store


@dataclass(frozen=True, slots=True)
class Change:
    """One key's new value, set locally, with its changelog record."""

    key: bytes | None
    value: bytes | None  # None: deleted
    partition: int
    # What to call with the record's offset once it is acked (tables on disk: compat/store.py).
    on_acked: Callable[[int], None] | None


def write(
    table: faust.types.TableT[Any, Any], key: Any, value: Any, partition: int
) -> Coroutine[Any, Any, Awaitable[None]]:
    """Set ``key`` locally now (None: delete it); awaiting what is returned hands its changelog
    record to the producer and gives what resolves once the record is acked."""
    return send(table, stage(table, key, value, partition))


def delete(
    table: faust.types.TableT[Any, Any], key: Any, partition: int
) -> Coroutine[Any, Any, Awaitable[None]]:
    """Drop ``key`` locally now; awaiting what is returned sends its tombstone to ``partition``
    (compaction then drops the key from the changelog for good)."""
    return write(table, key, None, partition)


def stage(table: faust.types.TableT[Any, Any], key: Any, value: Any, partition: int) -> Change:
    """Set ``key`` locally (None: delete it); ``send`` then writes its changelog record."""
    topic = table.changelog_topic
    key_bytes = serialized(table, key, "key_serializer", topic.prepare_key)
    value_bytes = (
        None if value is None else serialized(table, value, "value_serializer", topic.prepare_value)
    )
    data = table.data
    on_acked = None
    if isinstance(data, Store):
        # On disk the key and value are the changelog record's bytes, as Faust's recovery
        # writes them.
        on_acked = data.stage(partition, key_bytes or b"", value_bytes)
    elif value is None:
        data.pop(key, None)
    else:
        data[key] = value
    return Change(key_bytes, value_bytes, partition, on_acked)


async def send(table: faust.types.TableT[Any, Any], change: Change) -> Awaitable[None]:
    """Send ``change``'s changelog record (again, if it was sent before), leaving the local
    store as it is; returns what resolves once the record is acked."""
    written = await batched_sends(table.app).send(
        table.changelog_topic.get_topic_name(), change.key, change.value, change.partition, []
    )
    if change.on_acked is not None:
        written.on_written(change.on_acked)
    return written


def get(table: faust.types.TableT[Any, Any], key: Any, partition: int, default: Any = None) -> Any:
    """``key``'s value, in ``partition`` of the table. One lookup: Faust's ``table.get`` looks a
    key up twice (contains, then get), and on disk without a partition it probes every
    partition the worker holds."""
    data = table.data
    if not isinstance(data, Store):
        return data.get(key, default)
    key_bytes = serialized(table, key, "key_serializer", table.changelog_topic.prepare_key)
    raw = data.get_in(partition, key_bytes or b"")
    if raw is None:
        return default
    if cast(Collection, table).value_serializer == "json":
        return orjson.loads(raw)
    return data._decode_value(raw)


# Faust's JSON codec writes this same compact JSON (with orjson too, faust-streaming[orjson]); its
# generic path (schema, codec lookup, encoder class) took 7 % of a noop load in `make profile`.
# orjson against the standard library's C encoder, for a job's status: 0.4 against 4.1 us to
# write, 1.0 against 4.8 us to read. Raw keys are sent as they are.
def _compact_json(item: Any) -> bytes:
    return orjson.dumps(item, option=orjson.OPT_NON_STR_KEYS)


def serialized(
    table: faust.types.TableT[Any, Any],
    item: Any,
    serializer_name: str,
    prepare: Callable[[Any, Any], tuple[Any, Any]],
) -> bytes | None:
    # The serializers are attributes of Faust's Collection, not of its TableT interface.
    serializer = getattr(cast(Collection, table), serializer_name)
    if serializer == "json" and isinstance(item, str | dict | int):
        return _compact_json(item)
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
