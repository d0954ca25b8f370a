"""Which finished jobs' states are past the retention period. Free of Faust."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from pipeline.lifecycle import FINISHED_STATES

K = TypeVar("K")


def expired(entries: Iterable[tuple[K, Mapping[str, Any] | None]], before_ms: int) -> list[K]:
    """Keys of finished jobs whose state last changed before ``before_ms``."""
    return [
        key
        for key, state in entries
        if state
        and state.get("state") in FINISHED_STATES
        and int(state.get("updated_ms") or 0) < before_ms
    ]


def sweep_interval_s(retention_s: float) -> float:
    """How often to look for expired states: a tenth of the retention, between 1 s and 10 min."""
    return max(1.0, min(600.0, retention_s / 10))
