"""What the monitor keeps about each job, from its lifecycle records. Free of Faust."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pipeline.events import EventType, JobEvent
from pipeline.lifecycle import STATE_AFTER, JobState

V = TypeVar("V")


def is_repeat(state: dict[str, Any] | None, event: JobEvent) -> bool:
    """Whether ``event`` is a terminal record the job's state already holds: the runner writes
    one again, with the same id, when a crash may have lost it."""
    return state is not None and state.get("terminal_event_id") == event.event_id


def apply_event(state: dict[str, Any] | None, event: JobEvent) -> dict[str, Any]:
    """The job's state after ``event`` (records may repeat: applying one twice changes nothing)."""
    redrive = int(event.result.get("redrive", 0)) if event.type == EventType.ADDED else 0
    if state is None or redrive > state.get("redrive", 0):
        # A new job, or a redriven one, which starts afresh: no old attempts, errors or result.
        state = {"job_id": event.job_id, "added_ms": None, "started_ms": None}
        if redrive:
            state["redrive"] = redrive
    current = dict(state)
    current.update(
        queue=event.queue,
        job_name=event.job_name,
        attempt=max(event.attempt, current.get("attempt", 0)),
        max_attempts=event.max_attempts,
        updated_ms=max(event.timestamp_ms, current.get("updated_ms", 0)),
    )
    if event.type in STATE_AFTER and not (
        event.type == EventType.ADDED and current.get("state") not in (None, JobState.WAITING)
    ):
        # An ``added`` never moves a job back: it may land after the worker's first records
        # (add_bulk sends both kinds at once), and a duplicate add of a finished job is skipped.
        current["state"] = STATE_AFTER[event.type]
    current.setdefault("state", JobState.WAITING)
    if event.type == EventType.ADDED:
        current["added_ms"] = current["added_ms"] or event.timestamp_ms
    elif event.type == EventType.ACTIVE:
        current["started_ms"] = event.timestamp_ms
        current["worker_id"] = event.worker_id
    elif event.type == EventType.PROGRESS:
        current["progress_percent"] = event.progress_percent
    if event.started_ms is not None:
        # A job done before active_after_ms has no active record: its outcome says when it began.
        current["started_ms"] = event.started_ms
        current["worker_id"] = event.worker_id
    if event.type == EventType.COMPLETED:
        current["finished_ms"] = event.timestamp_ms
        current["result"] = dict(event.result)
        current["terminal_event_id"] = event.event_id
    elif event.type in (EventType.FAILED, EventType.DEAD_LETTERED):
        current["last_error_class"] = event.error_class
        current["last_error"] = event.error_message
        if event.type == EventType.DEAD_LETTERED:
            current["finished_ms"] = event.timestamp_ms
            current["terminal_event_id"] = event.event_id
    elif event.type == EventType.RETRYING:
        current["due_at_ms"] = event.due_at_ms
    return current


def dead_letter_entry(state: Mapping[str, Any], event: JobEvent, partition: int) -> dict[str, Any]:
    """How ``/dlq`` lists the job ``event`` dead-lettered, ``state`` being the job's state after
    it and ``partition`` the job-events partition the record came from (the job's data is left
    out: it may hold secrets)."""
    return {
        "job_id": event.job_id,
        "queue": event.queue,
        "job_name": event.job_name,
        "reason": event.error_message,
        "error_class": event.error_class,
        "attempts": event.attempt,
        "max_attempts": event.max_attempts,
        "failed_at_ms": event.timestamp_ms,
        "redrive": int(state.get("redrive", 0)),
        "partition": partition,
    }


def leaves_dead_letters(event: JobEvent) -> bool:
    """Whether ``event`` takes its job off the dead-letter list: the ``added`` of a redrive."""
    return event.type == EventType.ADDED and int(event.result.get("redrive", 0)) > 0


def count_key(event: JobEvent) -> str:
    """The counter a record adds to: ``<queue>/<job name>/<type>``."""
    return f"{event.queue}/{event.job_name}/{event.type.value}"


def in_partition(partition: int, key: str) -> str:
    """``key`` as kept by the worker that holds ``partition`` of job-events.

    Counts and latency figures are kept per job-events partition, each in the changelog
    partition of its records, so one agent updates them as it reads (no repartition topic) and a
    rebalance moves them with their partition.
    """
    return f"{partition}:{key}"


def across_partitions(figures: Mapping[str, V], merge: Callable[[V, V], V]) -> dict[str, V]:
    """Per-partition ``figures`` combined by their key without the partition."""
    combined: dict[str, V] = {}
    for key, value in figures.items():
        plain = key.partition(":")[2]
        combined[plain] = merge(combined[plain], value) if plain in combined else value
    return combined


def split_count_key(key: str) -> tuple[str, str, str]:
    """``(queue, job name, type)`` of a count key (job names may contain ``/``)."""
    queue, _, rest = key.partition("/")
    job_name, _, kind = rest.rpartition("/")
    return queue, job_name, kind


def queue_counts(counts: dict[str, int]) -> dict[str, dict[str, dict[str, int]]]:
    """``{"<queue>/<job>/<type>": n}`` as ``{queue: {job: {type: n}}}``."""
    nested: dict[str, dict[str, dict[str, int]]] = {}
    for key, count in counts.items():
        queue, job_name, kind = split_count_key(key)
        nested.setdefault(queue, {}).setdefault(job_name, {})[kind] = count
    return nested


LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


def merge_latency(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Two sets of latency figures as one."""
    buckets = dict(first["buckets"])
    for bound, count in second["buckets"].items():
        buckets[bound] = buckets.get(bound, 0) + count
    return {
        "count": first["count"] + second["count"],
        "sum_ms": first["sum_ms"] + second["sum_ms"],
        "buckets": buckets,
    }


def add_latency(figures: dict[str, Any] | None, latency_ms: int) -> dict[str, Any]:
    """Latency figures of one queue/job with one more completed job: count, sum and the count
    per histogram bucket (the smallest bound it fits; ``+Inf`` past the last)."""
    current = dict(figures or {"count": 0, "sum_ms": 0, "buckets": {}})
    buckets = dict(current["buckets"])
    seconds = max(latency_ms, 0) / 1000
    bound = next((str(b) for b in LATENCY_BUCKETS_S if seconds <= b), "+Inf")
    buckets[bound] = buckets.get(bound, 0) + 1
    current.update(count=current["count"] + 1, sum_ms=current["sum_ms"] + max(latency_ms, 0))
    current["buckets"] = buckets
    return current
