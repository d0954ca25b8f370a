"""Every topic the project uses: its name, partitions and serializers, declared here only.

Topic names are ``settings.topic_prefix`` + the base name, so one cluster can hold several
deployments (and tests can run side by side). Job records are kept as raw bytes on the Faust
side: agents decode them themselves, so a malformed record becomes a dead letter instead of an
error inside Faust's deserializer.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust

from pipeline.application import app, settings
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
JOB_EVENTS = TopicSpec(
    "job-events", description="Lifecycle records (Avro single-object encoding); key = job id."
)
ALL_TOPICS: tuple[TopicSpec, ...] = (EMAIL, MEDIA_UPLOAD, JOB_EVENTS)


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


@app.task
async def declare_topics() -> None:
    """Create every topic on start-up, including those no agent of this worker consumes."""
    for topic in (email_topic, media_upload_topic, job_events_topic):
        await topic.maybe_declare()
