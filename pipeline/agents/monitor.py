"""The monitoring agent: one structured log line per lifecycle record, and counts by state."""

from __future__ import annotations

import json
import logging
from collections import deque

import faust

from pipeline.application import app
from pipeline.events import EventDecodeError, EventType, JobEvent, decode_event
from pipeline.metrics import WorkerMetrics
from pipeline.monitoring import add_latency, apply_event, count_key
from pipeline.topics import (
    QUEUES,
    job_counts,
    job_events_topic,
    job_latency,
    job_latency_topic,
    job_status,
)

logger = logging.getLogger(__name__)

UNREADABLE = "unreadable"


def _count_key_of(value: bytes) -> str:
    try:
        return count_key(decode_event(value))
    except EventDecodeError:
        return UNREADABLE


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


@app.agent(job_events_topic)
async def monitor_agent(stream: faust.StreamT[bytes]) -> None:
    """Log and count every lifecycle record."""
    async for value in stream.group_by(_count_key_of, name="job-counts"):
        try:
            event = decode_event(value)
        except EventDecodeError as exc:
            logger.warning("job_event unreadable record on job-events: %s", exc)
            job_counts[UNREADABLE] += 1
            continue
        logger.info("job_event %s", log_line(event))
        job_counts[count_key(event)] += 1


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
    counts=lambda: dict(job_counts.items()),
    latency=lambda: dict(job_latency.items()),
    lag=_lag,
)
# The latest failures this worker's partitions saw, newest last, for the dashboard.
recent_failures: deque[JobEvent] = deque(maxlen=50)


@app.agent(job_events_topic)
async def job_status_agent(stream: faust.StreamT[bytes]) -> None:
    """Keep each job's latest state, in the partition of its job id."""
    async for value in stream:
        try:
            event = decode_event(value)
        except EventDecodeError:
            continue  # the monitor agent has logged it
        if event.type == EventType.FAILED:
            recent_failures.append(event)
        key = event.job_id.encode()
        after = apply_event(job_status.get(key), event)
        job_status[key] = after
        if event.type == EventType.COMPLETED and after.get("added_ms"):
            latency_ms = event.timestamp_ms - after["added_ms"]
            await job_latency_topic.send(
                key=f"{event.queue}/{event.job_name}".encode(),
                value=json.dumps({"latency_ms": latency_ms}).encode(),
            )


@app.agent(job_latency_topic)
async def latency_agent(stream: faust.StreamT[bytes]) -> None:
    """Add each completed job's latency to the figures of its queue and job name."""
    async for event in stream.events():
        key = (event.key or b"").decode()
        latency_ms = int(json.loads(event.value)["latency_ms"])
        job_latency[key] = add_latency(job_latency.get(key), latency_ms)
