"""Small waits and look-ups on the real broker, shared by the integration tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout_s: float = 30.0, what: str = "condition"
) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


async def partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Partitions of each of ``names`` that exists (a plain listing creates no topic)."""
    existing = set(await admin.list_topics())
    present = [name for name in names if name in existing]
    if not present:
        return {}
    return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(present)}


async def group_members(admin: AIOKafkaAdminClient, group_id: str) -> int:
    """How many members the consumer group has right now."""
    responses = await admin.describe_consumer_groups([group_id])
    groups = [g for response in responses for g in response.to_object()["groups"]]
    return sum(len(g["members"]) for g in groups if g["group"] == group_id)
