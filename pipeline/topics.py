"""The worker's Faust topics and tables, built from the specs in ``pipeline/catalog.py``.

Job records are kept as raw bytes on the Faust side: agents decode them themselves, so a
malformed record becomes a dead letter instead of an error inside Faust's deserializer.
"""

from __future__ import annotations

import faust

from pipeline.application import app, settings
from pipeline.catalog import DEAD_LETTERS, DELAYS, EMAIL, JOB_EVENTS, MEDIA_UPLOAD, TopicSpec


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
