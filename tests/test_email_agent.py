"""Agent logic with Faust's in-memory test context (no broker)."""

from __future__ import annotations

import logging

import pytest

from pipeline.agents.email import email_agent


async def test_email_agent_takes_a_job(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.agents.email")
    async with email_agent.test_context() as agent:
        await agent.put(b'{"email": "a@example.com"}', key=b"otp-email-verification")
    assert "email job received: name=otp-email-verification" in caplog.text
