"""A circuit breaker per queue: an outage of a dependency pauses the queue instead of failing
every job through its attempts. Free of Faust.

Closed, jobs run. A job whose dependency cannot be reached at all (``DependencyDown``: SMTP
connection refused, S3 endpoint down) opens it: the queue takes no new jobs, and that job waits
with its attempt unspent. After a pause (1 s, doubling to ``max_pause_s``) one waiting job runs
as the probe. If the dependency answers, whatever the job's own outcome, the breaker closes and
every waiting job goes on; if not, the pause doubles. Attempts are left for errors of the job
itself, as in Celery's ``autoretry_for`` with a broker-wide pause (Resilience4j's breaker is
the model for the states).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

# Called with (opened, cause, paused_s) when the breaker opens or closes.
OnChange = Callable[[bool, str, float], Awaitable[None]]


class CircuitBreaker:
    """Whether a queue's dependency is thought reachable, and who may try it next."""

    def __init__(
        self,
        *,
        first_pause_s: float = 1.0,
        max_pause_s: float = 30.0,
        on_change: OnChange | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._first_pause_s = first_pause_s
        self._max_pause_s = max_pause_s
        self._on_change = on_change
        self._clock = clock
        self._closed = asyncio.Event()
        self._closed.set()
        self._pause_s = first_pause_s
        self._probe_at = 0.0
        self._probing = False
        self._opened_at = 0.0
        self.cause = ""

    @property
    def is_open(self) -> bool:
        """Whether the queue is paused."""
        return not self._closed.is_set()

    async def admit(self) -> bool:
        """Wait until a job may run; returns whether it runs as the probe of an open breaker."""
        while not self._closed.is_set():
            now = self._clock()
            if not self._probing and now >= self._probe_at:
                self._probing = True
                return True
            # Wake at the probe time, or now and then while a probe runs (it may be abandoned).
            wait_s = self._probe_at - now if not self._probing else self._first_pause_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), max(wait_s, 0.01))
        return False

    async def unreachable(self, cause: str, *, probe: bool) -> None:
        """A job (the probe, or one that started before the opening) found the dependency
        unreachable: open, or after a failed probe stay open for a longer pause."""
        if probe:
            self._probing = False
        now = self._clock()
        if self._closed.is_set():
            self._closed.clear()
            self._pause_s = self._first_pause_s
            self._opened_at = now
            self.cause = cause
            self._probe_at = now + self._pause_s
            if self._on_change is not None:
                await self._on_change(True, cause, 0.0)
            return
        if probe:
            self._pause_s = min(self._pause_s * 2, self._max_pause_s)
            self._probe_at = now + self._pause_s

    async def reachable(self) -> None:
        """A job reached the dependency: close, if open."""
        self._probing = False
        if self._closed.is_set():
            return
        self._closed.set()
        paused_s = self._clock() - self._opened_at
        if self._on_change is not None:
            await self._on_change(False, self.cause, paused_s)

    def abandon_probe(self) -> None:
        """The probe ended without an answer (cancelled): let another job probe."""
        self._probing = False
