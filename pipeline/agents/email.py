"""The email agent: hands each record of the ``email`` topic to the job runner."""

from __future__ import annotations

from functools import cache

import faust
from aiolimiter import AsyncLimiter

from pipeline.agents.runtime import build_runner, incoming
from pipeline.application import app, settings
from pipeline.runner import JobRunner
from pipeline.schemas.jobs import QueueName
from pipeline.topics import email_job_state, email_topic


@cache
def email_runner() -> JobRunner:
    """The runner of the email queue, with its limiter (built once the worker runs)."""
    limiter = AsyncLimiter(
        settings.email_rate_limit_jobs, settings.email_rate_limit_period_ms / 1000
    )
    return build_runner(QueueName.EMAIL, email_job_state, settings.email_job_timeout_s, limiter)


@app.agent(email_topic, concurrency=settings.email_concurrency)
async def email_agent(stream: faust.StreamT[bytes]) -> None:
    """Run email jobs, ``email_concurrency`` at a time per worker."""
    async for event in stream.events():
        await email_runner().process(incoming(event))
