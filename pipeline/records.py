"""What the job runner and the delay tiers take in and send out, free of Faust."""

from __future__ import annotations

from collections.abc import Sequence
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
    """Sends one record (whether it waits for the broker's ack is the publisher's choice: see
    ``pipeline.agents.runtime.FaustPublisher``)."""

    async def publish(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        headers: Headers,
        partition: int | None = None,
    ) -> None: ...
