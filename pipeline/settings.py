"""The one settings object. Every knob is an environment variable prefixed ``PIPELINE_``.

Variables (defaults in brackets):

- ``PIPELINE_KAFKA_BOOTSTRAP_SERVERS`` [localhost:9092]: Kafka brokers, comma separated.
- ``PIPELINE_KAFKA_SECURITY_PROTOCOL`` [PLAINTEXT | SSL | SASL_SSL | SASL_PLAINTEXT], with
  ``PIPELINE_KAFKA_SASL_MECHANISM`` [SCRAM-SHA-512], ``_SASL_USERNAME`` / ``_SASL_PASSWORD``,
  ``_SSL_CAFILE`` [the system's authorities], ``_SSL_CERTFILE`` / ``_SSL_KEYFILE`` /
  ``_SSL_KEY_PASSWORD`` [none]: how every client of the project connects
  (``pipeline.connection``).
- ``PIPELINE_APP_ID`` [pipeline]: Faust app id: the consumer group and the prefix of Faust's
  internal topics (changelogs).
- ``PIPELINE_TOPIC_PREFIX`` [""]: put before every topic name, so several deployments (or tests)
  share one cluster.
- ``PIPELINE_TOPIC_PARTITIONS`` [6]: partitions of the job topics when the worker creates them.
- ``PIPELINE_TOPIC_REPLICATION_FACTOR`` [1]: replicas of topics the worker creates;
  ``PIPELINE_TOPIC_MIN_INSYNC_REPLICAS`` [one less, at least 1]: their min.insync.replicas.
- ``PIPELINE_WEB_HOST`` [127.0.0.1] and ``PIPELINE_WEB_PORT`` [6066]: the worker's web server.
- ``PIPELINE_DATA_DIR`` [pipeline-data]: Faust's local state folder.
- ``PIPELINE_LOG_LEVEL`` [INFO].
- ``PIPELINE_KAFKA_SESSION_TIMEOUT_S`` [10]: a worker silent this long loses its partitions.
- ``PIPELINE_WORKER_ID`` [host:pid]: names this worker in lifecycle records.
- ``PIPELINE_MAX_JOB_BYTES`` [262144]: larger job records are dead-lettered unread.
- ``PIPELINE_BREAKER_MAX_PAUSE_S`` [30]: while a queue's dependency is unreachable the queue
  pauses and probes it, 1 s apart at first, then doubling up to this.
- Per queue, one group of variables named ``PIPELINE_<QUEUE>__<SETTING>``: ``EMAIL`` and
  ``MEDIA_UPLOAD`` for the built-in queues (``PIPELINE_QUEUES__<QUEUE>__<SETTING>`` for a queue a
  job module registers): ``CONCURRENCY`` [email 3, media 2]: jobs one worker runs at once;
  ``JOB_TIMEOUT_S`` [email 60, media 1800]: a job still running after it is recorded as stalled
  and retried; ``RATE_LIMIT_JOBS`` per ``RATE_LIMIT_PERIOD_MS`` [email 10 per 150; media none]:
  the queue's limiter, per worker; ``ENABLED`` [true]: false leaves the queue to other workers.
  The flat names of earlier versions (``PIPELINE_EMAIL_CONCURRENCY``,
  ``PIPELINE_MEDIA_JOB_TIMEOUT_S`` and the like) still work; the nested name wins over them.
- ``PIPELINE_JOB_MODULES`` [none; JSON list]: modules the worker imports at start, which register
  job types and queues of their own (``pipeline.jobs.registry``, ``pipeline.catalog``).
- ``PIPELINE_SMTP_HOST`` [localhost], ``PIPELINE_SMTP_PORT`` [1025],
  ``PIPELINE_SMTP_USERNAME`` / ``PIPELINE_SMTP_PASSWORD`` [none],
  ``PIPELINE_SMTP_SECURITY`` [none | starttls | tls], ``PIPELINE_SMTP_TIMEOUT_S`` [10],
  ``PIPELINE_SMTP_POOL_SIZE`` [3]: reused connections, ``PIPELINE_SMTP_FROM_ADDRESS``
  [no-reply@localhost].
- ``PIPELINE_S3_ENDPOINT_URL`` [http://127.0.0.1:9000], ``PIPELINE_S3_REGION`` [us-east-1],
  ``PIPELINE_S3_ACCESS_KEY_ID`` / ``PIPELINE_S3_SECRET_ACCESS_KEY`` [pipeline / pipeline-secret],
  ``PIPELINE_S3_ADDRESSING_STYLE`` [path | virtual | auto].
- ``PIPELINE_MEDIA_STAGING_DIR`` [media-staging]: local sources must resolve inside it;
  ``PIPELINE_MEDIA_STAGING_BUCKET`` [none]: the one bucket ``s3://`` sources may come from.
- ``PIPELINE_MEDIA_PART_SIZE_BYTES`` [8 MiB]: multipart part size (files up to it go in one
  request); ``PIPELINE_MEDIA_MAX_BYTES`` [5 GiB]; ``PIPELINE_MEDIA_ALLOWED_CONTENT_TYPES``
  [images, video, audio, PDF; JSON list]; ``PIPELINE_MEDIA_CONCURRENCY`` [2];
  ``PIPELINE_MEDIA_PROGRESS_INTERVAL_MS`` [500]: at most one progress record per interval.
- ``PIPELINE_CRON_DAILY_DIGEST_ENABLED`` [true], ``_SCHEDULE`` [0 8 * * *], ``_TIMEZONE``
  [UTC], ``_RECIPIENTS`` [pipeline.cron:no_recipients]: the daily digest cron job.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

DEFAULT_MEDIA_TYPES = (
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/heic",
    "video/mp4",
    "video/quicktime",
    "video/webm",
    "audio/mpeg",
    "audio/mp4",
    "audio/ogg",
    "audio/wav",
    "application/pdf",
)


class QueueSettings(BaseModel):
    """How a worker runs one queue's jobs: the group ``PIPELINE_<QUEUE>__*``. A queue declares
    its defaults by subclassing this (see ``pipeline.catalog.QueueSpec``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Consume this queue; false leaves it to other workers.")
    concurrency: int = Field(1, ge=1, description="Jobs of the queue one worker runs at once.")
    job_timeout_s: float = Field(
        60.0, gt=0, description="A job still running after this is stalled and retried."
    )
    rate_limit_jobs: int | None = Field(
        None, ge=1, description="Jobs allowed per rate-limit period, per worker; none: no limit."
    )
    rate_limit_period_ms: int = Field(1000, ge=1, description="Length of the rate-limit period.")


class EmailQueueSettings(QueueSettings):
    """The email queue: ``PIPELINE_EMAIL__*``."""

    concurrency: int = Field(3, ge=1, description="Email jobs one worker runs at once.")
    rate_limit_jobs: int | None = Field(
        10, ge=1, description="Email jobs allowed per rate-limit period, per worker."
    )
    rate_limit_period_ms: int = Field(
        150, ge=1, description="Length of the email rate-limit period."
    )


class MediaUploadQueueSettings(QueueSettings):
    """The media-upload queue: ``PIPELINE_MEDIA_UPLOAD__*``."""

    concurrency: int = Field(2, ge=1, description="Uploads one worker runs at once.")
    job_timeout_s: float = Field(
        1800.0, gt=0, description="An upload still running after this is stalled and retried."
    )


# Flat names of earlier versions, still read: variable (without the prefix) -> (group, field).
LEGACY_QUEUE_VARIABLES = {
    "EMAIL_CONCURRENCY": ("email", "concurrency"),
    "EMAIL_JOB_TIMEOUT_S": ("email", "job_timeout_s"),
    "EMAIL_RATE_LIMIT_JOBS": ("email", "rate_limit_jobs"),
    "EMAIL_RATE_LIMIT_PERIOD_MS": ("email", "rate_limit_period_ms"),
    "MEDIA_CONCURRENCY": ("media_upload", "concurrency"),
    "MEDIA_JOB_TIMEOUT_S": ("media_upload", "job_timeout_s"),
}


class LegacyQueueVariables(PydanticBaseSettingsSource):
    """Reads the flat names of ``LEGACY_QUEUE_VARIABLES`` into their nested groups."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is done in __call__

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for variable, (group, name) in LEGACY_QUEUE_VARIABLES.items():
            value = os.environ.get(f"PIPELINE_{variable}")
            if value is not None:
                found.setdefault(group, {})[name] = value
        return found


class Settings(BaseSettings):
    """Runtime configuration, read from ``PIPELINE_*`` environment variables."""

    model_config = SettingsConfigDict(
        env_prefix="PIPELINE_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The old flat queue variables rank below the nested ones they stand for."""
        return (
            init_settings,
            env_settings,
            LegacyQueueVariables(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )

    kafka_bootstrap_servers: str = Field(
        "localhost:9092", description="Kafka bootstrap servers, comma separated host:port pairs."
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="How every client of the project connects to Kafka: PLAINTEXT, SSL (TLS; "
        "a client certificate when the broker asks for one), SASL_SSL (a user and password "
        "over TLS) or SASL_PLAINTEXT.",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism of the SASL_* protocols."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_cafile: Path | None = Field(
        None,
        description="PEM file of the certificate authorities that sign the brokers' "
        "certificates; none: the system's.",
    )
    kafka_ssl_certfile: Path | None = Field(
        None, description="PEM file of this client's certificate (SSL with client auth)."
    )
    kafka_ssl_keyfile: Path | None = Field(None, description="PEM file of that certificate's key.")
    kafka_ssl_key_password: SecretStr | None = Field(
        None, description="Password of that key, when it is encrypted."
    )
    app_id: str = Field(
        "pipeline",
        description="Faust app id: consumer group id and prefix of Faust's internal topics.",
    )
    role: Literal["all", "jobs", "monitor"] = Field(
        "all",
        description="What this worker process runs: 'all' (jobs and the monitor, one process), "
        "'jobs' (the job agents, delays and cron; no monitor, no dashboard) or 'monitor' (the "
        "monitor agent on job-events, its tables, the HTTP API and the dashboard; no jobs). "
        "Every role joins the same consumer group; Kafka gives each process the partitions "
        "of the topics it consumes.",
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
    topic_min_insync_replicas: int | None = Field(
        None,
        ge=1,
        description="Replicas that must have a record before the broker acknowledges it (acks "
        "all), set on the topics the worker creates; none: one less than the replication "
        "factor (2 of 3), 1 on a single broker.",
    )
    web_host: str = Field("127.0.0.1", description="Interface the worker's web server binds.")
    web_port: int = Field(6066, ge=0, le=65535, description="Port of the worker's web server.")
    api_url: str | None = Field(
        None,
        description="The worker web API the `pipeline` command asks for job states, lists and "
        "counts; none: http://127.0.0.1:<web_port>.",
    )
    web_token: SecretStr | None = Field(
        None,
        description="When set, the web API's changing endpoints and the dashboard want "
        "`Authorization: Bearer <token>` (the `pipeline` command sends it); unset, they answer "
        "anyone who can reach the port, so keep it on 127.0.0.1.",
    )
    schema_registry_url: str | None = Field(
        None,
        description="A Confluent-compatible schema registry: when set, lifecycle records are "
        "written in Confluent's wire format (a zero byte, the schema's 4-byte id) instead of "
        "Avro single-object encoding, and the schema is registered as <job-events>-value at "
        "start, so tools such as Kafka UI decode them.",
    )
    schema_registry_username: str | None = Field(
        None, description="Basic-auth user of the schema registry (Confluent Cloud: the API key)."
    )
    schema_registry_password: SecretStr | None = Field(
        None, description="Basic-auth password of the schema registry."
    )
    data_dir: Path = Field(
        Path("pipeline-data"),
        description="The worker's local state: its tables on disk (one folder per worker).",
    )
    table_store: Literal["rocksdb", "memory"] = Field(
        "rocksdb",
        description="Where tables live: `rocksdb` (on disk under data_dir: a restart reads only "
        "the changelog records it missed) or `memory` (rebuilt from the changelogs at every "
        "start; for tests and short-lived workers).",
    )
    table_memory_mb: int = Field(
        64,
        ge=8,
        description="Memory for all of the worker's RocksDB tables together (block cache and "
        "write buffers).",
    )
    log_level: str = Field("INFO", description="Log level of the worker.")
    kafka_producer_linger_ms: int = Field(
        5,
        ge=0,
        description="How long the worker's producer waits to fill a batch: a few ms of latency "
        "buy far fewer requests when many jobs run at once.",
    )
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
    job_retention_s: float = Field(
        7 * 24 * 3600.0,
        ge=0,
        description="How long a completed or dead-lettered job's state is kept (for /jobs and "
        "to skip a duplicate of it); 0 keeps it for ever.",
    )

    batch_max_jobs: int = Field(
        500,
        ge=1,
        description="Most job records of one fetch a queue's agent runs as one batch; their "
        "offsets are committed together once every one of them is done.",
    )
    active_after_ms: float = Field(
        5.0,
        ge=0,
        description="A job still running this long gets its active state and lifecycle record; "
        "a job done sooner gets none (its completed record carries started_ms). 0 writes both, "
        "and waits for them, before every handler starts.",
    )

    breaker_max_pause_s: float = Field(
        30.0,
        gt=0,
        description="Longest pause between probes while a queue's dependency is unreachable "
        "(the pause starts at 1 s and doubles).",
    )

    email: EmailQueueSettings = Field(
        default_factory=EmailQueueSettings, description="The email queue (PIPELINE_EMAIL__*)."
    )
    media_upload: MediaUploadQueueSettings = Field(
        default_factory=MediaUploadQueueSettings,
        description="The media-upload queue (PIPELINE_MEDIA_UPLOAD__*).",
    )
    queues: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Settings of queues registered by job modules, by queue settings group "
        "(PIPELINE_QUEUES__<GROUP>__<SETTING>); each queue checks its own.",
    )
    job_modules: list[str] = Field(
        default_factory=list,
        description="Modules the worker imports at start to register job types and queues.",
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

    s3_endpoint_url: str | None = Field(
        "http://127.0.0.1:9000",
        description="S3-compatible endpoint; none for AWS itself.",
    )
    s3_region: str = Field("us-east-1", description="S3 region.")
    s3_access_key_id: str = Field("pipeline", description="S3 access key id.")
    s3_secret_access_key: SecretStr = Field(
        SecretStr("pipeline-secret"), description="S3 secret access key."
    )
    s3_addressing_style: Literal["path", "virtual", "auto"] = Field(
        "path", description="Bucket in the path (most S3-compatible servers) or in the host."
    )
    media_staging_dir: Path = Field(
        Path("media-staging"), description="Local upload sources must resolve inside it."
    )
    media_staging_bucket: str | None = Field(
        None, description="The only bucket s3:// upload sources may come from."
    )
    media_part_size_bytes: int = Field(
        8 * 1024 * 1024,
        ge=5 * 1024 * 1024,
        description="Multipart part size; files up to this size go in one request.",
    )
    media_max_bytes: int = Field(
        5 * 1024**3, ge=1, description="Largest file a media job may upload."
    )
    media_allowed_content_types: list[str] = Field(
        default_factory=lambda: list(DEFAULT_MEDIA_TYPES),
        description="Content types media jobs may upload (JSON list).",
    )
    media_progress_interval_ms: int = Field(
        500, ge=0, description="At most one progress record per job per interval."
    )

    cron_daily_digest_enabled: bool = Field(True, description="Run the daily digest cron job.")
    cron_daily_digest_schedule: str = Field(
        "0 8 * * *",
        description="Cron expression of the daily digest (a sixth field gives seconds).",
    )
    cron_daily_digest_timezone: str = Field("UTC", description="Time zone of that schedule.")
    cron_daily_digest_recipients: str = Field(
        "pipeline.cron:no_recipients",
        description="module:function returning the digest's recipients (see pipeline.cron).",
    )

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> Self:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"PIPELINE_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "PIPELINE_KAFKA_SASL_USERNAME and PIPELINE_KAFKA_SASL_PASSWORD"
            )
        if self.kafka_ssl_keyfile and not self.kafka_ssl_certfile:
            raise ValueError("PIPELINE_KAFKA_SSL_KEYFILE needs PIPELINE_KAFKA_SSL_CERTFILE")
        if (
            self.topic_min_insync_replicas is not None
            and self.topic_min_insync_replicas > self.topic_replication_factor
        ):
            raise ValueError(
                f"PIPELINE_TOPIC_MIN_INSYNC_REPLICAS={self.topic_min_insync_replicas} is more "
                f"than the replication factor ({self.topic_replication_factor}): no record "
                "could ever be acknowledged"
            )
        return self

    @property
    def runs_jobs(self) -> bool:
        """Whether this process runs the job agents, the delay tiers and cron."""
        return self.role != "monitor"

    @property
    def runs_monitor(self) -> bool:
        """Whether this process runs the monitor, its tables and the HTTP API."""
        return self.role != "jobs"

    @property
    def kafka_broker_urls(self) -> list[str]:
        """The bootstrap servers as Faust broker URLs (``kafka://host:port``)."""
        return [f"kafka://{host.strip()}" for host in self.kafka_bootstrap_servers.split(",")]
