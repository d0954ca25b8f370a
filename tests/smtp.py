"""A real SMTP server for tests (aiosmtpd on a free port) that records what it accepts.

Rules per recipient make it refuse for good (550), defer (421) a number of times, or hold a
message before answering, as real servers do.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Received:
    """One accepted message."""

    recipients: tuple[str, ...]
    message: EmailMessage
    accepted_at: float = 0.0  # time.monotonic() when the server accepted it

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part else ""

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part else ""


@dataclass
class SmtpSink:
    """An SMTP server the tests can stop, start and read."""

    port: int
    hold_s: float = 0.0
    refuse: set[str] = field(default_factory=set)  # recipients answered 550
    defer: dict[str, int] = field(default_factory=dict)  # recipient -> times to answer 421
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    holding_s: float = 0.0  # how long the message being held now is held (0: none is)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self._lock:
            self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self._lock:
            if address in self.refuse:
                return "550 5.1.1 no such mailbox"
            if self.defer.get(address, 0) > 0:
                self.defer[address] -= 1
                return "421 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.hold_s:
            self.holding_s = self.hold_s
            try:
                await asyncio.sleep(self.hold_s)
            finally:
                self.holding_s = 0.0
            if server.transport is None or server.transport.is_closing():
                # The client went away before our answer: the message was never accepted.
                return "421 4.4.2 connection lost"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.received.append(Received(tuple(envelope.rcpt_tos), message, time.monotonic()))
        return "250 OK"

    def worker_env(self, **extra: str) -> dict[str, str]:
        """A worker's environment that sends its mail here, plus ``extra``."""
        return {"PIPELINE_SMTP_HOST": "127.0.0.1", "PIPELINE_SMTP_PORT": str(self.port), **extra}

    def start(self) -> None:
        """Listen on ``port`` (again)."""
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        """Stop listening; clients get connection refused."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages_to(self, address: str) -> list[Received]:
        """Accepted messages for ``address``."""
        with self._lock:
            return [r for r in self.received if address in r.recipients]

    async def wait_for_count(self, count: int, timeout_s: float = 60.0) -> list[Received]:
        """Wait until at least ``count`` messages were accepted."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            await asyncio.sleep(0.05)
        raise AssertionError(f"only {len(self.received)} of {count} messages arrived")
