"""The one settings object. Every knob is an environment variable prefixed ``PIPELINE_``.

Variables (defaults in brackets):

- ``PIPELINE_KAFKA_BOOTSTRAP_SERVERS`` [localhost:9092]: Kafka brokers, comma separated.
- ``PIPELINE_APP_ID`` [pipeline]: Faust app id: the consumer group and the prefix of Faust's
  internal topics (changelogs).
- ``PIPELINE_TOPIC_PREFIX`` [""]: put before every topic name, so several deployments (or tests)
  share one cluster.
- ``PIPELINE_TOPIC_PARTITIONS`` [6]: partitions of the job topics when the worker creates them.
- ``PIPELINE_TOPIC_REPLICATION_FACTOR`` [1]: replicas of topics the worker creates.
- ``PIPELINE_WEB_HOST`` [127.0.0.1] and ``PIPELINE_WEB_PORT`` [6066]: the worker's web server.
- ``PIPELINE_DATA_DIR`` [pipeline-data]: Faust's local state folder.
- ``PIPELINE_LOG_LEVEL`` [INFO].
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Runtime configuration, read from ``PIPELINE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="PIPELINE_", extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        "localhost:9092", description="Kafka bootstrap servers, comma separated host:port pairs."
    )
    app_id: str = Field(
        "pipeline",
        description="Faust app id: consumer group id and prefix of Faust's internal topics.",
    )
    topic_prefix: str = Field(
        "", description="Prefix for every topic name, to share one cluster between deployments."
    )
    topic_partitions: int = Field(
        6, ge=1, description="Partitions of each job topic when the worker creates it."
    )
    topic_replication_factor: int = Field(
        1, ge=1, description="Replication factor of topics the worker creates."
    )
    web_host: str = Field("127.0.0.1", description="Interface the worker's web server binds.")
    web_port: int = Field(6066, ge=0, le=65535, description="Port of the worker's web server.")
    data_dir: Path = Field(
        Path("pipeline-data"), description="Faust's local state folder (table checkpoints)."
    )
    log_level: str = Field("INFO", description="Log level of the worker.")

    @property
    def kafka_broker_urls(self) -> list[str]:
        """The bootstrap servers as Faust broker URLs (``kafka://host:port``)."""
        return [f"kafka://{host.strip()}" for host in self.kafka_bootstrap_servers.split(",")]
