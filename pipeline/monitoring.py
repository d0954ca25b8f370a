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
        # A new job, or a redriven one, which starts afresh: no old attempts, errors or result,
        # only the history of what went wrong before.
        history = list(state.get("history", [])) if state else []
        state = {"job_id": event.job_id, "added_ms": None, "started_ms": None}
        if redrive:
            state["redrive"] = redrive
            history.append({"type": "redriven", "at_ms": event.timestamp_ms, "redrive": redrive})
        if history:
            state["history"] = history[-HISTORY:]
    current = dict(state)
    current.update(
        queue=event.queue,
        job_name=event.job_name,
        attempt=max(event.attempt, current.get("attempt", 0)),
        max_attempts=event.max_attempts,
        updated_ms=max(event.timestamp_ms, current.get("updated_ms", 0)),
    )
    if event.type in STATE_AFTER and not (
        event.type == EventType.ADDED
        and current.get("state") not in (None, JobState.WAITING, JobState.DELAYED)
    ):
        # An ``added`` never moves a job back: it may land after the worker's first records
        # (add_bulk sends both kinds at once), and a duplicate add of a finished job is skipped.
        current["state"] = STATE_AFTER[event.type]
        if event.type == EventType.ADDED and (event.due_at_ms or 0) > event.timestamp_ms:
            current["state"] = JobState.DELAYED  # added with a delay, as BullMQ counts it
            current["due_at_ms"] = event.due_at_ms
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
    if event.type in HISTORY_EVENTS:
        entry: dict[str, Any] = {
            "type": event.type.value,
            "attempt": event.attempt,
            "at_ms": event.timestamp_ms,
        }
        if event.type == EventType.RETRYING:
            entry["due_at_ms"] = event.due_at_ms
        else:
            entry.update(error_class=event.error_class, error=event.error_message)
        if entry not in current.get("history", []):  # a record read twice
            current["history"] = [*current.get("history", []), entry][-HISTORY:]
    return current


# What a job's state keeps of its earlier attempts (the latest ``HISTORY`` entries): the records
# of what went wrong and what came of it; a job that succeeds at once keeps none.
HISTORY = 10
HISTORY_EVENTS = frozenset(
    (EventType.FAILED, EventType.RETRYING, EventType.STALLED, EventType.DEAD_LETTERED)
)


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
    """Whether ``event`` takes its job off the dead-letter list: the ``added`` of a redrive, or
    the ``skipped`` of a discard."""
    if event.type == EventType.SKIPPED:
        return True
    return event.type == EventType.ADDED and int(event.result.get("redrive", 0)) > 0


def count_key(event: JobEvent) -> str:
    """The counter a record adds to: ``<queue>/<job name>/<type>``."""
    return f"{event.queue}/{event.job_name}/{event.type.value}"


# Beside the records counted by type, the counts table holds how many jobs are in each state now,
# as "<queue>/<job name>/state:<state>" (a job name may contain "/", never a count's kind ":").
STATE_KIND = "state:"


def state_key(state: Mapping[str, Any]) -> str:
    """The counter of jobs in the state ``state`` (a job's entry in job-status) is in."""
    return f"{state['queue']}/{state['job_name']}/{STATE_KIND}{state['state']}"


def moves(
    before: Mapping[str, Any] | None, after: Mapping[str, Any] | None
) -> list[tuple[str, int]]:
    """What a job going from ``before`` to ``after`` (None: unknown, or forgotten) does to the
    counts of jobs by state: one less in the old state, one more in the new."""
    old = state_key(before) if before and before.get("state") else None
    new = state_key(after) if after and after.get("state") else None
    if old == new:
        return []
    return [(key, step) for key, step in ((old, -1), (new, 1)) if key is not None]


def split_counts(counts: Mapping[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """``counts`` as the records counted by ``<queue>/<job name>/<type>`` and the jobs in each
    state now by ``<queue>/<job name>/<state>``. A state count below zero (jobs that were
    already known to an earlier version, which kept no state counts, and then moved on) reads
    as zero."""
    records: dict[str, int] = {}
    states: dict[str, int] = {}
    for key, count in counts.items():
        head, _, kind = key.rpartition("/")
        if kind.startswith(STATE_KIND):
            states[f"{head}/{kind.removeprefix(STATE_KIND)}"] = max(count, 0)
        else:
            records[key] = count
    return records, states


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


class Throughput:
    """Jobs finished per minute over the last hour, by queue and outcome (completed, failed,
    dead_lettered), as this process's monitor saw them. Kept in memory: a restarted worker
    starts a new hour, and the minutes around a rebalance may count a few records twice."""

    OUTCOMES = frozenset((EventType.COMPLETED, EventType.FAILED, EventType.DEAD_LETTERED))
    MINUTES = 60

    def __init__(self) -> None:
        self._minutes: dict[int, dict[str, dict[str, int]]] = {}

    def add(self, event: JobEvent) -> None:
        """Count ``event`` if it finishes an attempt."""
        if event.type not in self.OUTCOMES:
            return
        minute = event.timestamp_ms // 60_000
        if minute not in self._minutes:
            self._minutes[minute] = {}
            for old in [m for m in self._minutes if m <= minute - self.MINUTES]:
                del self._minutes[old]
        outcomes = self._minutes[minute].setdefault(event.queue, {})
        outcomes[event.type.value] = outcomes.get(event.type.value, 0) + 1

    def figures(self, now_ms: int) -> dict[str, list[dict[str, int]]]:
        """``{queue: [{"minute_ms", "completed", "failed", "dead_lettered"}]}``, oldest first,
        one entry per minute of the last hour that finished anything."""
        first = now_ms // 60_000 - self.MINUTES + 1
        series: dict[str, list[dict[str, int]]] = {}
        for minute in sorted(m for m in self._minutes if m >= first):
            for queue, outcomes in self._minutes[minute].items():
                series.setdefault(queue, []).append({"minute_ms": minute * 60_000, **outcomes})
        return series


def merge_throughput(
    first: dict[str, list[dict[str, int]]], second: dict[str, list[dict[str, int]]]
) -> dict[str, list[dict[str, int]]]:
    """Two workers' throughput figures as one."""
    merged: dict[str, dict[int, dict[str, int]]] = {}
    for figures in (first, second):
        for queue, minutes in figures.items():
            for entry in minutes:
                into = merged.setdefault(queue, {}).setdefault(entry["minute_ms"], {})
                for name, count in entry.items():
                    into[name] = count if name == "minute_ms" else into.get(name, 0) + count
    return {queue: [m[k] for k in sorted(m)] for queue, m in merged.items()}


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
