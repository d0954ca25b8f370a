"""The worker's Faust topics and tables, built from the specs in ``pipeline/catalog.py``.

Job records are kept as raw bytes on the Faust side: agents decode them themselves, so a
malformed record becomes a dead letter instead of an error inside Faust's deserializer.
"""

from __future__ import annotations

from functools import cache
from typing import Any, NamedTuple

import faust

from pipeline.application import app, settings
from pipeline.catalog import DELAYS, JOB_EVENTS, MONITOR_TABLES, QueueSpec, TopicSpec
from pipeline.compat.store import MEMORY_OPTION


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


job_events_topic = faust_topic(JOB_EVENTS)
delay_topics = {seconds: faust_topic(spec) for seconds, spec in DELAYS.items()}


def job_state_table(queue: QueueSpec) -> faust.types.TableT[str, dict[str, Any]]:
    """Each job's latest state in ``queue``, by job id: what makes redelivered and duplicate jobs
    no-ops. Faust names its changelog "<app id>-<queue>-job-state-changelog"; it shares the queue
    topic's partitioning because job records are placed by job id (envelope.partition_for)."""
    table: faust.types.TableT[str, dict[str, Any]] = _table(
        queue.state_table,
        default=None,
        partitions=queue.topic.partition_count(settings),
        key_type=str,
    )
    return table


def _table(name: str, **kwargs: Any) -> Any:
    """A table of the app, sharing the worker's memory budget for tables on disk."""
    return app.Table(name, options={MEMORY_OPTION: settings.table_memory_mb * 1024**2}, **kwargs)


class MonitorTables(NamedTuple):
    """The monitor's tables, all partitioned like job-events."""

    # Lifecycle records counted by "<partition>:<queue>/<job name>/<type>", and latency figures
    # (pipeline.monitoring.add_latency) by "<partition>:<queue>/<job name>". Both are kept per
    # job-events partition, in the changelog partition of the records counted, so the monitor
    # agent updates them as it reads job-events (pipeline.monitoring.in_partition).
    counts: faust.types.TableT[str, int]
    latency: faust.types.TableT[str, dict[str, Any] | None]
    # Each job's latest state as the monitor sees it (pipeline.monitoring), by job id. Fed
    # straight from job-events, which is keyed by job id, so a job's state lives in one
    # partition. Keys are raw bytes, like job-events' keys, so Faust's router finds a job's
    # partition (and the worker that holds it) the same way the producer placed its records.
    status: faust.types.TableT[bytes, dict[str, Any] | None]
    # The jobs that are dead-lettered now, by job id, as /dlq lists them: kept beside
    # job-status, so listing reads no topic. An entry stays until the job is redriven.
    dead_letters: faust.types.TableT[bytes, dict[str, Any] | None]


@cache
def monitor_tables() -> MonitorTables:
    """The monitor's tables, declared on the app at the first call: only a process whose role
    runs the monitor declares them, so a jobs-only worker neither holds nor recovers them."""
    partitions = JOB_EVENTS.partition_count(settings)
    counts, latency, status, letters = MONITOR_TABLES
    return MonitorTables(
        counts=_table(counts, default=int, partitions=partitions, key_type=str),
        latency=_table(latency, default=None, partitions=partitions, key_type=str),
        status=_table(status, default=None, partitions=partitions, key_type=bytes),
        dead_letters=_table(letters, default=None, partitions=partitions, key_type=bytes),
    )
