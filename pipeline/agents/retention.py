"""Forgets finished jobs after ``job_retention_s``, so the job-state and job-status tables (and
their changelogs, which a worker that takes a partition over reads) stop growing with every job.

Each worker sweeps the partitions it owns: the entry leaves its table and a tombstone goes to
its changelog partition, so compaction drops it for good. A duplicate of a forgotten job runs
again: the retention is the dedupe window.
"""

from __future__ import annotations

import asyncio
import logging
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


def _swept_tables() -> list[Any]:
    """Every job-state table (one per queue consumed here) and, where the monitor runs, its
    job-status."""
    monitor = [monitor_tables().status] if settings.runs_monitor else []
    return [*job_state_tables.values(), *monitor]


@app.timer(interval=sweep_interval_s(settings.job_retention_s or 600.0))
async def forget_finished_jobs() -> None:
    """Delete the states of jobs that finished longer than the retention ago."""
    if not settings.job_retention_s:
        return
    before_ms = now_ms() - int(settings.job_retention_s * 1000)
    actives = app.assignor.assigned_actives()
    for table in _swept_tables():
        changelog = table.changelog_topic.get_topic_name()
        owned = {tp.partition for tp in actives if tp.topic == changelog}
        forgotten = 0
        entries = tables.items(table)
        # A slice at a time, letting the jobs run between slices: a table may hold millions.
        while chunk := list(islice(entries, SWEEP_SLICE)):
            for key in expired(chunk, before_ms):
                job_id = key.decode() if isinstance(key, bytes) else key
                # Tables are keyed by job id and partitioned like their source topic, by its hash.
                partition = job_hash(job_id) % table.partitions
                if partition not in owned:
                    continue  # a copy left from a partition this worker no longer owns
                await tables.delete(table, key, partition)
                forgotten += 1
            await asyncio.sleep(0)
        if forgotten:
            logger.info("forgot %d finished jobs in %s", forgotten, table.name)
