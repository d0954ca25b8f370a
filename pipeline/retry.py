"""Retry policies: how many attempts a job gets and how long it waits between them."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts with exponential backoff and jitter (BullMQ's ``attempts`` + ``backoff``)."""

    attempts: int = 3
    backoff_s: float = 1.0
    max_delay_s: float = 300.0
    jitter: float = 0.2  # each delay is moved by up to this fraction, either way

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def delay_s(self, failed_attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after attempt ``failed_attempt`` (1-based) failed."""
        base: float = min(self.backoff_s * 2.0 ** (failed_attempt - 1), self.max_delay_s)
        spread: float = (rng or random).uniform(-self.jitter, self.jitter)
        return min(base * (1 + spread), self.max_delay_s)
