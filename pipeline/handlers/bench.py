"""The noop job handler of the bench queue."""

from __future__ import annotations

from pipeline.jobs import JobContext, registry
from pipeline.retry import RetryPolicy
from pipeline.schemas.bench import NoopJob
from pipeline.schemas.jobs import JobName, QueueName


@registry.job(JobName.NOOP, queue=QueueName.BENCH, model=NoopJob, retry=RetryPolicy(attempts=1))
async def noop(job: NoopJob, ctx: JobContext) -> None:
    """Return at once."""
