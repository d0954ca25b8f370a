"""The noop job of the bench queue."""

from __future__ import annotations

from pipeline.schemas.jobs import JobModel


class NoopJob(JobModel):
    """A job that does nothing: what is left is the cost of the machinery around it."""

    seq: int = 0
