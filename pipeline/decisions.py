"""What a record means and where a failure goes: the runner's two decisions, as pure functions.

No I/O and no clock here, so each decision table is tested on its own (tests/test_decisions.py);
``pipeline.runner`` only sequences the sends each outcome needs.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.delays import delay_tier_for
from pipeline.envelope import JobEnvelope
from pipeline.errors import PermanentJobError
from pipeline.lifecycle import TERMINAL_STATES, JobState
from pipeline.retry import RetryPolicy


class Admission(enum.Enum):
    """What to do with a job record, given the job's latest state."""

    RUN = "run"
    # Its worker died, or lost the partition, mid-job (BullMQ's "stalled"): the same attempt
    # runs again, recorded as stalled first.
    RUN_STALLED = "run-stalled"
    # The record the job finished on, come again: nothing to run.
    SKIP_REPEAT = "skip-repeat"
    # As SKIP_REPEAT, but the worker that finished the job may have died before its terminal
    # lifecycle record was written: write it again (same event id).
    REWRITE_TERMINAL = "rewrite-terminal"
    # A duplicate add, or an older copy of a job that has moved on.
    SKIP_STALE = "skip-stale"


def admit(
    envelope: JobEnvelope,
    state: Mapping[str, Any] | None,
    *,
    topic: str,
    offset: int,
    finished_here: bool,
) -> Admission:
    """Decide what the record at ``topic``/``offset`` means for its job.

    ``state`` is the job's latest state in the table (the runner decides no copy of a job while
    it runs that job); ``finished_here``: this runner took the job to its terminal state and its
    terminal record is acked (so a repeat is a rebalance's replay, not a crash's).
    """
    same_record = state is not None and state["offset"] == offset and state["topic"] == topic
    if not _should_run(envelope, state, same_record):
        if same_record and state is not None and JobState.of(state["state"]) in TERMINAL_STATES:
            return Admission.SKIP_REPEAT if finished_here else Admission.REWRITE_TERMINAL
        return Admission.SKIP_REPEAT if same_record else Admission.SKIP_STALE
    if (
        state is not None
        and JobState.of(state["state"]) is JobState.ACTIVE
        and int(state.get("redrive", 0)) == envelope.redrive
    ):
        return Admission.RUN_STALLED
    return Admission.RUN


def _should_run(envelope: JobEnvelope, state: Mapping[str, Any] | None, same_record: bool) -> bool:
    if state is None:
        return True
    generation = int(state.get("redrive", 0))
    if envelope.redrive != generation:
        # A redrive starts the job afresh; copies from before it are stale.
        return envelope.redrive > generation
    current = JobState.of(state["state"])
    if current is JobState.ACTIVE:
        # The same record again means the worker died mid-job: run it again.
        return same_record
    if current is JobState.DELAYED:
        return envelope.attempt > int(state["attempt"])
    return False  # completed or dead-lettered


@dataclass(frozen=True)
class RetryLater:
    """Send the record to delay tier ``tier_s``; it comes back as the next attempt."""

    delay_s: float
    tier_s: int


@dataclass(frozen=True)
class DeadLetter:
    """Send the record to the queue's dead-letter topic: the job failed for good."""


def route_failure(
    exc: BaseException,
    *,
    attempt: int,
    max_attempts: int,
    policy: RetryPolicy,
    tiers_s: Sequence[int],
    rng: random.Random | None = None,
) -> RetryLater | DeadLetter:
    """Where attempt ``attempt`` of ``max_attempts`` goes after its handler raised ``exc``."""
    if isinstance(exc, PermanentJobError) or attempt >= max_attempts:
        return DeadLetter()
    delay_s = policy.delay_s(attempt, rng)
    return RetryLater(delay_s=delay_s, tier_s=delay_tier_for(delay_s, list(tiers_s)))
