"""The monitoring agent: one structured log line per lifecycle record, each job's latest state,
counts by state and latency figures."""

from __future__ import annotations

import logging
import operator
from collections import deque

import faust

from pipeline.application import app
from pipeline.events import EventDecodeError, EventType, JobEvent, decode_event
from pipeline.metrics import WorkerMetrics
from pipeline.monitoring import (
    across_partitions,
    add_latency,
    apply_event,
    count_key,
    in_partition,
    merge_latency,
)
from pipeline.topics import QUEUES, job_counts, job_events_topic, job_latency, job_status

logger = logging.getLogger(__name__)

UNREADABLE = "unreadable"


def log_line(event: JobEvent) -> str:
    """The record as one ``key=value`` line (values never hold secrets: they are redacted)."""
    fields: dict[str, object] = {
        "queue": event.queue,
        "job": event.job_name,
        "id": event.job_id,
        "type": event.type.value,
        "attempt": f"{event.attempt}/{event.max_attempts}",
        "worker": event.worker_id,
        "duration_ms": event.duration_ms,
        "due_at_ms": event.due_at_ms,
        "progress": event.progress_percent,
        "error": event.error_class,
        "reason": event.error_message,
    }
    return " ".join(
        f"{name}={value!r}" if isinstance(value, str) and " " in value else f"{name}={value}"
        for name, value in fields.items()
        if value is not None
    )


# The latest failures this worker's partitions saw, newest last, for the dashboard.
recent_failures: deque[JobEvent] = deque(maxlen=50)


@app.agent(job_events_topic)
async def monitor_agent(stream: faust.StreamT[bytes]) -> None:
    """Log every lifecycle record; keep each job's latest state, the counts and the latency
    figures, all in the job-events partition the record came from."""
    async for record in stream.events():
        partition = record.message.partition
        try:
            event = decode_event(record.value)
        except EventDecodeError as exc:
            logger.warning("job_event unreadable record on job-events: %s", exc)
            job_counts[in_partition(partition, UNREADABLE)] += 1
            continue
        logger.info("job_event %s", log_line(event))
        job_counts[in_partition(partition, count_key(event))] += 1
        if event.type == EventType.FAILED:
            recent_failures.append(event)
        key = event.job_id.encode()
        after = apply_event(job_status.get(key), event)
        job_status[key] = after
        if event.type == EventType.COMPLETED and after.get("added_ms"):
            figures = in_partition(partition, f"{event.queue}/{event.job_name}")
            latency_ms = event.timestamp_ms - after["added_ms"]
            job_latency[figures] = add_latency(job_latency.get(figures), latency_ms)


def counts() -> dict[str, int]:
    """This worker's counts by ``<queue>/<job name>/<type>``."""
    return across_partitions(dict(job_counts.items()), operator.add)


def _lag() -> list[tuple[str, int, int]]:
    consumer = app.consumer
    committed = getattr(consumer, "_committed_offset", {})
    queue_topics = {spec.name(app.pipeline_settings) for spec in QUEUES.values()}
    return [
        (tp.topic, tp.partition, max((consumer.highwater(tp) or 0) - (committed.get(tp) or 0), 0))
        for tp in consumer.assignment()
        if tp.topic in queue_topics
    ]


metrics = WorkerMetrics(
    counts=counts,
    latency=lambda: across_partitions(dict(job_latency.items()), merge_latency),
    lag=_lag,
)
