"""The email service against a real SMTP server (aiosmtpd), without Kafka or Faust."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline.services.email import (
    EmailService,
    PermanentEmailError,
    RenderedEmail,
    SmtpUnavailable,
    SmtpUnreachable,
    render,
)
from pipeline.settings import Settings
from tests.smtp import SmtpSink


def service_for(sink: SmtpSink, **overrides: Any) -> EmailService:
    return EmailService(
        Settings(smtp_host="127.0.0.1", smtp_port=sink.port, smtp_timeout_s=5, **overrides)
    )


def otp_email(to: str, name: str = "Ann", otp: str = "482913") -> RenderedEmail:
    return render(
        "otp", to=to, subject="Your verification code", customer_name=name, otp=otp,
        expires_in_minutes=10, message_id="<job-1@pipeline.jobs>",
    )  # fmt: skip


async def test_sends_text_and_html_parts_with_escaped_fields(smtp_sink: SmtpSink) -> None:
    service = service_for(smtp_sink)
    email = render(
        "otp", to="ann@example.com", subject="Your verification code",
        customer_name="<script>alert(1)</script>", otp="482913", expires_in_minutes=10,
    )  # fmt: skip
    message_id = await service.send(email)
    await service.close()

    [received] = await smtp_sink.wait_for_count(1)
    assert received.recipients == ("ann@example.com",)
    assert received.message["Subject"] == "Your verification code"
    assert received.message["Message-ID"] == message_id
    assert "482913" in received.text
    assert "482913" in received.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in received.html
    assert "<script>" not in received.html


async def test_reuses_connections_across_messages(smtp_sink: SmtpSink) -> None:
    service = service_for(smtp_sink, smtp_pool_size=1)
    for index in range(5):
        await service.send(otp_email(f"user{index}@example.com"))
    await service.close()
    assert len(await smtp_sink.wait_for_count(5)) == 5
    assert service.connections_opened == 1
    assert smtp_sink.connections == 1


async def test_a_refused_recipient_is_permanent(smtp_sink: SmtpSink) -> None:
    smtp_sink.refuse.add("gone@example.com")
    service = service_for(smtp_sink)
    with pytest.raises(PermanentEmailError, match="refused"):
        await service.send(otp_email("gone@example.com"))
    await service.close()


async def test_a_deferred_recipient_and_a_down_server_are_transient(smtp_sink: SmtpSink) -> None:
    smtp_sink.defer["later@example.com"] = 1
    service = service_for(smtp_sink)
    with pytest.raises(SmtpUnavailable, match="deferred"):
        await service.send(otp_email("later@example.com"))
    smtp_sink.stop()
    with pytest.raises(SmtpUnreachable, match="unreachable"):
        await service.send(otp_email("later@example.com"))
    smtp_sink.start()
    await service.send(otp_email("later@example.com"))
    await service.close()
    assert len(smtp_sink.messages_to("later@example.com")) == 1
