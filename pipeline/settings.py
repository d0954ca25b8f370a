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
- ``PIPELINE_KAFKA_SESSION_TIMEOUT_S`` [10]: a worker silent this long loses its partitions.
- ``PIPELINE_WORKER_ID`` [host:pid]: names this worker in lifecycle records.
- ``PIPELINE_MAX_JOB_BYTES`` [262144]: larger job records are dead-lettered unread.
- ``PIPELINE_EMAIL_CONCURRENCY`` [3]: email jobs one worker runs at once.
- ``PIPELINE_EMAIL_RATE_LIMIT_JOBS`` [10] per ``PIPELINE_EMAIL_RATE_LIMIT_PERIOD_MS`` [150]:
  the email limiter, per worker.
- ``PIPELINE_SMTP_HOST`` [localhost], ``PIPELINE_SMTP_PORT`` [1025],
  ``PIPELINE_SMTP_USERNAME`` / ``PIPELINE_SMTP_PASSWORD`` [none],
  ``PIPELINE_SMTP_SECURITY`` [none | starttls | tls], ``PIPELINE_SMTP_TIMEOUT_S`` [10],
  ``PIPELINE_SMTP_POOL_SIZE`` [3]: reused connections, ``PIPELINE_SMTP_FROM_ADDRESS``
  [no-reply@localhost].
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
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
    kafka_session_timeout_s: float = Field(
        10.0,
        gt=0,
        description="How long the group waits for a silent worker before giving its partitions "
        "to the others (a crashed worker's jobs resume after this).",
    )
    worker_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}",
        description="Names this worker in lifecycle records.",
    )
    max_job_bytes: int = Field(
        262_144, ge=1, description="Job records larger than this are dead-lettered unread."
    )

    email_concurrency: int = Field(3, ge=1, description="Email jobs one worker runs at once.")
    email_rate_limit_jobs: int = Field(
        10, ge=1, description="Email jobs allowed per rate-limit period, per worker."
    )
    email_rate_limit_period_ms: int = Field(
        150, ge=1, description="Length of the email rate-limit period."
    )

    smtp_host: str = Field("localhost", description="SMTP server host.")
    smtp_port: int = Field(1025, ge=1, le=65535, description="SMTP server port.")
    smtp_username: str | None = Field(None, description="SMTP login user; none: no login.")
    smtp_password: SecretStr | None = Field(None, description="SMTP login password.")
    smtp_security: Literal["none", "starttls", "tls"] = Field(
        "none", description="none, STARTTLS after connecting, or implicit TLS (port 465)."
    )
    smtp_timeout_s: float = Field(10.0, gt=0, description="Timeout of each SMTP operation.")
    smtp_pool_size: int = Field(3, ge=1, description="SMTP connections kept open and reused.")
    smtp_from_address: str = Field("no-reply@localhost", description="From address of every email.")

    @property
    def kafka_broker_urls(self) -> list[str]:
        """The bootstrap servers as Faust broker URLs (``kafka://host:port``)."""
        return [f"kafka://{host.strip()}" for host in self.kafka_bootstrap_servers.split(",")]
