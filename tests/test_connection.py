"""How clients connect: security settings to aiokafka's and Faust's arguments, topic durability
(no broker)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from pydantic import SecretStr, ValidationError

from pipeline.admin import topic_durability
from pipeline.application import broker_credentials
from pipeline.connection import client_options
from pipeline.errors import ConfigurationError
from pipeline.settings import Settings

SASL = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_username": "pipeline",
    "kafka_sasl_password": SecretStr("hunter2-not-logged"),
}


def test_plaintext_passes_nothing_but_the_brokers() -> None:
    settings = Settings(kafka_bootstrap_servers="a:9092,b:9092")
    assert client_options(settings) == {
        "bootstrap_servers": "a:9092,b:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert broker_credentials(settings) is None


def test_sasl_ssl_gives_aiokafka_and_faust_the_same_user_and_a_verifying_tls_context() -> None:
    settings = Settings(**SASL)  # type: ignore[arg-type]
    options = client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "pipeline",
        "hunter2-not-logged",
    )
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    credentials = broker_credentials(settings)
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL"
    assert credentials.mechanism.value == "SCRAM-SHA-512"
    assert "hunter2" not in repr(credentials)


def test_ssl_alone_is_tls_without_a_user() -> None:
    settings = Settings(kafka_security_protocol="SSL")
    options = client_options(settings)
    assert set(options) == {"bootstrap_servers", "security_protocol", "ssl_context"}
    assert isinstance(broker_credentials(settings), SSLCredentials)


def test_a_sasl_protocol_without_its_user_is_refused_naming_both_variables() -> None:
    with pytest.raises(
        ValidationError, match="PIPELINE_KAFKA_SASL_USERNAME and PIPELINE_KAFKA_SASL_PASSWORD"
    ):
        Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="pipeline")


def test_a_missing_ca_file_is_one_configuration_error(tmp_path: Path) -> None:
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=tmp_path / "none.pem")
    with pytest.raises(ConfigurationError, match=r"cannot load the Kafka TLS files"):
        client_options(settings)


def test_topics_keep_an_acknowledged_record_through_one_lost_broker_of_three() -> None:
    assert topic_durability(Settings()) == {
        "min.insync.replicas": "1",
        "unclean.leader.election.enable": "false",
    }
    assert topic_durability(Settings(topic_replication_factor=3))["min.insync.replicas"] == "2"
    assert (
        topic_durability(Settings(topic_replication_factor=3, topic_min_insync_replicas=3))[
            "min.insync.replicas"
        ]
        == "3"
    )
    with pytest.raises(ValidationError, match="no record could ever be acknowledged"):
        Settings(topic_replication_factor=1, topic_min_insync_replicas=2)
