"""The project's one error hierarchy.

Every error says whether trying the same job again later may succeed (``retriable``)::

    PipelineError                 base; never raised itself
    ├── ConfigurationError        settings that cannot work (not retriable)
    │   ├── UnknownQueueError     no queue of that name is registered
    │   └── KafkaRefused          a broker refuses this client: credentials, certificates or
    │                             a listener of another security protocol
    └── JobError                  a job could not be done
        ├── PermanentJobError     retrying cannot help (not retriable)
        │   ├── UnknownJobError   no handler is registered for the job name
        │   ├── InternalError     the worker's own code failed on this record (a bug)
        │   └── InvalidJobData    bad JSON, failed validation, over the size limit
        │       └── InvalidEnvelope  a header no producer of ours writes (bad text, range)
        └── TransientJobError     a dependency is down or slow: retry later (retriable)
            ├── JobStalled        the handler ran past its queue's job timeout
            └── DependencyDown    a dependency cannot be reached at all: the queue pauses
                                  (pipeline.breaker) and the job keeps its attempt

Library errors are wrapped where they cross into our code (``raise X(...) from exc``), and
messages never carry secrets: they are logged and put on ``job-events`` as they are.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import ValidationError


class PipelineError(Exception):
    """Base of every error this project raises."""

    retriable: ClassVar[bool] = False


class ConfigurationError(PipelineError):
    """Settings that cannot work."""


class UnknownQueueError(ConfigurationError):
    """No queue of that name is registered."""


class KafkaRefused(ConfigurationError):
    """A broker answers but refuses this client: wrong credentials, a certificate not trusted
    either way, or a listener that speaks another security protocol. ``definite`` is false when
    a broker shutting down could have looked the same (a connection closed at once)."""

    def __init__(self, message: str, *, definite: bool = True) -> None:
        super().__init__(message)
        self.definite = definite


class SchemaRegistryError(ConfigurationError):
    """The schema registry (PIPELINE_SCHEMA_REGISTRY_URL) refused the lifecycle schema or could
    not be reached: nothing is written rather than records no registry reader could decode."""


class CommandError(PipelineError):
    """What the ``pipeline`` command reports in one line, and the exit code it ends with."""

    exit_code: ClassVar[int] = 1


class NotFound(CommandError):
    """No such job, or no such dead letter."""

    exit_code = 3


class Unreachable(CommandError):
    """Kafka or the worker's web API did not answer: try again once it is up."""

    exit_code = 4


class JobError(PipelineError):
    """A job could not be done."""


class PermanentJobError(JobError):
    """Retrying the job cannot help: it goes to the dead-letter topic."""


class UnknownJobError(PermanentJobError):
    """No handler is registered for the record's job name."""


class TransientJobError(JobError):
    """A dependency failed in a way that may pass: the job is retried later."""

    retriable = True


class JobStalled(TransientJobError):
    """The handler ran past its queue's job timeout and was abandoned."""


class DependencyDown(TransientJobError):
    """A dependency cannot be reached at all (connection refused or timed out): an outage, not
    a fault of the job, so it pauses the queue instead of spending the job's attempts."""


class InvalidJobData(PermanentJobError):
    """The record is not a valid job: bad JSON, a failed validation, too large."""


class InternalError(PermanentJobError):
    """The worker's own code failed on a record: dead-lettered so the agent goes on."""


class InvalidEnvelope(InvalidJobData):
    """A job header that cannot be read: not UTF-8, not a number, out of range, repeated."""


REDACTED = "[redacted]"


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with every secret replaced, for logs, lifecycle records and dead letters."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def describe_validation_error(exc: ValidationError, what: str = "job data") -> str:
    """Where and why validation failed, without the offending input (it may be a secret)."""
    problems = [
        f"{'.'.join(str(part) for part in error['loc']) or 'value'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False, include_context=False)
    ]
    return f"invalid {what}: " + "; ".join(problems)
