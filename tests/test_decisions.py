"""The runner's decision tables (pipeline.decisions), without a broker."""

from __future__ import annotations

import random
from typing import Any

import pytest

from pipeline.decisions import Admission, DeadLetter, RetryLater, admit, route_failure
from pipeline.envelope import JobEnvelope
from pipeline.errors import InvalidJobData, PermanentJobError, TransientJobError
from pipeline.retry import RetryPolicy

TOPIC = "email"
HERE = 7  # the offset of the record being decided


def envelope(attempt: int = 1, redrive: int = 0) -> JobEnvelope:
    return JobEnvelope(job_id="j", job_name="n", attempt=attempt, enqueued_at_ms=0, redrive=redrive)


def state(
    word: str, *, attempt: int = 1, offset: int = HERE, redrive: int = 0, topic: str = TOPIC
) -> dict[str, Any]:
    return {"state": word, "attempt": attempt, "offset": offset, "topic": topic, "redrive": redrive}


@pytest.mark.parametrize(
    ("env", "latest", "finished_here", "expected"),
    [
        # A job never seen runs.
        (envelope(), None, False, Admission.RUN),
        # Active on this very record, nobody running it: its worker died mid-job.
        (envelope(), state("active"), False, Admission.RUN_STALLED),
        # Active on another record (a second add of the same id): a duplicate.
        (envelope(), state("active", offset=3), False, Admission.SKIP_STALE),
        # Finished on this record by another worker, which may have died before its terminal
        # record was written: write it again. Finished here (its record is acked): just skip.
        (envelope(), state("completed"), False, Admission.REWRITE_TERMINAL),
        (envelope(), state("completed"), True, Admission.SKIP_REPEAT),
        (envelope(), state("dead_lettered"), False, Admission.REWRITE_TERMINAL),
        # Finished, and a later add of the same id comes: a duplicate.
        (envelope(), state("completed", offset=3), False, Admission.SKIP_STALE),
        # Retrying: the next attempt runs, an older copy does not.
        (envelope(attempt=2), state("retrying"), False, Admission.RUN),
        (envelope(attempt=1), state("retrying", offset=3), False, Admission.SKIP_STALE),
        # A redrive runs afresh, even after the job finished; a copy from before it is stale.
        (envelope(redrive=1), state("dead_lettered", attempt=3), False, Admission.RUN),
        (envelope(), state("completed", redrive=1, offset=3), False, Admission.SKIP_STALE),
        # A redriven copy finds its own generation active on another record: that is a
        # redrive started elsewhere (active, same generation), so stalled only on its record.
        (envelope(redrive=1), state("active", redrive=1), False, Admission.RUN_STALLED),
        # Active from an older generation: the redrive runs without a stalled record.
        (envelope(redrive=1), state("active", offset=3), False, Admission.RUN),
        # The same offset on another topic (a delay tier) is another record.
        (envelope(), state("completed", topic="delay-1s"), False, Admission.SKIP_STALE),
    ],
)
def test_what_a_record_means(
    env: JobEnvelope,
    latest: dict[str, Any] | None,
    finished_here: bool,
    expected: Admission,
) -> None:
    decided = admit(env, latest, topic=TOPIC, offset=HERE, finished_here=finished_here)
    assert decided is expected


POLICY = RetryPolicy(attempts=3, backoff_s=1.0, jitter=0.0)
TIERS = (1, 5, 30, 120)


@pytest.mark.parametrize(
    ("exc", "attempt", "max_attempts", "expected"),
    [
        (TransientJobError("smtp said 451"), 1, 3, RetryLater(delay_s=1.0, tier_s=1)),
        (TransientJobError("smtp said 451"), 2, 3, RetryLater(delay_s=2.0, tier_s=1)),
        (TransientJobError("smtp said 451"), 3, 3, DeadLetter()),
        (RuntimeError("a handler bug"), 1, 3, RetryLater(delay_s=1.0, tier_s=1)),
        (RuntimeError("a handler bug"), 1, 1, DeadLetter()),
        # Permanent errors never retry, whatever attempts are left.
        (PermanentJobError("mailbox does not exist"), 1, 3, DeadLetter()),
        (InvalidJobData("email: not an address"), 1, 3, DeadLetter()),
    ],
)
def test_where_a_failure_goes(
    exc: Exception, attempt: int, max_attempts: int, expected: RetryLater | DeadLetter
) -> None:
    routed = route_failure(
        exc, attempt=attempt, max_attempts=max_attempts, policy=POLICY, tiers_s=TIERS
    )
    assert routed == expected


def test_a_long_backoff_waits_in_the_longest_tier_that_fits() -> None:
    policy = RetryPolicy(attempts=10, backoff_s=10.0, max_delay_s=300.0, jitter=0.2)
    routed = route_failure(
        RuntimeError(),
        attempt=4,
        max_attempts=10,
        policy=policy,
        tiers_s=TIERS,
        rng=random.Random(1),
    )
    assert isinstance(routed, RetryLater)
    assert 64 <= routed.delay_s <= 96
    assert routed.tier_s == 30
