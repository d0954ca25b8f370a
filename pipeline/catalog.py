"""Every queue and topic the project uses, by its spec, declared here only (job modules may
register more queues). Free of Faust, so the producer side (``pipeline.queues``) and tools read
it without loading the worker.

Topic names are ``settings.topic_prefix`` + the base name, so one cluster can hold several
deployments (and tests can run side by side). Delayed records (retries, ``delay_s``) wait in
delay tiers, one single-partition topic per fixed wait (see ``pipeline/delays.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from pipeline.errors import ConfigurationError, UnknownQueueError
from pipeline.settings import (
    EmailQueueSettings,
    MediaUploadQueueSettings,
    QueueSettings,
    Settings,
)


@dataclass(frozen=True)
class TopicSpec:
    """What the project knows about one topic before any settings are applied."""

    base_name: str
    partitions: int | None = None  # None: settings.topic_partitions
    description: str = ""
    compacted: bool = False  # log compaction: only each key's latest record matters
    config: tuple[tuple[str, str], ...] = ()  # more topic configs, as Kafka names them

    def name(self, settings: Settings) -> str:
        """The topic's full name under ``settings``."""
        return settings.topic_prefix + self.base_name

    def partition_count(self, settings: Settings) -> int:
        """Partitions the worker creates the topic with."""
        return self.partitions or settings.topic_partitions


@dataclass(frozen=True)
class QueueSpec:
    """A queue, declared once: its name (and topic), the settings group that tunes it and that
    group's defaults. The worker's agent, state table and runner, the producer class, the CLI,
    retention and the dashboard are all derived from the specs registered in ``QUEUES``."""

    name: str
    description: str
    settings_group: str
    settings_model: type[QueueSettings] = QueueSettings

    @property
    def topic(self) -> TopicSpec:
        """Where its jobs are published: key = job name, value = the job's JSON."""
        return TopicSpec(self.name, description=self.description)

    @property
    def dead_letter(self) -> TopicSpec:
        """Where its jobs go when they fail for good: the original record plus reasons."""
        return TopicSpec(
            f"{self.name}-dead-letter",
            description=f"{self.name} jobs that failed for good: the original record plus reasons.",
        )

    @property
    def state_table(self) -> str:
        """The worker's table of each job's latest state (dedupe, stalled detection)."""
        return f"{self.name}-job-state"

    def settings(self, settings: Settings) -> QueueSettings:
        """This queue's settings group under ``settings``."""
        group = getattr(settings, self.settings_group, None)
        if isinstance(group, QueueSettings):
            return group
        try:
            return self.settings_model.model_validate(settings.queues.get(self.settings_group, {}))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
                for error in exc.errors(include_input=False, include_url=False)
            )
            raise ConfigurationError(
                f"settings of queue {self.name!r} (PIPELINE_QUEUES__"
                f"{self.settings_group.upper()}__*) are invalid: {problems}"
            ) from None


EMAIL = QueueSpec(
    "email",
    "Email jobs: OTP codes, password resets, digests.",
    settings_group="email",
    settings_model=EmailQueueSettings,
)
MEDIA_UPLOAD = QueueSpec(
    "media-upload",
    "Moves staged files into object storage.",
    settings_group="media_upload",
    settings_model=MediaUploadQueueSettings,
)

# Every queue, by name. Job modules add theirs with ``register_queue``.
QUEUES: dict[str, QueueSpec] = {EMAIL.name: EMAIL, MEDIA_UPLOAD.name: MEDIA_UPLOAD}


def register_queue(spec: QueueSpec) -> QueueSpec:
    """Add ``spec`` to ``QUEUES`` (again with the same spec is a no-op); returns it."""
    known = QUEUES.setdefault(spec.name, spec)
    if known != spec:
        raise ConfigurationError(f"queue {spec.name!r} is registered twice, differently")
    return spec


def queue_named(name: str) -> QueueSpec:
    """The registered queue ``name``; ``UnknownQueueError`` names the known ones."""
    spec = QUEUES.get(name)
    if spec is None:
        raise UnknownQueueError(f"no queue {name!r} (known: {', '.join(sorted(QUEUES))})")
    return spec


JOB_EVENTS = TopicSpec(
    "job-events", description="Lifecycle records (Avro single-object encoding); key = job id."
)
QUEUE_CONTROL = TopicSpec(
    "queue-control",
    partitions=1,
    compacted=True,
    description="Queues an operator paused; key = queue, value = JSON (pipeline.pauses).",
)

WORKERS = TopicSpec(
    "worker-heartbeats",
    partitions=1,
    compacted=True,
    # Compacted within the hour: a worker reads it from the beginning when it starts.
    config=(("segment.ms", "3600000"), ("min.cleanable.dirty.ratio", "0.1")),
    description="Each worker's latest heartbeat; key = worker id, value = JSON (pipeline.workers).",
)

DELAY_TIERS_S: tuple[int, ...] = (1, 5, 30, 120)
DELAYS: dict[int, TopicSpec] = {
    seconds: TopicSpec(f"delay-{seconds}s", partitions=1, description="Delayed job records.")
    for seconds in DELAY_TIERS_S
}


# The monitor's Faust tables (pipeline.topics.monitor_tables), partitioned like job-events.
MONITOR_TABLES = ("job-counts", "job-latency", "job-status", "dead-letters")


def all_tables() -> tuple[str, ...]:
    """The name of every Faust table of every role: each queue's job state, the monitor's."""
    return (*(spec.state_table for spec in QUEUES.values()), *MONITOR_TABLES)


def all_topics() -> tuple[TopicSpec, ...]:
    """Every topic of the registered queues, plus job-events, queue-control, the workers'
    heartbeats and the delay tiers."""
    return (
        *(spec.topic for spec in QUEUES.values()),
        JOB_EVENTS,
        QUEUE_CONTROL,
        WORKERS,
        *(spec.dead_letter for spec in QUEUES.values()),
        *DELAYS.values(),
    )
