"""The bench queue and its noop job, registered only where the benchmark asks for them: a worker
loads this module through ``PIPELINE_JOB_MODULES='["bench.jobs"]'``, the way a team adds its own
queues and job types. No deployment carries the bench topics otherwise."""

from __future__ import annotations

from pydantic import Field

from pipeline.catalog import QueueSpec, register_queue
from pipeline.jobs import JobContext, registry
from pipeline.queues import Queue
from pipeline.retry import RetryPolicy
from pipeline.schemas.jobs import JobModel
from pipeline.settings import QueueSettings


class BenchQueueSettings(QueueSettings):
    """The bench queue: ``PIPELINE_QUEUES__BENCH__*``."""

    concurrency: int = Field(8, ge=1, description="Noop jobs one worker runs at once.")


BENCH = register_queue(
    QueueSpec(
        "bench",
        "Noop jobs of the benchmark.",
        settings_group="bench",
        settings_model=BenchQueueSettings,
    )
)
NOOP = "noop"


class NoopJob(JobModel):
    """A job that does nothing: what is left is the cost of the machinery around it."""

    seq: int = 0


@registry.job(NOOP, queue=BENCH, model=NoopJob, retry=RetryPolicy(attempts=1))
async def noop(job: NoopJob, ctx: JobContext) -> None:
    """Return at once."""


class BenchQueue(Queue):
    """The producer of the bench queue."""

    queue = BENCH
