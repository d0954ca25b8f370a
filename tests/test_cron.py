"""Cron jobs on the leader only, with two real workers."""

from __future__ import annotations

import signal
from collections.abc import Awaitable, Callable

import pytest

from pipeline.events import EventType, JobEvent
from tests.brokers import REPO
from tests.kafka_utils import EventLog, eventually
from tests.smtp import SmtpSink
from tests.workers import WorkerProcess

pytestmark = pytest.mark.slow

StartWorker = Callable[..., Awaitable[WorkerProcess]]


def firings(log: EventLog, kind: EventType) -> list[JobEvent]:
    return [e for e in log.events if e.queue == "cron" and e.type == kind]


async def test_a_crontab_fires_once_per_tick_on_the_leader_and_moves_on_when_it_dies(
    start_worker: StartWorker, smtp_sink: SmtpSink, event_log: EventLog
) -> None:
    env = smtp_sink.worker_env(
        PIPELINE_CRON_DAILY_DIGEST_SCHEDULE="* * * * * */2",  # every 2 s (seconds field)
        PIPELINE_CRON_DAILY_DIGEST_RECIPIENTS="tests.cron_recipients:three",
        PYTHONPATH=str(REPO),
    )
    workers = [await start_worker(**env), await start_worker(**env)]

    async def some_firings() -> list[JobEvent] | None:
        done = firings(event_log, EventType.COMPLETED)
        return done if len(done) >= 3 else None

    await eventually(some_firings, timeout_s=60, what="three cron firings")
    started = firings(event_log, EventType.ACTIVE)
    ticks = [e.job_id for e in started]
    assert len(ticks) == len(set(ticks)), "a tick fired on more than one worker"
    leaders = {e.worker_id for e in started}
    assert len(leaders) == 1
    assert all(e.result == {"enqueued": "3"} for e in firings(event_log, EventType.COMPLETED))
    # Every firing enqueued the same three digests (job ids are made of day and address), so
    # each reader gets one email however often the cron job fired.
    await smtp_sink.wait_for_count(3)
    for i in range(3):
        assert len(smtp_sink.messages_to(f"reader{i}@example.com")) == 1

    [leader_id] = leaders
    leader = next(w for w in workers if w.process and leader_id.endswith(f":{w.process.pid}"))
    await leader.stop(signal.SIGKILL)
    before = len(started)

    async def new_leader_fires() -> set[str] | None:
        later = firings(event_log, EventType.ACTIVE)[before:]
        others = {e.worker_id for e in later if e.worker_id != leader_id}
        return others or None

    await eventually(new_leader_fires, timeout_s=60, what="the other worker to fire")
    ticks = [e.job_id for e in firings(event_log, EventType.ACTIVE)]
    assert len(ticks) == len(set(ticks))
