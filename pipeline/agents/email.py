"""The email agent: consumes the ``email`` topic."""

from __future__ import annotations

import logging

import faust

from pipeline.application import app
from pipeline.topics import email_topic

logger = logging.getLogger(__name__)


@app.agent(email_topic)
async def email_agent(stream: faust.StreamT[bytes]) -> None:
    """Log each email job it receives (the email work itself is built on top of this)."""
    async for event in stream.events():
        job_name = (event.key or b"").decode("utf-8", errors="replace")
        logger.info(
            "email job received: name=%s partition=%s offset=%s",
            job_name,
            event.message.partition,
            event.message.offset,
        )
