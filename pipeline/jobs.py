"""The job registry: a job type is a pydantic model plus one decorated handler function.

    @registry.job(JobName.OTP_EMAIL_VERIFICATION, queue=EMAIL, model=OtpEmailJob)
    async def send_otp_email(job: OtpEmailJob, ctx: JobContext) -> dict[str, str]:
        ...

The agents look handlers up by the record's key; producers look models up to validate data
before publishing. Neither needs changing to add a job type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from pipeline.catalog import QueueSpec
from pipeline.errors import ConfigurationError, UnknownJobError
from pipeline.retry import RetryPolicy
from pipeline.schemas.jobs import JobModel

M = TypeVar("M", bound=JobModel)


class ProgressReporter(Protocol):
    """Reports how far a job has got; the runner throttles nothing, callers do."""

    def __call__(
        self, percent: float, bytes_done: int | None = None, bytes_total: int | None = None
    ) -> Awaitable[None]: ...


async def _no_progress(
    percent: float, bytes_done: int | None = None, bytes_total: int | None = None
) -> None:
    return None


@dataclass(frozen=True)
class JobContext:
    """What a handler gets besides its job: ids, the attempt, services, a progress reporter."""

    job_id: str
    attempt: int
    max_attempts: int
    services: Any
    report_progress: ProgressReporter = field(default=_no_progress)


Handler = Callable[[M, JobContext], Awaitable[Mapping[str, str] | None]]


@dataclass(frozen=True)
class JobType(Generic[M]):
    """A registered job: name, queue, payload model, handler and retry policy."""

    name: str
    queue: QueueSpec
    model: type[M]
    handler: Handler[M]
    retry: RetryPolicy


class JobRegistry:
    """Job types by name."""

    def __init__(self) -> None:
        self._types: dict[str, JobType[Any]] = {}

    def job(
        self,
        name: str,
        *,
        queue: QueueSpec,
        model: type[M],
        retry: RetryPolicy | None = None,
    ) -> Callable[[Handler[M]], Handler[M]]:
        """Register the decorated function as the handler of job ``name``."""

        def register(handler: Handler[M]) -> Handler[M]:
            if name in self._types:
                raise ConfigurationError(f"job {name!r} is registered twice")
            self._types[name] = JobType(name, queue, model, handler, retry or RetryPolicy())
            return handler

        return register

    def get(self, name: str, queue: QueueSpec) -> JobType[Any]:
        """The job type ``name`` of ``queue``; ``UnknownJobError`` if there is none."""
        job_type = self._types.get(name)
        if job_type is None or job_type.queue.name != queue.name:
            known = ", ".join(self.names(queue)) or "none"
            raise UnknownJobError(
                f"no handler for job {name!r} on queue {queue.name!r} (known: {known})"
            )
        return job_type

    def names(self, queue: QueueSpec) -> list[str]:
        """The job names registered on ``queue``, sorted."""
        return sorted(name for name, job in self._types.items() if job.queue.name == queue.name)


registry = JobRegistry()
