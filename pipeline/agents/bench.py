"""The bench agent: runs noop jobs, only on workers started with ``bench_queue_enabled``."""

from __future__ import annotations

from functools import cache

import faust

from pipeline.agents.runtime import build_runner, incoming
from pipeline.application import app, settings
from pipeline.catalog import BENCH
from pipeline.runner import JobRunner
from pipeline.schemas.jobs import QueueName
from pipeline.topics import faust_topic

if settings.bench_queue_enabled:
    # Declared only here: a worker that does not run the benchmark keeps no table for it.
    bench_job_state = app.Table(
        "bench-job-state", default=None, partitions=BENCH.partition_count(settings), key_type=str
    )

    @cache
    def bench_runner() -> JobRunner:
        """The runner of the bench queue (built once the worker runs)."""
        return build_runner(QueueName.BENCH, bench_job_state, settings.email_job_timeout_s)

    @app.agent(faust_topic(BENCH), concurrency=settings.bench_concurrency)
    async def bench_agent(stream: faust.StreamT[bytes]) -> None:
        """Run noop jobs, ``bench_concurrency`` at a time per worker."""
        async for event in stream.events():
            await bench_runner().process(incoming(event))
