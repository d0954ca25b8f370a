"""``PIPELINE_WEB_TOKEN``: when set, the web API and the dashboard answer only requests that
carry it, as ``Authorization: Bearer <token>`` (the command line, scripts, the workers asking
each other) or as HTTP Basic's password (a browser asks for it once; any user name). Unset,
they answer anyone who reaches the port, which is why the port binds 127.0.0.1 by default.
``/metrics`` stays open: Prometheus scrapes it, and it holds no job's data."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from typing import Any

from faust.web import Request, View

from pipeline.settings import Settings

logger = logging.getLogger(__name__)

REALM = 'Basic realm="pipeline", charset="UTF-8"'


def authorization(settings: Settings) -> dict[str, str]:
    """The header a request to another worker carries."""
    if settings.web_token is None:
        return {}
    return {"Authorization": f"Bearer {settings.web_token.get_secret_value()}"}


def allowed(settings: Settings, header: str | None) -> bool:
    """Whether a request with this ``Authorization`` header may be answered."""
    if settings.web_token is None:
        return True
    token = settings.web_token.get_secret_value().encode()
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() == "bearer":
        return hmac.compare_digest(given.strip().encode(), token)
    if scheme.lower() == "basic":
        try:
            password = base64.b64decode(given.strip(), validate=True).partition(b":")[2]
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(password, token)
    return False


def warn_if_open(settings: Settings) -> None:
    """One warning at start when the web API answers anyone beyond this machine."""
    if settings.web_token is None and settings.web_host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning(
            "the web API listens on %s without PIPELINE_WEB_TOKEN: anyone who reaches the port "
            "can redrive, discard and pause",
            settings.web_host,
        )


class GuardedView(View):
    """A view that wants the token when one is set."""

    async def dispatch(self, request: Request) -> Any:
        """Refuse with 401 before the view runs when the token is missing or wrong."""
        settings: Settings = self.app.pipeline_settings  # type: ignore[attr-defined]
        if not allowed(settings, request.headers.get("Authorization")):
            return self.json(
                {"error": "unauthorized: give the worker's PIPELINE_WEB_TOKEN"},
                status=401,
                headers={"WWW-Authenticate": REALM},
            )
        return await super().dispatch(request)
