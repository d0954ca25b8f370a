"""What the job runner and the delay tiers take in and send out, free of Faust."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pipeline.envelope import Headers


@dataclass(frozen=True)
class IncomingRecord:
    """A consumed Kafka record, as the runner needs it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]]


class Publisher(Protocol):
    """Sends records; while Kafka cannot be reached it waits for it rather than fail."""

    async def publish(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        headers: Headers,
        partition: int | None = None,
    ) -> None:
        """Send one record and return once the broker has it (acks=all)."""
        ...

    async def publish_soon(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        headers: Headers,
        partition: int | None = None,
    ) -> Awaitable[object]:
        """Hand one record to the producer; the awaitable resolves once the broker has it."""
        ...
