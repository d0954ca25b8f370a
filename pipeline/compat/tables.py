"""Writing a Faust table outside its stream's partitioning, through ``table.data`` (the local
store) and ``send_changelog`` (one changelog record), both private to Faust.

``table[key] = value`` would put the changelog record in the partition of the stream's current
event, which is wrong for a batch (only its last record's partition) and for a timer (no event
at all), and it drops the send's future, so nobody could wait until the state is durable.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import faust


def write(
    table: faust.types.TableT[Any, Any], key: Any, value: Any, partition: int
) -> Awaitable[Any]:
    """Set ``key`` locally and send its changelog record to ``partition``; the awaitable
    resolves once the record is acked."""
    table.data[key] = value
    return send(table, key, value, partition)


def send(
    table: faust.types.TableT[Any, Any], key: Any, value: Any, partition: int
) -> Awaitable[Any]:
    """Send ``key``'s changelog record to ``partition`` again, leaving the local store as it is
    (a later write may have changed it since)."""
    future: Awaitable[Any] = table.send_changelog(partition, key, value)
    return future


def delete(table: faust.types.TableT[Any, Any], key: Any, partition: int) -> Awaitable[Any]:
    """Drop ``key`` locally and send its tombstone to ``partition`` (compaction then drops the
    key from the changelog for good)."""
    table.data.pop(key, None)
    future: Awaitable[Any] = table.send_changelog(partition, key, None, value_serializer="raw")
    return future


def items(table: faust.types.TableT[Any, Any]) -> list[tuple[Any, Any]]:
    """Every key and value of the table this worker holds (standby copies included)."""
    return list(table.data.items())
