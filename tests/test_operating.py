"""What the command line, the web API and the dashboard stand on, free of Faust: counts of jobs
by state, a job's history, throughput, pauses and the workers' roster."""

from __future__ import annotations

import asyncio
import json

import pytest

from pipeline import lifecycle
from pipeline.envelope import JobEnvelope
from pipeline.events import EventType, JobEvent
from pipeline.monitoring import (
    Throughput,
    apply_event,
    merge_throughput,
    moves,
    split_counts,
)
from pipeline.pauses import Pauses, control_value
from pipeline.workers import FORGET_S, SILENT_S, Roster, heartbeat


def _event(kind: EventType, attempt: int = 1, at_ms: int = 1_000, **fields: object) -> JobEvent:
    envelope = JobEnvelope(job_id="j1", job_name="otp", attempt=attempt, enqueued_at_ms=0)
    if kind == EventType.ADDED:
        return lifecycle.added("email", envelope, 3, timestamp_ms=at_ms)
    return lifecycle.attempt_event("email", envelope, kind, 3, "w1", timestamp_ms=at_ms, **fields)


def test_a_job_moving_between_states_is_counted_in_one_at_a_time() -> None:
    counts: dict[str, int] = {}
    state = None
    for kind, attempt in [
        (EventType.ADDED, 1),
        (EventType.ACTIVE, 1),
        (EventType.FAILED, 1),
        (EventType.RETRYING, 1),
        (EventType.ACTIVE, 2),
        (EventType.PROGRESS, 2),  # no move
        (EventType.COMPLETED, 2),
    ]:
        after = apply_event(state, _event(kind, attempt, error_class="X", error_message="boom"))
        for key, step in moves(state, after):
            counts[key] = counts.get(key, 0) + step
        state = after
    records, states = split_counts(counts)
    assert records == {}
    assert {key: n for key, n in states.items() if n} == {"email/otp/completed": 1}
    assert moves(state, None) == [("email/otp/state:completed", -1)]  # forgotten by retention
    # What went wrong stays with the job; a record read twice is kept once.
    assert [entry["type"] for entry in state["history"]] == ["failed", "retrying"]
    again = apply_event(state, _event(EventType.FAILED, 1, error_class="X", error_message="boom"))
    assert again["history"] == state["history"]


def test_record_counts_and_state_counts_are_told_apart_and_never_below_zero() -> None:
    records, states = split_counts(
        {"email/a/b/completed": 3, "email/a/b/state:waiting": -1, "email/x/state:active": 2}
    )
    assert records == {"email/a/b/completed": 3}  # a job name may hold "/"
    assert states == {"email/a/b/waiting": 0, "email/x/active": 2}


def test_throughput_counts_finished_attempts_per_minute_for_an_hour() -> None:
    throughput = Throughput()
    minute = 60_000
    for at_ms, kind in [
        (10 * minute, EventType.COMPLETED),
        (10 * minute + 5, EventType.COMPLETED),
        (10 * minute + 9, EventType.ACTIVE),  # not an outcome
        (11 * minute, EventType.DEAD_LETTERED),
        (80 * minute, EventType.FAILED),  # an hour on: the old minutes go
    ]:
        throughput.add(_event(kind, at_ms=at_ms))
    assert throughput.figures(80 * minute) == {"email": [{"minute_ms": 80 * minute, "failed": 1}]}
    early = Throughput()
    early.add(_event(EventType.COMPLETED, at_ms=10 * minute))
    other = {"email": [{"minute_ms": 10 * minute, "completed": 2, "failed": 1}]}
    assert merge_throughput(early.figures(11 * minute), other) == {
        "email": [{"minute_ms": 10 * minute, "completed": 3, "failed": 1}]
    }


async def test_a_paused_queue_waits_until_resumed_and_nothing_runs_before_pauses_are_known() -> (
    None
):
    pauses = Pauses()
    started = asyncio.create_task(pauses.until_resumed("email"))
    await asyncio.sleep(0)
    assert not started.done()  # the topic not read yet
    assert pauses.apply(b"email", control_value(True, "me")) is None
    pauses.known.set()
    await asyncio.sleep(0)
    assert not started.done()
    assert pauses.paused()["email"]["by"] == "me"
    assert pauses.apply(b"email", control_value(False, "me")) is None
    await asyncio.wait_for(started, 1)
    assert not pauses.is_paused("email")
    await asyncio.wait_for(pauses.until_resumed("media-upload"), 1)  # never paused


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        (None, b'{"paused": true}', "without a queue name"),
        (b"email", b"not json", "is not JSON"),
        (b"email", json.dumps({"paused": "yes"}).encode(), 'no "paused"'),
    ],
)
def test_a_control_record_that_is_not_one_pauses_nothing(
    key: bytes | None, value: bytes, problem: str
) -> None:
    pauses = Pauses()
    assert problem in (pauses.apply(key, value) or "")
    assert pauses.paused() == {}


def test_the_roster_lists_workers_up_gone_and_stopped_and_forgets_old_ones() -> None:
    roster = Roster()
    beat = {"role": "all", "web": "http://w", "started_ms": 1, "partitions": {"email": [0, 1]}}
    roster.apply(heartbeat("up", **beat))
    roster.apply(heartbeat("stopped", **beat, stopped=True))
    roster.apply(b"not json")
    roster.apply(json.dumps({"worker_id": "forged", "at_ms": "soon", "started_ms": 1}).encode())
    now = json.loads(heartbeat("x", **beat))["at_ms"]
    states = {w["worker_id"]: w["state"] for w in roster.workers(now)}
    assert states == {"up": "up", "stopped": "stopped"}
    later = {w["worker_id"]: w["state"] for w in roster.workers(now + int(SILENT_S * 1000) + 1)}
    assert later["up"] == "gone"
    assert roster.workers(now + int(FORGET_S * 1000) + 1) == []


def test_a_job_added_with_a_delay_is_delayed_until_it_runs() -> None:
    envelope = JobEnvelope(
        job_id="j2", job_name="otp", attempt=1, enqueued_at_ms=1_000, due_at_ms=61_000
    )
    state = apply_event(None, lifecycle.added("email", envelope, 3, timestamp_ms=1_000))
    assert (state["state"], state["due_at_ms"]) == ("delayed", 61_000)
    active = apply_event(state, _event(EventType.ACTIVE, at_ms=61_000))
    assert moves(state, active) == [("email/otp/state:delayed", -1), ("email/otp/state:active", 1)]
