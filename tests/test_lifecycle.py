"""The one vocabulary of job states and the one builder of lifecycle records (no broker)."""

from __future__ import annotations

import pytest

from pipeline import lifecycle
from pipeline.envelope import JobEnvelope
from pipeline.events import EventType, decode_event, encode_event
from pipeline.lifecycle import STATE_AFTER, TERMINAL_STATES, JobState
from pipeline.monitoring import apply_event


def envelope(**fields: object) -> JobEnvelope:
    base: dict[str, object] = {
        "job_id": "j1",
        "job_name": "otp-email-verification",
        "attempt": 1,
        "enqueued_at_ms": 5,
    }
    return JobEnvelope(**{**base, **fields})  # type: ignore[arg-type]


def test_every_job_record_moves_the_job_to_a_named_state() -> None:
    without_state = {EventType.UNKNOWN, EventType.PROGRESS}
    queue_records = {EventType.QUEUE_PAUSED, EventType.QUEUE_RESUMED}
    assert set(STATE_AFTER) == set(EventType) - without_state - queue_records
    assert {JobState.COMPLETED, JobState.DEAD_LETTERED} == TERMINAL_STATES


@pytest.mark.parametrize(
    ("word", "state"),
    [("active", JobState.ACTIVE), ("delayed", JobState.DELAYED), ("retrying", JobState.DELAYED)],
)
def test_stored_words_read_as_states_including_the_old_name_of_delayed(
    word: str, state: JobState
) -> None:
    assert JobState.of(word) is state


def test_a_redrive_adds_the_job_as_a_producer_does_but_one_generation_on() -> None:
    produced = lifecycle.added("email", envelope(), 3, timestamp_ms=10)
    redriven = lifecycle.added("email", envelope(redrive=2), 3, timestamp_ms=10)
    assert (produced.type, produced.attempt, produced.max_attempts) == (EventType.ADDED, 1, 3)
    assert (redriven.type, redriven.attempt, redriven.max_attempts) == (EventType.ADDED, 1, 3)
    assert produced.result == {}
    assert redriven.result == {"redrive": "2"}
    delayed = lifecycle.added("email", envelope(due_at_ms=99), 3)
    assert delayed.due_at_ms == 99


def test_a_terminal_record_has_the_same_id_every_time_it_is_written() -> None:
    first = lifecycle.attempt_event("email", envelope(), EventType.COMPLETED, 3, "w1")
    again = lifecycle.attempt_event("email", envelope(), EventType.COMPLETED, 3, "w2")
    next_attempt = lifecycle.attempt_event(
        "email", envelope(attempt=2), EventType.COMPLETED, 3, "w1"
    )
    active = lifecycle.attempt_event("email", envelope(), EventType.ACTIVE, 3, "w1")
    again_active = lifecycle.attempt_event("email", envelope(), EventType.ACTIVE, 3, "w1")
    assert first.event_id == again.event_id != next_attempt.event_id
    assert active.event_id != again_active.event_id  # only terminal records repeat


def test_the_monitor_reads_the_records_into_the_same_states() -> None:
    state = None
    for event in [
        lifecycle.added("email", envelope(), 3),
        lifecycle.attempt_event("email", envelope(), EventType.ACTIVE, 3, "w1"),
        lifecycle.attempt_event("email", envelope(), EventType.RETRYING, 3, "w1", due_at_ms=7),
    ]:
        state = apply_event(state, decode_event(encode_event(event)))
    assert state is not None
    assert state["state"] is JobState.DELAYED


def test_a_job_done_without_an_active_record_still_shows_when_and_where_it_ran() -> None:
    state = None
    for event in [
        lifecycle.added("email", envelope(), 3, timestamp_ms=10),
        lifecycle.attempt_event(
            "email", envelope(), EventType.COMPLETED, 3, "w1", started_ms=12, timestamp_ms=15
        ),
    ]:
        state = apply_event(state, decode_event(encode_event(event)))
    assert state is not None
    assert (state["state"], state["started_ms"], state["worker_id"]) == (
        JobState.COMPLETED,
        12,
        "w1",
    )


def test_the_monitor_reaches_the_same_state_whatever_order_a_jobs_records_arrive_in() -> None:
    # add_bulk sends a job and its added record at once: the worker's records may land first.
    added = lifecycle.added("email", envelope(), 3, timestamp_ms=10)
    active = lifecycle.attempt_event("email", envelope(), EventType.ACTIVE, 3, "w1")
    completed = lifecycle.attempt_event("email", envelope(), EventType.COMPLETED, 3, "w1")
    in_order = None
    for event in (added, active, completed):
        in_order = apply_event(in_order, event)
    for order in ((active, completed, added), (active, added, completed)):
        state = None
        for event in order:
            state = apply_event(state, event)
        assert state == in_order
    # A duplicate add of a finished job (the worker skips it) leaves it finished.
    assert apply_event(in_order, added)["state"] == JobState.COMPLETED


def test_queue_and_cron_records_name_no_job_attempt() -> None:
    paused = lifecycle.queue_event("email", "w1", paused=True, cause="refused", paused_s=0)
    resumed = lifecycle.queue_event("email", "w1", paused=False, cause="", paused_s=1.5)
    assert (paused.type, paused.job_id, paused.duration_ms) == (EventType.QUEUE_PAUSED, "", None)
    assert (resumed.type, resumed.duration_ms) == (EventType.QUEUE_RESUMED, 1500)
    firing = lifecycle.firing_event("digest@1", "digest", EventType.SKIPPED, "w1")
    assert (firing.queue, firing.attempt, firing.max_attempts) == ("cron", 1, 1)


def test_the_dead_letter_list_takes_a_job_on_its_dead_letter_and_off_at_its_redrive() -> None:
    from pipeline.monitoring import dead_letter_entry, leaves_dead_letters

    dead = lifecycle.attempt_event(
        "email",
        envelope(attempt=3),
        EventType.DEAD_LETTERED,
        3,
        "w1",
        error_class="SmtpRejected",
        error_message="mailbox refused",
    )
    state = apply_event(None, dead)
    entry = dead_letter_entry(state, dead, partition=4)
    assert entry == {
        "job_id": "j1",
        "queue": "email",
        "job_name": "otp-email-verification",
        "reason": "mailbox refused",
        "error_class": "SmtpRejected",
        "attempts": 3,
        "max_attempts": 3,
        "failed_at_ms": dead.timestamp_ms,
        "redrive": 0,
        "partition": 4,
    }
    assert not leaves_dead_letters(lifecycle.added("email", envelope(), 3))
    assert leaves_dead_letters(lifecycle.added("email", envelope(redrive=1), 3))
