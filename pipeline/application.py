"""The Faust app, built from the settings."""

from __future__ import annotations

import faust

from pipeline.settings import Settings


def create_app(settings: Settings) -> faust.App:
    """Build the Faust app for ``settings``; opens no connection until the worker starts."""
    return faust.App(
        settings.app_id,
        broker=settings.kafka_broker_urls,
        # Tables are small (job ids, counts) and rebuilt from their changelogs on start-up.
        store="memory://",
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
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=settings.kafka_session_timeout_s / 3,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        loghandlers=[],
    )


settings = Settings()
app = create_app(settings)
