"""Roles: job workers and a monitor of their own, and a switch back to one process for both."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from pipeline.events import EventType
from pipeline.queues import EmailQueue
from pipeline.schemas import OtpEmailJob
from pipeline.settings import Settings
from tests.kafka_utils import EventLog, eventually
from tests.smtp import SmtpSink
from tests.workers import WorkerProcess

pytestmark = pytest.mark.slow

StartWorker = Callable[..., Awaitable[WorkerProcess]]


async def _states(base: str, ids: list[str]) -> dict[str, str | None]:
    """Each job's state as the web server at ``base`` answers it (None: 404)."""
    states: dict[str, str | None] = {}
    async with aiohttp.ClientSession() as http:
        for job_id in ids:
            async with http.get(f"{base}/jobs/{job_id}/") as response:
                states[job_id] = (await response.json())["state"] if response.ok else None
    return states


async def _add(settings: Settings, count: int, start: int = 0) -> list[str]:
    async with EmailQueue.connect(settings) as queue:
        return [
            await queue.add_otp_email_job(
                OtpEmailJob(email=f"role{i}@example.com", customer_name="Role", otp="474747")
            )
            for i in range(start, start + count)
        ]


async def test_a_monitor_of_its_own_sees_what_jobs_workers_do_and_hands_over_its_state(
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    event_log: EventLog,
    pipeline_settings: Settings,
) -> None:
    jobs = await start_worker(PIPELINE_ROLE="jobs", **smtp_sink.worker_env())
    monitor = await start_worker(PIPELINE_ROLE="monitor")
    ids = await _add(pipeline_settings, 6)
    done = await event_log.wait_for(ids, EventType.COMPLETED)
    assert len({event.worker_id for event in done.values()}) == 1  # the jobs worker

    monitor_base = f"http://127.0.0.1:{monitor.env['PIPELINE_WEB_PORT']}"
    completed = dict.fromkeys(ids, "completed")

    async def monitor_answers() -> bool:
        return await _states(monitor_base, ids) == completed

    await eventually(monitor_answers, what="every job's status from the monitor")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{monitor_base}/queues/") as response:
            counts = (await response.json())["email"]["otp-email-verification"]
        jobs_base = f"http://127.0.0.1:{jobs.env['PIPELINE_WEB_PORT']}"
        async with http.get(f"{jobs_base}/jobs/{ids[0]}/") as response:
            assert response.status == 404  # a jobs-only worker serves no monitor API
        async with http.get(f"{jobs_base}/metrics") as response:
            assert response.status == 200
            assert "pipeline_consumer_lag{" in await response.text()
    assert counts == {"added": 6, "active": 6, "completed": 6}
    assert "job_event " not in jobs.log_text()  # the monitor's log lines are the monitor's
    assert "474747" not in jobs.log_text() + monitor.log_text()

    # One process for both again: the same group, so it reads the monitor's tables from the
    # same changelogs and job-events from the monitor's committed offsets.
    assert await monitor.stop() == 0
    assert await jobs.stop() == 0
    both = await start_worker(**smtp_sink.worker_env())
    more = await _add(pipeline_settings, 2, start=6)
    await event_log.wait_for(more, EventType.COMPLETED)
    both_base = f"http://127.0.0.1:{both.env['PIPELINE_WEB_PORT']}"
    everything = dict.fromkeys(ids + more, "completed")

    async def both_answer() -> bool:
        return await _states(both_base, ids + more) == everything

    await eventually(both_answer, what="every job's status from the worker that runs both")
    async with aiohttp.ClientSession() as http, http.get(f"{both_base}/queues/") as response:
        counts = (await response.json())["email"]["otp-email-verification"]
    assert counts == {"added": 8, "active": 8, "completed": 8}  # nothing read twice
