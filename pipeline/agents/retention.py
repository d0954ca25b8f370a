"""Forgets finished jobs after ``job_retention_s``, so the job-state and job-status tables (and
their changelogs, which a worker that takes a partition over reads) stop growing with every job.

Each worker sweeps the partitions it owns: the entry leaves its table and a tombstone goes to
its changelog partition, so compaction drops it for good. A duplicate of a forgotten job runs
again: the retention is the dedupe window.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from itertools import islice
from typing import Any

from pipeline.agents.runtime import job_state_tables
from pipeline.application import app, settings
from pipeline.compat import tables
from pipeline.envelope import job_hash
from pipeline.events import now_ms
from pipeline.retention import expired, sweep_interval_s
from pipeline.topics import monitor_tables

logger = logging.getLogger(__name__)

SWEEP_SLICE = 1000


# Deletes finished jobs' entries, given as (key, partition, state), from one table.
Forget = Callable[[list[tuple[Any, int, dict[str, Any]]]], Awaitable[None]]


def _deleting(table: Any) -> Forget:
    async def forget(jobs: list[tuple[Any, int, dict[str, Any]]]) -> None:
        for key, partition, _ in jobs:
            await tables.delete(table, key, partition)

    return forget


def _swept_tables() -> list[tuple[Any, Forget]]:
    """Every job-state table (one per queue consumed here) and, where the monitor runs, its
    job-status, whose entries also leave the monitor's counts of jobs by state."""
    swept: list[tuple[Any, Forget]] = [(t, _deleting(t)) for t in job_state_tables.values()]
    if settings.runs_monitor:
        # Imported only here: the monitor's module declares its tables, which a jobs-only
        # worker must not hold.
        monitor = importlib.import_module("pipeline.agents.monitor")
        swept.append((monitor_tables().status, monitor.forget))
    return swept


@app.timer(interval=sweep_interval_s(settings.job_retention_s or 600.0))
async def forget_finished_jobs() -> None:
    """Delete the states of jobs that finished longer than the retention ago."""
    if not settings.job_retention_s:
        return
    before_ms = now_ms() - int(settings.job_retention_s * 1000)
    actives = app.assignor.assigned_actives()
    for table, forget in _swept_tables():
        changelog = table.changelog_topic.get_topic_name()
        owned = {tp.partition for tp in actives if tp.topic == changelog}
        forgotten = 0
        entries = tables.items(table)
        # A slice at a time, letting the jobs run between slices: a table may hold millions.
        while chunk := list(islice(entries, SWEEP_SLICE)):
            found = dict(chunk)
            doomed = []
            for key in expired(chunk, before_ms):
                job_id = key.decode() if isinstance(key, bytes) else key
                # Tables are keyed by job id and partitioned like their source topic, by its hash.
                partition = job_hash(job_id) % table.partitions
                if partition in owned:  # else a copy left from a partition no longer owned
                    doomed.append((key, partition, found[key]))
            await forget(doomed)
            forgotten += len(doomed)
            await asyncio.sleep(0)
        if forgotten:
            logger.info("forgot %d finished jobs in %s", forgotten, table.name)
