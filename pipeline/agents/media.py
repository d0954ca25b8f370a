"""The media agent: hands each record of the ``media-upload`` topic to the job runner."""

from __future__ import annotations

from functools import cache

import faust

from pipeline.agents.runtime import build_runner, incoming
from pipeline.application import app, settings
from pipeline.runner import JobRunner
from pipeline.schemas.jobs import QueueName
from pipeline.topics import media_job_state, media_upload_topic


@cache
def media_runner() -> JobRunner:
    """The runner of the media-upload queue (built once the worker runs)."""
    return build_runner(QueueName.MEDIA_UPLOAD, media_job_state, settings.media_job_timeout_s)


@app.agent(media_upload_topic, concurrency=settings.media_concurrency)
async def media_agent(stream: faust.StreamT[bytes]) -> None:
    """Run uploads, ``media_concurrency`` at a time per worker."""
    async for event in stream.events():
        await media_runner().process(incoming(event))
