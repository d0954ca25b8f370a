"""The Faust app, built from the settings."""

from __future__ import annotations

import gc
from collections.abc import Iterable
from typing import Any

import faust
from faust.types import ServiceT, TransportT
from faust.types.auth import CredentialsT

from pipeline.admin import check_partitions, ensure_topics, wait_for_kafka
from pipeline.catalog import all_tables, all_topics
from pipeline.compat.cli_help import tell_web_defaults
from pipeline.compat.store import URL_SCHEME
from pipeline.compat.transport import Transport
from pipeline.connection import tls_context
from pipeline.partitioning import default_partitioner
from pipeline.registry import prepare as prepare_registry
from pipeline.settings import Settings
from pipeline.web_auth import warn_if_open

GC_YOUNG_THRESHOLD = 10_000


class PipelineApp(faust.App):
    """The Faust app, which creates every topic of the project before it subscribes to any."""

    def __init__(self, *args: Any, settings: Settings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pipeline_settings = settings

    def every_changelog(self) -> set[str]:
        """The changelog topic of every role's tables, declared in this process or not (Faust
        names a table's changelog ``<app id>-<table>-changelog``)."""
        return {f"{self.conf.id}-{name}-changelog" for name in all_tables()}

    def on_init_dependencies(self) -> Iterable[ServiceT]:
        """Set the broker credentials as the worker starts, before any client exists: TLS
        files are read then, not when the module is imported."""
        self.conf.broker_credentials = broker_credentials(self.pipeline_settings)
        return super().on_init_dependencies()

    def _new_transport(self) -> TransportT:
        return Transport(self.conf.broker_consumer, self)

    async def on_first_start(self) -> None:
        """Wait for Kafka (a worker may start before it), then create missing topics: a
        consumer that subscribes to a topic that does not exist yet is given no partitions of
        it until its next metadata refresh (minutes). Changelogs too, before Faust's recovery
        looks for them. Then refuse to run on topics partitioned unlike the settings say. With
        a schema registry, register the lifecycle schema before any record is written."""
        warn_if_open(self.pipeline_settings)
        await wait_for_kafka(self.pipeline_settings)
        await prepare_registry(self.pipeline_settings)
        changelogs = {
            table.changelog_topic.get_topic_name(): table.partitions
            for table in self.tables.values()
        }
        await ensure_topics(self.pipeline_settings, all_topics(), changelogs)
        await check_partitions(self.pipeline_settings, all_topics())
        await super().on_first_start()
        # Every module is loaded by now: keep those objects out of every collection from here on,
        # and collect the young generation less often. A noop job allocates a few hundred
        # objects, and with Python's default threshold (700) the collector took 4 % of the
        # worker's time under load.
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def broker_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's form of the settings' security protocol: its driver turns it back into the same
    aiokafka arguments ``pipeline.connection.client_options`` gives every other client."""
    protocol = settings.kafka_security_protocol
    if protocol == "SSL":
        return faust.SSLCredentials(tls_context(settings))
    if protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None  # the settings refuse SASL without it
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            ssl_context=tls_context(settings) if protocol == "SASL_SSL" else None,
            mechanism=settings.kafka_sasl_mechanism,
        )
    return None


def create_app(settings: Settings) -> PipelineApp:
    """Build the Faust app for ``settings``; opens no connection until the worker starts."""
    return PipelineApp(
        settings.app_id,
        broker=settings.kafka_broker_urls,
        store=f"{URL_SCHEME}://" if settings.table_store == "rocksdb" else "memory://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        # Table keys (job ids) and values as JSON; every topic in topics.py sets its own.
        key_serializer="json",
        value_serializer="json",
        # Jobs enqueued before a worker's first start must still run.
        consumer_auto_offset_reset="earliest",
        # A job is only acknowledged once every replica has it.
        producer_acks=-1,
        producer_linger_ms=settings.kafka_producer_linger_ms,
        # Terminal records are keyed by job id: the same partitions, hashed in compiled code.
        producer_partitioner=default_partitioner,
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=settings.kafka_session_timeout_s / 3,
        web_host=settings.web_host,
        # Without it Faust listens on every interface, whatever web_host says.
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        loghandlers=[],
        Worker="pipeline.worker:Worker",
        # Every role's tables count as tables whatever role the group's leader has.
        PartitionAssignor="pipeline.compat.assignor:PartitionAssignor",
        # Cron runs on the group's leader: a monitor of its own, which runs no cron, must never
        # be elected (Faust's assignor gives the leader topic to one of its subscribers).
        topic_disable_leader=not settings.runs_jobs,
        settings=settings,
    )


settings = Settings()
app = create_app(settings)
tell_web_defaults(settings)
