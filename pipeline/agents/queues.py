"""One agent per registered queue, all made by ``queue_agent``: each hands the records of its
queue's topic to that queue's job runner."""

from __future__ import annotations

from functools import cache

import faust
from aiolimiter import AsyncLimiter

from pipeline.agents.control import pauses
from pipeline.agents.runtime import build_runner, incoming, job_state_tables
from pipeline.application import app, settings
from pipeline.catalog import QUEUES, QueueSpec
from pipeline.compat.bulk import BulkTopic, Fetch
from pipeline.runner import JobRunner
from pipeline.topics import faust_topic, job_state_table

AGENTS_PER_QUEUE = 2


def queue_agent(queue: QueueSpec) -> None:
    """Declare ``queue``'s state table and agent on the app, unless its settings disable it."""
    tuned = queue.settings(settings)
    if not tuned.enabled:
        return
    states = job_state_tables[queue.name] = job_state_table(queue)

    @cache
    def runner() -> JobRunner:
        # Built on first use, inside the running worker.
        limiter = (
            AsyncLimiter(tuned.rate_limit_jobs, tuned.rate_limit_period_ms / 1000)
            if tuned.rate_limit_jobs
            else None
        )
        return build_runner(queue, states, tuned.job_timeout_s, limiter)

    # Two agents share the queue's concurrency, each running its own batches: a job that hangs
    # until its timeout holds its batch, and the other agent goes on meanwhile.
    actors = min(AGENTS_PER_QUEUE, tuned.concurrency)

    # The queue's records come a whole fetch at a time (compat/bulk.py), run in batches of at
    # most batch_max_jobs whose offsets are committed once every job of the batch is done.
    records = BulkTopic(app, faust_topic(queue.topic))

    async def run_jobs(stream: faust.StreamT[Fetch]) -> None:
        index = stream.concurrency_index or 0
        lanes = tuned.concurrency // actors + (index < tuned.concurrency % actors)
        size = settings.batch_max_jobs
        async for fetched in stream:
            records.taken(fetched)
            for start in range(0, len(fetched.messages), size):
                # Before current(): a rebalance while paused leaves out the partitions lost.
                await pauses.until_resumed(queue.name)
                batch = records.current(fetched.messages[start : start + size])
                await runner().process_batch([incoming(message) for message in batch], lanes)
                records.ack(batch)

    name = queue.name.replace("-", "_")
    run_jobs.__name__ = run_jobs.__qualname__ = f"{name}_agent"
    run_jobs.__doc__ = f"Run {queue.name} jobs, {tuned.concurrency} at a time per worker."
    app.agent(
        records.channel,
        name=f"pipeline.agents.{name}_agent",
        concurrency=actors,
    )(run_jobs)


for _queue in QUEUES.values():
    queue_agent(_queue)
