"""The email agent: hands each record of the ``email`` topic to the job runner."""

from __future__ import annotations

from functools import cache

import faust
from aiolimiter import AsyncLimiter

from pipeline.agents.runtime import FaustPublisher, TableStateStore, incoming, services
from pipeline.application import app, settings
from pipeline.handlers import registry
from pipeline.runner import JobRunner, RunnerTopics
from pipeline.schemas.jobs import QueueName
from pipeline.topics import DEAD_LETTERS, DELAYS, JOB_EVENTS, email_job_state, email_topic


@cache
def email_runner() -> JobRunner:
    """The runner of the email queue (built once the worker runs)."""
    return JobRunner(
        queue=QueueName.EMAIL,
        topics=RunnerTopics(
            events=JOB_EVENTS.name(settings),
            dead_letter=DEAD_LETTERS[QueueName.EMAIL].name(settings),
            delays={seconds: spec.name(settings) for seconds, spec in DELAYS.items()},
        ),
        registry=registry,
        publisher=FaustPublisher(),
        states=TableStateStore(email_job_state),
        services=services(),
        worker_id=settings.worker_id,
        max_job_bytes=settings.max_job_bytes,
        limiter=AsyncLimiter(
            settings.email_rate_limit_jobs, settings.email_rate_limit_period_ms / 1000
        ),
    )


@app.agent(email_topic, concurrency=settings.email_concurrency)
async def email_agent(stream: faust.StreamT[bytes]) -> None:
    """Run email jobs, ``email_concurrency`` at a time per worker."""
    async for event in stream.events():
        await email_runner().process(incoming(event))
