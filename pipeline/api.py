"""The worker's web API as the ``pipeline`` command asks it: job states, lists and counts, which
live in the monitor's tables. Free of Faust; the standard library's HTTP client, since the
command makes one or two requests and should start fast."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from pipeline.errors import CommandError, NotFound, Unreachable
from pipeline.settings import Settings

TIMEOUT_S = 30.0


def base_url(settings: Settings) -> str:
    """Where the command line finds the worker's web API."""
    return (settings.api_url or f"http://127.0.0.1:{settings.web_port}").rstrip("/")


def get(settings: Settings, path: str, **query: str | int | None) -> Any:
    """The JSON of ``GET path?query`` (None values left out)."""
    given = {name: str(value) for name, value in query.items() if value is not None}
    url = f"{base_url(settings)}{path}" + (f"?{urllib.parse.urlencode(given)}" if given else "")
    request = urllib.request.Request(url, headers=_headers(settings))
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise _refused(exc) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(
            f"the worker's web API at {base_url(settings)} did not answer ({reason}); start a "
            "worker that runs the monitor, or point PIPELINE_API_URL at one"
        ) from None


def _headers(settings: Settings) -> dict[str, str]:
    headers = {"Accept": "application/json"}
    if settings.web_token is not None:
        headers["Authorization"] = f"Bearer {settings.web_token.get_secret_value()}"
    return headers


def _refused(exc: urllib.error.HTTPError) -> CommandError:
    try:
        message = str(json.loads(exc.read()).get("error") or exc.reason)
    except (ValueError, AttributeError):
        message = str(exc.reason)
    if exc.code == 404:
        return NotFound(message)
    if exc.code == 401:
        return CommandError("unauthorized: set PIPELINE_WEB_TOKEN to the worker's token")
    return CommandError(f"the web API refused: {message} (HTTP {exc.code})")
