"""The opt-in schema registry (``PIPELINE_SCHEMA_REGISTRY_URL``): at start, register the
lifecycle schema under ``<job-events topic>-value`` (Confluent's TopicNameStrategy, which Kafka UI
and Confluent's deserializers look up), look up the ids of the earlier schema versions this code
reads, and switch this process to the registry's framing (``pipeline.events.use_registry``).

It speaks the Confluent Schema Registry REST API (Confluent Platform, Confluent Cloud, Karapace,
Apicurio's ccompat API, Redpanda) with the standard library's HTTP client, in a thread: it runs
once per process, so it needs no client library.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from pipeline.catalog import JOB_EVENTS
from pipeline.errors import SchemaRegistryError
from pipeline.events import current_fingerprint, schema_texts, use_registry
from pipeline.settings import Settings

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
TIMEOUT_S = 10.0


def subject(settings: Settings) -> str:
    """The subject the lifecycle schema is registered under."""
    return f"{JOB_EVENTS.name(settings)}-value"


async def prepare(settings: Settings) -> None:
    """Register the schema and switch to the registry's framing, when a registry is set."""
    if settings.schema_registry_url is None:
        return
    schema_id, ids = await asyncio.to_thread(register, settings)
    use_registry(schema_id, ids)
    logger.info(
        "lifecycle records in the registry's framing: schema id %d under %s",
        schema_id,
        subject(settings),
    )


def register(settings: Settings) -> tuple[int, dict[int, bytes]]:
    """Register the current schema; returns its id and the ids of every known schema the
    registry has under the subject (id -> fingerprint)."""
    texts = schema_texts()
    current = current_fingerprint()
    path = f"/subjects/{urllib.parse.quote(subject(settings), safe='')}"
    answer = _call(settings, f"{path}/versions", {"schema": texts[current]})
    schema_id = int(answer["id"])
    ids = {schema_id: current}
    for fingerprint, text in texts.items():
        if fingerprint == current:
            continue
        # Earlier versions are only looked up: registering them after the current one would
        # ask the registry to accept an older schema as the newest.
        found = _call(settings, path, {"schema": text}, missing_ok=True)
        if found is not None:
            ids[int(found["id"])] = fingerprint
    return schema_id, ids


def _call(settings: Settings, path: str, body: dict[str, Any], *, missing_ok: bool = False) -> Any:
    base = settings.schema_registry_url
    if base is None:
        raise SchemaRegistryError("no PIPELINE_SCHEMA_REGISTRY_URL is set")
    url = base.rstrip("/") + path
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE, **_auth(settings)},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        if missing_ok and exc.code == 404:
            return None
        detail = exc.read().decode(errors="replace")[:300]
        raise SchemaRegistryError(
            f"the schema registry answered {exc.code} to POST {path}: {detail}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        raise SchemaRegistryError(
            f"the schema registry at {base} cannot be reached ({exc}); "
            "check PIPELINE_SCHEMA_REGISTRY_URL"
        ) from None


def _auth(settings: Settings) -> dict[str, str]:
    if settings.schema_registry_password is None:
        return {}
    user = settings.schema_registry_username or ""
    secret = settings.schema_registry_password.get_secret_value()
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {token}"}
