"""Every topic the project uses: its name, partitions and serializers, declared here only.

Topic names are ``settings.topic_prefix`` + the base name, so one cluster can hold several
deployments (and tests can run side by side). Job records are kept as raw bytes on the Faust
side: agents decode them themselves, so a malformed record becomes a dead letter instead of an
error inside Faust's deserializer.

Delayed records (retries, ``delay_s``) wait in delay tiers, one single-partition topic per
fixed wait (see ``pipeline/delays.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from pipeline.application import app, settings
from pipeline.schemas.jobs import QueueName
from pipeline.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    """What the project knows about one topic before any settings are applied."""

    base_name: str
    partitions: int | None = None  # None: settings.topic_partitions
    description: str = ""

    def name(self, settings: Settings) -> str:
        """The topic's full name under ``settings``."""
        return settings.topic_prefix + self.base_name

    def partition_count(self, settings: Settings) -> int:
        """Partitions the worker creates the topic with."""
        return self.partitions or settings.topic_partitions


EMAIL = TopicSpec("email", description="Email jobs; key = job name, value = the job's JSON.")
MEDIA_UPLOAD = TopicSpec("media-upload", description="Media-upload jobs; key = job name.")
BENCH = TopicSpec("bench", description="Noop jobs of the benchmark; key = job name.")
JOB_EVENTS = TopicSpec(
    "job-events", description="Lifecycle records (Avro single-object encoding); key = job id."
)
QUEUES: dict[QueueName, TopicSpec] = {
    QueueName.EMAIL: EMAIL,
    QueueName.MEDIA_UPLOAD: MEDIA_UPLOAD,
    QueueName.BENCH: BENCH,
}
DEAD_LETTERS: dict[QueueName, TopicSpec] = {
    queue: TopicSpec(
        f"{queue.value}-dead-letter",
        description=f"{queue.value} jobs that failed for good: the original record plus reasons.",
    )
    for queue in QueueName
}
DELAY_TIERS_S: tuple[int, ...] = (1, 5, 30, 120)
DELAYS: dict[int, TopicSpec] = {
    seconds: TopicSpec(f"delay-{seconds}s", partitions=1, description="Delayed job records.")
    for seconds in DELAY_TIERS_S
}
ALL_TOPICS: tuple[TopicSpec, ...] = (
    *QUEUES.values(),
    JOB_EVENTS,
    *DEAD_LETTERS.values(),
    *DELAYS.values(),
)


def faust_topic(spec: TopicSpec) -> faust.TopicT:
    """The app's Faust topic for ``spec``, with raw bytes for keys and values."""
    return app.topic(
        spec.name(settings),
        partitions=spec.partition_count(settings),
        key_serializer="raw",
        value_serializer="raw",
        # internal=True: the worker creates the topic with these partitions if it is missing,
        # rather than leaving it to the broker's auto-creation defaults.
        internal=True,
    )


email_topic = faust_topic(EMAIL)
media_upload_topic = faust_topic(MEDIA_UPLOAD)
job_events_topic = faust_topic(JOB_EVENTS)
delay_topics = {seconds: faust_topic(spec) for seconds, spec in DELAYS.items()}
dead_letter_topics = {queue: faust_topic(spec) for queue, spec in DEAD_LETTERS.items()}

# Each job's latest state, by job id, one table per queue: what makes redelivered and duplicate jobs
# no-ops. Faust names a changelog "<app id>-email-job-state-changelog"; it shares the queue
# topic's partitioning because job records are placed by job id (envelope.partition_for).
email_job_state = app.Table(
    "email-job-state",
    default=None,
    partitions=EMAIL.partition_count(settings),
    key_type=str,
)
media_job_state = app.Table(
    "media-upload-job-state",
    default=None,
    partitions=MEDIA_UPLOAD.partition_count(settings),
    key_type=str,
)


# Lifecycle records counted by "<partition>:<queue>/<job name>/<type>", and latency figures
# (pipeline.monitoring.add_latency) by "<partition>:<queue>/<job name>". Both are kept per
# job-events partition, in the changelog partition of the records counted, so the monitor agent
# updates them as it reads job-events (pipeline.monitoring.in_partition).
job_counts = app.Table(
    "job-counts", default=int, partitions=JOB_EVENTS.partition_count(settings), key_type=str
)
job_latency = app.Table(
    "job-latency", default=None, partitions=JOB_EVENTS.partition_count(settings), key_type=str
)

# Each job's latest state as the monitor sees it (pipeline.monitoring), by job id. Fed straight
# from job-events, which is keyed by job id, so a job's state lives in one partition.
# Keys are raw bytes, like job-events' keys, so Faust's router finds a job's partition (and the
# worker that holds it) the same way the producer placed its records.
job_status = app.Table(
    "job-status", default=None, partitions=JOB_EVENTS.partition_count(settings), key_type=bytes
)
