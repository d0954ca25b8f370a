"""Every topic the project uses, by its spec: base name, partitions and purpose, declared here
only. Free of Faust, so the producer side (``pipeline.queues``) and tools read it without loading
the worker.

Topic names are ``settings.topic_prefix`` + the base name, so one cluster can hold several
deployments (and tests can run side by side). Delayed records (retries, ``delay_s``) wait in
delay tiers, one single-partition topic per fixed wait (see ``pipeline/delays.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

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
