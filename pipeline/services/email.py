"""Sending email over SMTP with aiosmtplib: templates, a pool of reused connections, timeouts.

SMTP errors are sorted at this boundary: a 5xx answer about the recipient or the message is a
``PermanentEmailError`` (retrying cannot help); a server that cannot be reached at all is
``SmtpUnreachable`` (the queue pauses until it answers); timeouts and 4xx answers are
``SmtpUnavailable`` (the job is retried later).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import make_msgid
from typing import Any

import aiosmtplib
import jinja2

from pipeline.errors import DependencyDown, PermanentJobError, TransientJobError
from pipeline.settings import Settings

logger = logging.getLogger(__name__)


class SmtpUnavailable(TransientJobError):
    """The SMTP server could not be reached or asked us to try later."""


class SmtpUnreachable(DependencyDown):
    """No connection to the SMTP server could be made, or it went away mid-conversation."""


class PermanentEmailError(PermanentJobError):
    """The SMTP server refused the recipient or the message for good."""


@dataclass(frozen=True)
class RenderedEmail:
    """A message ready to send."""

    to: str
    subject: str
    text: str
    html: str
    message_id: str | None = None  # derived from the job id, so a re-send is recognisably a copy


_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("pipeline", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    # The templates ship inside the package and do not change under a running worker: without
    # this, every render stats both template files (about 2 % of an email job's CPU).
    auto_reload=False,
)


def render(
    template: str, *, to: str, subject: str, message_id: str | None = None, **fields: Any
) -> RenderedEmail:
    """Render ``email/<template>.txt`` and ``.html``; HTML escapes every field."""
    return RenderedEmail(
        to=to,
        subject=subject,
        message_id=message_id,
        text=_templates.get_template(f"email/{template}.txt").render(**fields),
        html=_templates.get_template(f"email/{template}.html").render(**fields),
    )


def compose(sender: str, email: RenderedEmail) -> Message:
    """``email`` as a multipart/alternative message (text, then HTML) from ``sender``.

    Built with the standard library's legacy MIME classes when every header is ASCII: the
    ``EmailMessage`` API parses each header through its header registry and made building and
    flattening an OTP email cost about 2.6 ms against 0.5 ms, the largest part of an email job's
    CPU. An address or subject that is not ASCII takes ``EmailMessage``, which writes it as
    SMTPUTF8 and RFC 2047 require.
    """
    headers = {
        "From": sender,
        "To": email.to,
        "Subject": email.subject,
        "Message-ID": email.message_id or make_msgid(domain="pipeline.local"),
    }
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            # The legacy classes would write it as is: a header injection.
            raise PermanentEmailError(f"the {name} header holds a line break")
    if not all(value.isascii() for value in headers.values()):
        message = EmailMessage()
        for name, value in headers.items():
            message[name] = value
        message.set_content(email.text)
        message.add_alternative(email.html, subtype="html")
        return message
    # A boundary of our own: without one, the generator compiles a regular expression per
    # message to pick one that the body does not contain; 128 random bits never occur in it.
    legacy = MIMEMultipart("alternative", boundary=f"=_{os.urandom(16).hex()}")
    for name, value in headers.items():
        legacy[name] = value
    legacy.attach(_text_part(email.text, "plain"))
    legacy.attach(_text_part(email.html, "html"))
    return legacy


# RFC 5322's limit on a line; a longer one must be encoded (base64 here) to travel as is.
MAX_LINE = 998


def _text_part(text: str, subtype: str) -> MIMEText:
    plain = text.isascii() and all(len(line) <= MAX_LINE for line in text.splitlines())
    part = MIMEText(text, subtype, "us-ascii" if plain else "utf-8")
    del part["MIME-Version"]  # the legacy classes repeat it in every part; once is enough
    return part


class EmailService:
    """Sends rendered emails through a small pool of SMTP connections kept open between jobs."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._idle: asyncio.LifoQueue[aiosmtplib.SMTP] = asyncio.LifoQueue()
        self._slots = asyncio.Semaphore(settings.smtp_pool_size)
        self.connections_opened = 0

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self._settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            timeout=s.smtp_timeout_s,
            use_tls=s.smtp_security == "tls",
            start_tls=s.smtp_security == "starttls",
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
        )
        await client.connect()
        self.connections_opened += 1
        return client

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[aiosmtplib.SMTP]:
        async with self._slots:
            client = None
            while not self._idle.empty():
                candidate = self._idle.get_nowait()
                if candidate.is_connected:
                    client = candidate
                    break
            if client is None:
                client = await self._connect()
            try:
                yield client
            except BaseException:
                # A failed conversation leaves the connection in an unknown state: drop it.
                client.close()
                raise
            self._idle.put_nowait(client)

    async def send(self, email: RenderedEmail) -> str:
        """Send ``email``; returns its Message-ID."""
        message = compose(self._settings.smtp_from_address, email)
        try:
            try:
                async with self._connection() as client:
                    await client.send_message(message)
            except aiosmtplib.SMTPServerDisconnected:
                # A pooled connection the server has since closed: one more try on a fresh one.
                async with self._connection() as client:
                    await client.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refusal.code for refusal in exc.recipients]
            if all(code >= 500 for code in codes):
                raise PermanentEmailError(
                    f"recipient refused by the SMTP server ({codes})"
                ) from exc
            raise SmtpUnavailable(f"recipient deferred by the SMTP server ({codes})") from exc
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code >= 500:
                raise PermanentEmailError(f"SMTP server refused the message ({exc.code})") from exc
            raise SmtpUnavailable(f"SMTP server answered {exc.code}") from exc
        except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPServerDisconnected) as exc:
            # SMTPConnectError also covers a connection attempt that timed out.
            raise self._unreachable(exc) from exc
        except (TimeoutError, aiosmtplib.SMTPException) as exc:
            # Before OSError, which TimeoutError is: a server that answers slowly is reachable.
            raise SmtpUnavailable(
                f"SMTP server {self._settings.smtp_host}:{self._settings.smtp_port} "
                f"unavailable ({type(exc).__name__})"
            ) from exc
        except OSError as exc:  # refused, reset, no route
            raise self._unreachable(exc) from exc
        return str(message["Message-ID"])

    def _unreachable(self, exc: Exception) -> SmtpUnreachable:
        s = self._settings
        return SmtpUnreachable(
            f"SMTP server {s.smtp_host}:{s.smtp_port} unreachable ({type(exc).__name__})"
        )

    async def close(self) -> None:
        """Close the idle connections."""
        while not self._idle.empty():
            client = self._idle.get_nowait()
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
