"""Job models, the registry and retry policies (no broker)."""

from __future__ import annotations

import random

import pytest
from pydantic import ValidationError

from pipeline.catalog import EMAIL, MEDIA_UPLOAD
from pipeline.delays import delay_tier_for
from pipeline.errors import UnknownJobError, describe_validation_error, redact
from pipeline.handlers import registry
from pipeline.retry import RetryPolicy
from pipeline.schemas import JobName, OtpEmailJob


def test_secrets_are_masked_everywhere_but_on_the_wire() -> None:
    job = OtpEmailJob(email="ann@example.com", customer_name="Ann", otp="482913")
    assert "482913" not in repr(job)
    assert "482913" not in str(job)
    assert "482913" not in job.model_dump_json()
    assert b'"otp":"482913"' in job.to_wire()
    assert OtpEmailJob.model_validate_json(job.to_wire()) == job
    assert job.secret_values() == ["482913"]


def test_validation_messages_never_repeat_the_input() -> None:
    with pytest.raises(ValidationError) as caught:
        OtpEmailJob.model_validate({"email": "not-an-email", "customer_name": "A", "otp": "12"})
    message = describe_validation_error(caught.value)
    assert "email" in message
    assert "otp" in message
    assert "not-an-email" not in message
    assert "'12'" not in message


def test_registry_finds_handlers_by_name_and_queue() -> None:
    job_type = registry.get(JobName.OTP_EMAIL_VERIFICATION, EMAIL)
    assert job_type.model is OtpEmailJob
    assert job_type.retry.attempts == 3
    with pytest.raises(UnknownJobError):
        registry.get("no-such-job", EMAIL)
    with pytest.raises(UnknownJobError):
        registry.get(JobName.OTP_EMAIL_VERIFICATION, MEDIA_UPLOAD)


def test_backoff_doubles_with_bounded_jitter_and_a_cap() -> None:
    policy = RetryPolicy(attempts=5, backoff_s=1.0, max_delay_s=6.0, jitter=0.2)
    rng = random.Random(7)
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0)]:
        delay = policy.delay_s(attempt, rng)
        assert base * 0.8 <= delay <= base * 1.2
    assert policy.delay_s(10, rng) <= 6.0
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


def test_delay_tiers_pick_the_longest_that_fits() -> None:
    tiers = [1, 5, 30, 120]
    assert delay_tier_for(0.2, tiers) == 1
    assert delay_tier_for(4.9, tiers) == 1
    assert delay_tier_for(5.0, tiers) == 5
    assert delay_tier_for(3600, tiers) == 120


def test_redact_removes_every_secret() -> None:
    assert redact("code 482913 refused for 482913", ["482913"]) == (
        "code [redacted] refused for [redacted]"
    )


def test_job_status_follows_the_lifecycle_and_ignores_repeats() -> None:
    from pipeline.events import EventType, JobEvent
    from pipeline.monitoring import apply_event, queue_counts

    def event(kind: EventType, attempt: int, at: int, **fields: object) -> JobEvent:
        return JobEvent("j", "email", "otp", kind, attempt, 3, timestamp_ms=at, **fields)  # type: ignore[arg-type]

    state = None
    for record in (
        event(EventType.ADDED, 1, 10),
        event(EventType.ACTIVE, 1, 20, worker_id="w1"),
        event(EventType.FAILED, 1, 30, error_class="SmtpUnavailable", error_message="down"),
        event(EventType.RETRYING, 1, 31, due_at_ms=1031),
        event(EventType.ACTIVE, 2, 1040, worker_id="w2"),
        event(EventType.COMPLETED, 2, 1050, result={"message_id": "m"}),
        event(EventType.COMPLETED, 2, 1050, result={"message_id": "m"}),
    ):
        state = apply_event(state, record)
    assert state is not None
    assert state["state"] == "completed"
    assert state["attempt"] == 2
    assert (state["added_ms"], state["started_ms"], state["finished_ms"]) == (10, 1040, 1050)
    assert state["last_error_class"] == "SmtpUnavailable"
    assert state["worker_id"] == "w2"
    assert queue_counts({"email/otp/added": 2, "email/otp/completed": 1}) == {
        "email": {"otp": {"added": 2, "completed": 1}}
    }


def test_latency_figures_count_each_job_in_its_bucket() -> None:
    from pipeline.monitoring import add_latency

    figures = None
    for latency_ms in (4, 40, 40, 2_000_000):
        figures = add_latency(figures, latency_ms)
    assert figures == {
        "count": 4,
        "sum_ms": 2_000_084,
        "buckets": {"0.01": 1, "0.05": 2, "+Inf": 1},
    }


def test_per_partition_figures_add_up_across_partitions() -> None:
    import operator

    from pipeline.monitoring import across_partitions, add_latency, in_partition, merge_latency

    counts = {
        in_partition(0, "email/otp/added"): 2,
        in_partition(3, "email/otp/added"): 1,
        in_partition(3, "email/a:b/completed"): 1,  # a job name may hold ":"
    }
    assert across_partitions(counts, operator.add) == {
        "email/otp/added": 3,
        "email/a:b/completed": 1,
    }
    latency = {
        in_partition(1, "email/otp"): add_latency(None, 4),
        in_partition(2, "email/otp"): add_latency(add_latency(None, 40), 2_000_000),
    }
    assert across_partitions(latency, merge_latency) == {
        "email/otp": {"count": 3, "sum_ms": 2_000_044, "buckets": {"0.01": 1, "0.05": 1, "+Inf": 1}}
    }


def test_only_finished_jobs_past_the_retention_expire() -> None:
    from pipeline.retention import expired, sweep_interval_s

    states = [
        ("old-done", {"state": "completed", "updated_ms": 100}),
        ("old-dead", {"state": "dead_lettered", "updated_ms": 100}),
        ("old-active", {"state": "active", "updated_ms": 100}),  # may still be running
        ("old-retrying", {"state": "retrying", "updated_ms": 100}),
        ("old-delayed", {"state": "delayed", "updated_ms": 100}),
        ("old-waiting", {"state": "waiting", "updated_ms": 100}),
        # How cron firings end: failed and skipped firings are forgotten too.
        ("old-firing-failed", {"state": "failed", "updated_ms": 100}),
        ("old-firing-skipped", {"state": "skipped", "updated_ms": 100}),
        ("new-done", {"state": "completed", "updated_ms": 5_000}),
        ("empty", None),
    ]
    assert expired(states, before_ms=1_000) == [
        "old-done",
        "old-dead",
        "old-firing-failed",
        "old-firing-skipped",
    ]
    assert sweep_interval_s(7 * 24 * 3600) == 600.0
    assert sweep_interval_s(4) == 1.0
