"""The job runner's decisions, without Kafka: hostile records, durable outcomes, redeliveries.

The worker gives the runner its Faust producer and a table; here a recorder and a dict stand in,
so each decision is tried directly. The same paths run against a real broker in
``test_hostile_records.py`` and ``test_email_jobs.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from typing import Any

import pytest

from pipeline.breaker import CircuitBreaker
from pipeline.catalog import EMAIL
from pipeline.envelope import Headers, job_hash
from pipeline.errors import DependencyDown
from pipeline.events import EventType, decode_event
from pipeline.jobs import JobContext, JobRegistry
from pipeline.outcomes import RunnerTopics
from pipeline.records import IncomingRecord
from pipeline.runner import JobRunner
from pipeline.schemas.jobs import JobModel


class Echo(JobModel):
    text: str


class Recorder:
    """Keeps what the runner publishes, by topic."""

    def __init__(self) -> None:
        self.sent: dict[str, list[tuple[bytes | None, bytes, Headers]]] = {}
        self.partitions: dict[str, list[int | None]] = {}

    async def publish(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        headers: Headers,
        partition: int | None = None,
    ) -> None:
        self.sent.setdefault(topic, []).append((key, value, list(headers)))
        self.partitions.setdefault(topic, []).append(partition)

    async def publish_soon(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes,
        headers: Headers,
        partition: int | None = None,
    ) -> Awaitable[object]:
        await self.publish(topic, key=key, value=value, headers=headers, partition=partition)
        return _done()

    def events(self) -> list[tuple[str, str, str]]:
        return [
            (event.job_id, event.type.value, event.event_id)
            for event in (decode_event(value) for _, value, _ in self.sent.get("events", []))
        ]

    def dead_letters(self) -> list[dict[str, bytes]]:
        return [dict(headers) for _, _, headers in self.sent.get("dlq", [])]


def _done() -> asyncio.Future[object]:
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


class States:
    """A dict of job states; writes of the states in ``held`` become durable on ``release``."""

    def __init__(self) -> None:
        self.data: dict[str, dict[str, Any]] = {}
        self.held: set[str] = set()
        self.release = asyncio.Event()
        self.written = asyncio.Event()

    def get(self, job_id: str) -> dict[str, Any] | None:
        return self.data.get(job_id)

    async def set(self, job_id: str, state: dict[str, Any], partition: int) -> Awaitable[object]:
        self.data[job_id] = state
        self.written.set()
        if state["state"] in self.held or job_id in self.held:
            return asyncio.ensure_future(self.release.wait())
        return _done()


def make_runner(
    sent: Recorder,
    states: States,
    handled: list[str],
    *,
    takes_s: float = 0.0,
    active_after_s: float = 0.0,
    gate: asyncio.Event | None = None,
) -> JobRunner:
    registry = JobRegistry()

    @registry.job("echo", queue=EMAIL, model=Echo)
    async def echo(job: Echo, ctx: JobContext) -> Mapping[str, str]:
        handled.append(ctx.job_id)
        if gate is not None:
            await asyncio.wait_for(gate.wait(), timeout=5)
        if takes_s:
            await asyncio.sleep(takes_s)
        return {"echoed": job.text}

    return JobRunner(
        queue=EMAIL,
        topics=RunnerTopics(
            events="events", dead_letter="dlq", delays={1: "delay-1s"}, events_partitions=6
        ),
        registry=registry,
        publisher=sent,
        states=states,
        services=None,
        worker_id="w",
        max_job_bytes=2000,
        job_timeout_s=5,
        active_after_s=active_after_s,
    )


def record(
    offset: int, headers: Headers, value: bytes = b'{"text": "hi"}', key: bytes | None = b"echo"
) -> IncomingRecord:
    return IncomingRecord("email", 0, offset, 1000, key, value, headers)


HOSTILE: dict[str, IncomingRecord] = {
    "unicode digit attempt": record(1, [("attempt", "²".encode())]),
    "huge attempt": record(2, [("attempt", b"1" + b"0" * 30)]),
    "huge max-attempts": record(3, [("max-attempts", b"9" * 15)]),
    "zero max-attempts": record(4, [("max-attempts", b"0")]),
    "non-UTF-8 job id": record(5, [("job-id", b"\xff\xfe-1")]),
    "job id with a newline": record(6, [("job-id", b"x\nERROR forged")]),
    "repeated job id": record(7, [("job-id", b"a"), ("job-id", b"b")]),
    "oversize value": record(8, [("job-id", b"big")], value=b"x" * 5000),
    "oversize header": record(9, [("job-id", b"h"), ("junk", b"x" * 5000)]),
    "not JSON": record(10, [("job-id", b"nj")], value=b"\xff not json"),
    "wrong type": record(11, [("job-id", b"wt")], value=b'{"text": 5}'),
    "no key": record(12, [("job-id", b"nk")], key=None),
}


async def test_hostile_records_are_dead_lettered_with_a_reason_and_never_raise() -> None:
    sent, states, handled = Recorder(), States(), []
    runner = make_runner(sent, states, handled)
    for name, hostile in HOSTILE.items():
        assert await runner.process(hostile) == EventType.DEAD_LETTERED, name
    assert await runner.process(record(20, [("job-id", b"good")])) == EventType.COMPLETED
    assert handled == ["good"]

    letters = sent.dead_letters()
    assert len(letters) == len(HOSTILE)
    assert all(letter["dlq-reason"] for letter in letters)
    # Each is named by a job id that is safe to use; an id that was refused is kept aside.
    assert letters[4]["job-id"] == b"email:0:5"
    assert letters[4]["dlq-original-job-id"] == b"\xff\xfe-1"
    # Too large to copy: a reference to the original, never a copy the topic may refuse.
    for index in (7, 8):
        _, value, _ = sent.sent["dlq"][index]
        assert value == b""
        assert int(letters[index]["dlq-original-size"]) > 5000
        assert letters[index]["dlq-original-offset"] in (b"8", b"9")
    dead = [event for event in sent.events() if event[1] == "dead_lettered"]
    assert len(dead) == len(HOSTILE)


async def test_an_internal_error_on_a_record_is_dead_lettered_not_raised() -> None:
    sent, states, handled = Recorder(), States(), []
    runner = make_runner(sent, states, handled)

    def broken(job_id: str) -> dict[str, Any] | None:
        raise KeyError("the state store broke")

    states.get = broken  # type: ignore[method-assign]
    assert await runner.process(record(1, [("job-id", b"j")])) == EventType.DEAD_LETTERED
    [letter] = sent.dead_letters()
    assert letter["dlq-error-class"] == b"InternalError"
    assert b"KeyError" in letter["dlq-reason"]


async def test_a_job_is_done_only_once_its_outcome_is_durable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.runner")
    sent, states, handled = Recorder(), States(), []
    runner = make_runner(sent, states, handled)
    states.held.add("completed")
    running = asyncio.create_task(runner.process(record(1, [("job-id", b"j")])))
    while states.get("j") is None or states.get("j")["state"] != "completed":  # type: ignore[index]
        states.written.clear()
        await asyncio.wait_for(states.written.wait(), timeout=5)
    assert handled == ["j"]
    assert not running.done()  # the handler returned, but its state is not acked yet
    # "completed" in the log means done for good (the chaos suite relies on it): not yet.
    assert "completed" not in caplog.text
    states.release.set()
    assert await running == EventType.COMPLETED
    assert len(runner.done_window_ms) == 1
    assert "job j (echo) completed on attempt 1" in caplog.text


async def test_a_jobs_records_go_to_the_events_partition_of_its_added_record() -> None:
    sent, states, handled = Recorder(), States(), []
    runner = make_runner(sent, states, handled)
    await runner.process(record(1, [("job-id", b"j-7")]))
    # Where the producer side put its ``added`` record: the job id's hash, modulo 6.
    assert set(sent.partitions["events"]) == {job_hash("j-7") % 6}
    assert [kind for _, kind, _ in sent.events()] == ["active", "completed"]


async def test_a_job_done_within_active_after_gets_only_its_terminal_record() -> None:
    sent, states, handled = Recorder(), States(), []
    runner = make_runner(sent, states, handled, active_after_s=1.0)
    states.held.add("active")  # were it written, the job could not finish
    assert await runner.process(record(1, [("job-id", b"j")])) == EventType.COMPLETED
    assert [kind for _, kind, _ in sent.events()] == ["completed"]
    [(_, value, _)] = sent.sent["events"]
    completed = decode_event(value)
    assert completed.started_ms is not None
    assert completed.started_ms <= completed.timestamp_ms


async def test_a_job_still_running_after_active_after_is_marked_before_its_outcome() -> None:
    sent, states, handled = Recorder(), States(), []
    runner = make_runner(sent, states, handled, takes_s=0.2, active_after_s=0.01)
    running = asyncio.create_task(runner.process(record(1, [("job-id", b"j")])))
    await asyncio.wait_for(states.written.wait(), timeout=5)
    assert states.get("j")["state"] == "active"  # type: ignore[index]
    assert not running.done()
    assert await running == EventType.COMPLETED
    assert [kind for _, kind, _ in sent.events()] == ["active", "completed"]


async def test_no_side_effect_starts_before_the_job_is_known_active() -> None:
    sent, states, handled = Recorder(), States(), []
    runner = make_runner(sent, states, handled)
    states.held.add("active")  # Kafka does not take the record
    running = asyncio.create_task(runner.process(record(1, [("job-id", b"j")])))
    await asyncio.sleep(0.05)
    assert handled == []
    states.release.set()
    assert await running == EventType.COMPLETED
    assert handled == ["j"]


async def test_a_copy_of_a_running_job_is_decided_only_once_the_run_is_over() -> None:
    # Concurrency above one: a rebalance delivers the record of a running job again, in the
    # same batch. The copy waits for the run, then is skipped without writing anything; the
    # handler runs once, and the batch (both offsets) is done only once the outcome is durable.
    sent, states, handled = Recorder(), States(), []
    runner = make_runner(sent, states, handled, takes_s=0.05)
    states.held.add("completed")
    batch = [record(1, [("job-id", b"j")]), record(1, [("job-id", b"j")])]
    running = asyncio.create_task(runner.process_batch(batch, concurrency=2))
    await asyncio.wait_for(states.written.wait(), timeout=5)
    assert not running.done()
    states.release.set()
    assert await running == [EventType.COMPLETED, EventType.SKIPPED]
    assert handled == ["j"]
    assert [kind for _, kind, _ in sent.events()] == ["active", "completed"]


async def test_a_batch_runs_its_jobs_concurrently_and_is_done_once_all_are_durable() -> None:
    sent, states, handled = Recorder(), States(), []
    gate = asyncio.Event()
    runner = make_runner(sent, states, handled, gate=gate)
    batch = [record(offset, [("job-id", f"j{offset}".encode())]) for offset in range(8)]
    states.held.add("completed")
    running = asyncio.create_task(runner.process_batch(batch, concurrency=4))
    while len(handled) < 4:  # four handlers start; none returns until the gate opens
        states.written.clear()
        await asyncio.wait_for(states.written.wait(), timeout=5)
    assert handled == ["j0", "j1", "j2", "j3"]
    gate.set()

    def completed() -> int:
        return sum(state["state"] == "completed" for state in states.data.values())

    while completed() < 8:
        states.written.clear()
        await asyncio.wait_for(states.written.wait(), timeout=5)
    assert not running.done()  # every job finished, none of their outcomes is acked yet
    states.release.set()
    assert await running == [EventType.COMPLETED] * 8
    assert len(runner.done_window_ms) == 8


async def test_concurrent_batches_are_each_done_on_their_own_acks() -> None:
    # A queue's two agents run batches side by side: one must not count as done on the other's
    # acks, nor wait for them.
    sent, states, handled = Recorder(), States(), []
    runner = make_runner(sent, states, handled)
    states.held.add("slow")  # this job's state is not acked until released
    first = asyncio.create_task(runner.process_batch([record(1, [("job-id", b"slow")])], 1))
    await asyncio.wait_for(states.written.wait(), timeout=5)
    second = runner.process_batch([record(2, [("job-id", b"fast")])], 1)
    assert await asyncio.wait_for(second, timeout=5) == [EventType.COMPLETED]
    assert not first.done()
    states.release.set()
    assert await first == [EventType.COMPLETED]


async def test_a_redelivered_finished_record_writes_its_terminal_record_again() -> None:
    sent, states, handled = Recorder(), States(), []
    runner = make_runner(sent, states, handled)
    first = record(1, [("job-id", b"j")])
    assert await runner.process(first) == EventType.COMPLETED
    # A rebalance replays it to the same worker: its terminal record is known to be written.
    assert await runner.process(first) == EventType.SKIPPED
    # Its worker died before the offset was committed; another worker gets the record: no
    # second run, and the terminal record written again with the same event id.
    assert await make_runner(sent, states, handled).process(first) == EventType.SKIPPED
    # A duplicate add (another record of the same job): skipped, nothing written.
    assert await runner.process(record(2, [("job-id", b"j")])) == EventType.SKIPPED
    assert handled == ["j"]
    completed = [event for event in sent.events() if event[1] == "completed"]
    assert len(completed) == 2
    assert completed[0][2] == completed[1][2]


@pytest.mark.parametrize("state", ["completed", "dead_lettered"])
async def test_finished_jobs_are_not_run_again(state: str) -> None:
    sent, states, handled = Recorder(), States(), []
    runner = make_runner(sent, states, handled)
    states.data["j"] = {"state": state, "attempt": 1, "topic": "email", "offset": 9}
    assert await runner.process(record(1, [("job-id", b"j")])) == EventType.SKIPPED
    assert handled == []


async def test_an_unreachable_dependency_pauses_the_queue_and_spends_no_attempt() -> None:
    sent, states, handled = Recorder(), States(), []
    runner = make_runner(sent, states, handled)
    runner.breaker = CircuitBreaker(
        first_pause_s=0.01, max_pause_s=0.05, on_change=runner._outcomes.queue_changed
    )
    down = {"left": 5}

    async def flaky(job: Echo, ctx: JobContext) -> Mapping[str, str]:
        if down["left"]:
            down["left"] -= 1
            raise DependencyDown("server unreachable (ConnectionRefusedError)")
        handled.append(ctx.job_id)
        return {}

    runner._registry.get("echo", EMAIL).__dict__["handler"] = flaky
    jobs = [runner.process(record(i, [("job-id", f"j{i}".encode())])) for i in range(3)]
    assert await asyncio.gather(*jobs) == [EventType.COMPLETED] * 3
    assert sorted(handled) == ["j0", "j1", "j2"]
    kinds = [kind for _, kind, _ in sent.events()]
    assert kinds.count("queue_paused") == 1
    assert kinds.count("queue_resumed") == 1
    assert "failed" not in kinds
    assert "retrying" not in kinds
    assert not runner.breaker.is_open


async def test_the_breaker_lets_one_probe_through_and_backs_off_while_it_fails() -> None:
    now = [0.0]
    changes: list[bool] = []

    async def changed(opened: bool, cause: str, paused_s: float) -> None:
        changes.append(opened)

    breaker = CircuitBreaker(
        first_pause_s=1, max_pause_s=4, on_change=changed, clock=lambda: now[0]
    )
    assert await breaker.admit() is False
    await breaker.unreachable("down", probe=False)
    await breaker.unreachable("down", probe=False)  # a job that started before the opening
    assert breaker.is_open
    waiting = asyncio.create_task(breaker.admit())
    await asyncio.sleep(0.02)
    assert not waiting.done()
    now[0] = 1.0
    assert await waiting is True  # the probe
    second = asyncio.create_task(breaker.admit())
    await asyncio.sleep(0.05)
    assert not second.done()  # one probe at a time
    await breaker.unreachable("down", probe=True)
    now[0] = 2.5
    await asyncio.sleep(0.05)
    assert not second.done()  # the pause doubled to 2 s after the failed probe
    now[0] = 3.0
    assert await asyncio.wait_for(second, 1) is True
    await breaker.reachable()
    assert not breaker.is_open
    assert changes == [True, False]
