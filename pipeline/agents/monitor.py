"""The monitoring agent: one structured log line per lifecycle record, each job's latest state,
counts by state and latency figures."""

from __future__ import annotations

import heapq
import logging
import operator
from collections import Counter, deque
from typing import Any, cast

import faust
from faust.types import Message

from pipeline.application import app
from pipeline.compat import tables
from pipeline.compat.bulk import BUFFERED_FETCHES, BulkTopic, Fetch
from pipeline.compat.sends import batched_sends
from pipeline.envelope import partition_for
from pipeline.events import EventDecodeError, EventType, JobEvent, decode_event
from pipeline.monitoring import (
    Throughput,
    across_partitions,
    add_latency,
    apply_event,
    count_key,
    dead_letter_entry,
    in_partition,
    is_repeat,
    leaves_dead_letters,
    merge_latency,
    moves,
    split_counts,
)
from pipeline.topics import job_events_topic, monitor_tables

logger = logging.getLogger(__name__)

job_counts, job_latency, job_status, dead_letters = monitor_tables()

UNREADABLE = "unreadable"
# A queue's pauses and resumptions: counted, but they are no job's state.
QUEUE_EVENTS = frozenset((EventType.QUEUE_PAUSED, EventType.QUEUE_RESUMED))


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
# Jobs finished per minute, for /throughput and the dashboard's chart.
throughput = Throughput()


# The monitor takes job-events a whole fetch at a time (compat/bulk.py): per fetch it writes
# each job's state, each count and each latency figure once, however many records touched them
# (a job's added and completed records usually arrive together).
job_events = BulkTopic(app, job_events_topic)
# Under a steady load a fetch holds a few records, and the per-fetch cost (table writes, their
# produce request, the flush and the ack) is then paid for a handful of jobs; folding the
# fetches of this long into one pass cut the worker's CPU at 500 jobs/s by about a tenth, and
# the monitor's view of a job may lag by it (no job waits on the monitor).
LINGER_S = 0.05


async def _write(table: Any, partition: int, key: Any, value: Any) -> None:
    """Set ``key`` with its changelog record in ``partition`` of job-events' partitioning.

    Faust would put the changelog record in the partition of the stream's current event, which
    the monitor has none of.
    """
    await tables.write(table, key, value, partition)


@app.agent(job_events.channel)
async def monitor_agent(fetches: faust.StreamT[Fetch]) -> None:
    """Log every lifecycle record; keep each job's latest state, the counts and the latency
    figures, all in the job-events partition the record came from."""
    async for taken in fetches.take(BUFFERED_FETCHES, within=LINGER_S):
        records: list[Message] = []
        for fetched in taken:
            job_events.taken(fetched)
            records += job_events.current(fetched.messages)
        await _apply(records)
        # Its writes handed to the producer before its records count as done, as a send did.
        await batched_sends(app).flush()
        job_events.ack(records)


async def _apply(records: list[Message]) -> None:
    """Log ``records`` and fold them into the tables, writing each touched key once."""
    logging_info = logger.isEnabledFor(logging.INFO)
    states: dict[bytes, tuple[int, dict[str, Any]]] = {}
    counted: Counter[tuple[int, str]] = Counter()
    latencies: dict[tuple[int, str], dict[str, Any]] = {}
    letters: dict[bytes, tuple[int, dict[str, Any] | None]] = {}  # None: off the list
    for record in records:
        partition = record.partition
        try:
            event = decode_event(record.value or b"")
        except EventDecodeError as exc:
            logger.warning("job_event unreadable record on job-events: %s", exc)
            counted[partition, UNREADABLE] += 1
            continue
        if event.type in QUEUE_EVENTS:
            logger.warning("job_event %s", log_line(event))
            counted[partition, count_key(event)] += 1
            continue
        key = event.job_id.encode()
        before = states[key][1] if key in states else tables.get(job_status, key, partition)
        if is_repeat(before, event):
            continue
        if logging_info:
            logger.info("job_event %s", log_line(event))
        counted[partition, count_key(event)] += 1
        if event.type == EventType.FAILED:
            recent_failures.append(event)
        throughput.add(event)
        after = apply_event(before, event)
        states[key] = (partition, after)
        for name, step in moves(before, after):
            counted[partition, name] += step
        if event.type == EventType.DEAD_LETTERED:
            letters[key] = (partition, dead_letter_entry(after, event, partition))
        elif leaves_dead_letters(event) and (
            key in letters or tables.get(dead_letters, key, partition) is not None
        ):
            letters[key] = (partition, None)
        if event.type == EventType.COMPLETED and after.get("added_ms"):
            figures = (partition, f"{event.queue}/{event.job_name}")
            current = latencies.get(figures) or tables.get(
                job_latency, in_partition(*figures), partition
            )
            latencies[figures] = add_latency(current, event.timestamp_ms - after["added_ms"])
    for key, (partition, state) in states.items():
        await _write(job_status, partition, key, state)
    for key, (partition, letter) in letters.items():
        if letter is None:
            await tables.delete(dead_letters, key, partition)
        else:
            await _write(dead_letters, partition, key, letter)
    await _add_counts(counted)
    for (partition, name), latency in latencies.items():
        await _write(job_latency, partition, in_partition(partition, name), latency)


async def _add_counts(counted: Counter[tuple[int, str]]) -> None:
    for (partition, name), added in counted.items():
        count_name = in_partition(partition, name)
        counted_before = tables.get(job_counts, count_name, partition, 0)
        await _write(job_counts, partition, count_name, counted_before + added)


async def forget(jobs: list[tuple[bytes, int, dict[str, Any]]]) -> None:
    """Delete the job-status entries of finished ``jobs`` (key, partition, state), which
    retention no longer keeps, with them from the counts of jobs by state."""
    counted: Counter[tuple[int, str]] = Counter()
    for key, partition, state in jobs:
        await tables.delete(job_status, key, partition)
        for name, step in moves(state, None):
            counted[partition, name] += step
    await _add_counts(counted)


def dead_lettered(queue: str) -> list[dict[str, Any]]:
    """The jobs of ``queue`` dead-lettered now, in the partitions this worker owns (not the
    standby copies it keeps of others', which may be a step behind)."""
    owned = _owned(dead_letters)
    return [
        letter
        for _, letter in tables.items(dead_letters)
        if letter["queue"] == queue and letter["partition"] in owned
    ]


def jobs(queue: str | None, state: str | None, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` most recently updated jobs (of ``queue``, in ``state``, where given) in the
    job-events partitions this worker owns. Reads every entry: a sweep of the table, fine for
    the retention's worth of jobs an operator looks through, not for a hot path."""
    owned = _owned(job_status)
    partitions = cast(int, job_status.partitions)  # declared: topics.py
    found = (
        entry
        for key, entry in tables.items(job_status)
        if entry
        and (queue is None or entry.get("queue") == queue)
        and (state is None or entry.get("state") == state)
        and partition_for(key.decode(), partitions) in owned
    )
    return heapq.nlargest(limit, found, key=newest_first)


def newest_first(entry: dict[str, Any]) -> tuple[int, str]:
    """The order of job lists (descending): last updated, ties by id, so pages never overlap."""
    return int(entry.get("updated_ms") or 0), str(entry.get("job_id"))


def _owned(table: Any) -> set[int]:
    changelog = table.changelog_topic.get_topic_name()
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == changelog}


def counts() -> dict[str, int]:
    """This worker's counts of lifecycle records by ``<queue>/<job name>/<type>``."""
    return split_counts(across_partitions(dict(job_counts.items()), operator.add))[0]


def states() -> dict[str, int]:
    """This worker's counts of jobs in each state now by ``<queue>/<job name>/<state>``."""
    return split_counts(across_partitions(dict(job_counts.items()), operator.add))[1]


def latency() -> dict[str, dict[str, Any]]:
    """This worker's latency figures by ``<queue>/<job name>``."""
    return across_partitions(dict(job_latency.items()), merge_latency)
