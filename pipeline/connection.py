"""How every Kafka client of the project connects: the one place where the security settings
become aiokafka's arguments. Free of Faust, so producers use it without the worker; the worker
hands the same context to Faust (``pipeline.application``)."""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Protocol

from aiokafka.conn import AIOKafkaConnection, create_conn
from aiokafka.errors import KafkaConnectionError, KafkaError, SaslAuthenticationFailed
from aiokafka.helpers import create_ssl_context

from pipeline.errors import ConfigurationError, KafkaRefused
from pipeline.settings import Settings

PROBE_S = 5


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments that connect any aiokafka client (producer, consumer, admin) to the
    brokers the settings name, with their security protocol."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": protocol,
    }
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = tls_context(settings)
    if protocol.startswith("SASL_"):
        # The settings refuse a SASL protocol without both (Settings' validator).
        assert settings.kafka_sasl_password is not None
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    return options


def tls_context(settings: Settings) -> ssl.SSLContext:
    """A client TLS context: the settings' CA file (else the system's authorities), this client's
    certificate when one is set, and the broker's host name checked against its certificate."""
    key_password = settings.kafka_ssl_key_password
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
            password=key_password.get_secret_value() if key_password else None,
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"cannot load the Kafka TLS files (PIPELINE_KAFKA_SSL_*): {exc}"
        ) from exc
    return context


async def connect_one(settings: Settings, address: str, **kwargs: Any) -> AIOKafkaConnection:
    """One connection to the broker at ``address`` (that one, not any of the cluster), as the
    settings say."""
    host, _, port = address.rpartition(":")
    options = client_options(settings)
    del options["bootstrap_servers"]
    connection: AIOKafkaConnection = await create_conn(host, int(port), **options, **kwargs)
    return connection


async def refusal(settings: Settings) -> KafkaRefused | None:
    """Why the first bootstrap broker refuses this client, or None when it accepts it or cannot
    be reached at all. aiokafka only says "Unable to bootstrap" for all of these; one connection
    of our own tells them apart, so the error can name the setting to fix."""
    address = settings.kafka_bootstrap_servers.split(",")[0].strip()
    host, _, port = address.rpartition(":")
    protocol = settings.kafka_security_protocol
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), PROBE_S)
    except (OSError, TimeoutError):
        return None  # not reachable: an outage, not a refusal
    writer.close()
    try:
        # aiokafka's connection asks for the broker's API versions, then authenticates.
        conn = await connect_one(settings, address, request_timeout_ms=PROBE_S * 1000)
    except SaslAuthenticationFailed:
        return KafkaRefused(
            f"Kafka at {address} refused user {settings.kafka_sasl_username!r} "
            f"({settings.kafka_sasl_mechanism}): check PIPELINE_KAFKA_SASL_USERNAME and "
            "PIPELINE_KAFKA_SASL_PASSWORD"
        )
    except ssl.SSLCertVerificationError as exc:
        return KafkaRefused(
            f"Kafka at {address} sent a certificate this client does not trust "
            f"({exc.verify_message}): set PIPELINE_KAFKA_SSL_CAFILE to the authority that "
            "signed it"
        )
    except TimeoutError:
        return None  # reachable but slow: treated as an outage
    except (ssl.SSLError, OSError) as exc:
        if "SSL" not in protocol:
            return _closed(address, protocol)
        return KafkaRefused(
            f"Kafka at {address} did not complete a TLS handshake ({exc.__class__.__name__}): "
            f"its listener may not use TLS (PIPELINE_KAFKA_SECURITY_PROTOCOL is {protocol})",
            definite=False,
        )
    except KafkaConnectionError:
        return _closed(address, protocol)
    except KafkaError as exc:
        return KafkaRefused(
            f"Kafka at {address} refused the SASL handshake ({exc}): its listener may use "
            f"another security protocol or mechanism (PIPELINE_KAFKA_SECURITY_PROTOCOL is "
            f"{protocol})"
        )
    conn.close()
    return None


def _closed(address: str, protocol: str) -> KafkaRefused:
    return KafkaRefused(
        f"Kafka at {address} closed the connection at the first request: its listener may "
        f"want TLS, SASL or a client certificate (PIPELINE_KAFKA_SECURITY_PROTOCOL is {protocol})",
        definite=False,
    )


class _Startable(Protocol):
    async def start(self) -> None: ...


async def start_client(settings: Settings, client: _Startable) -> None:
    """``client.start()``, with a refusal told apart from an outage (``refusal``)."""
    try:
        await client.start()
    except KafkaConnectionError:
        refused = await refusal(settings)
        if refused is not None:
            raise refused from None
        raise
