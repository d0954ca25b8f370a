"""The email service against a real SMTP server (aiosmtpd), without Kafka or Faust."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import Any

import aiosmtplib.email
import pytest

from pipeline.services.email import (
    EmailService,
    PermanentEmailError,
    RenderedEmail,
    SmtpUnavailable,
    SmtpUnreachable,
    compose,
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


def parsed(email_: RenderedEmail) -> EmailMessage:
    """``email_`` composed, flattened as aiosmtplib sends it and read back by a modern reader."""
    flat = aiosmtplib.email.flatten_message(compose("no-reply@localhost", email_))
    message = email.message_from_bytes(flat, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_composes_text_and_html_alternatives() -> None:
    message = parsed(otp_email("ann@example.com", name="Zo\u00eb"))
    assert message.get_content_type() == "multipart/alternative"
    assert (message["From"], message["To"]) == ("no-reply@localhost", "ann@example.com")
    assert message["Message-ID"] == "<job-1@pipeline.jobs>"
    assert message["MIME-Version"] == "1.0"
    text, html = message.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert "Zo\u00eb" in text.get_content()
    assert "482913" in text.get_content()
    assert html.get_content_type() == "text/html"
    assert "482913" in html.get_content()
    assert "MIME-Version" not in text


def test_composes_headers_that_are_not_ascii_as_the_standards_say() -> None:
    email_ = render(
        "otp", to="zo\u00eb@example.com", subject="Votre code \u2013 Zo\u00eb",
        customer_name="Zo\u00eb", otp="482913", expires_in_minutes=10,
    )  # fmt: skip
    flat = aiosmtplib.email.flatten_message(compose("no-reply@localhost", email_), utf8=True)
    message = email.message_from_bytes(flat, policy=email.policy.default)
    assert message["Subject"] == "Votre code \u2013 Zo\u00eb"
    assert message["To"] == "zo\u00eb@example.com"
    assert "zo\u00eb@example.com".encode() in flat  # SMTPUTF8: the address itself, not RFC 2047


def test_a_line_longer_than_smtp_allows_is_encoded() -> None:
    email_ = render("otp", to="ann@example.com", subject="Code", customer_name="A" * 2000,
                    otp="482913", expires_in_minutes=10)  # fmt: skip
    flat = aiosmtplib.email.flatten_message(compose("no-reply@localhost", email_))
    assert max(len(line) for line in flat.splitlines()) <= 998
    assert "A" * 2000 in parsed(email_).get_body(("plain",)).get_content()  # type: ignore[union-attr]


@pytest.mark.parametrize("field", ["to", "subject"])
def test_a_line_break_in_a_header_is_refused(field: str) -> None:
    values = {"to": "ann@example.com", "subject": "Code", field: "x\r\nBcc: eve@example.com"}
    email_ = RenderedEmail(text="t", html="h", **values)
    with pytest.raises(PermanentEmailError, match="line break"):
        compose("no-reply@localhost", email_)
