"""Kafka outages, on a broker of this test's own (``deploy/kafka/kafka.sh`` on free ports): a
worker started before Kafka waits for it, and a broker restart under load neither loses a job
nor floods the log nor needs the worker restarted."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import pytest

from pipeline.events import EventType
from pipeline.queues import EmailQueue, NewJob
from pipeline.schemas import JobName, OtpEmailJob
from pipeline.settings import Settings
from tests.kafka_utils import EventLog
from tests.smtp import SmtpSink
from tests.test_local_broker import kafka_sh, second_broker_env
from tests.workers import WorkerProcess

pytestmark = pytest.mark.slow
__all__ = ["second_broker_env"]  # the fixture, used below by name

StartWorker = Callable[..., Awaitable[WorkerProcess]]
OTP = JobName.OTP_EMAIL_VERIFICATION
WARNING_LINE = re.compile(r"^\[[^]]+\] \[\d+\] \[(WARNING|ERROR|CRITICAL)\] ", re.MULTILINE)


def jobs(prefix: str, count: int) -> list[NewJob]:
    return [
        NewJob(
            OTP,
            OtpEmailJob(email=f"{prefix}{i}@example.com", customer_name="K", otp="5555"),
            job_id=f"{prefix}-{i}",
        )
        for i in range(count)
    ]


@pytest.mark.timeout(400)
async def test_a_worker_waits_for_kafka_and_rides_out_a_broker_restart(
    second_broker_env: dict[str, str],
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    topic_prefix: str,
) -> None:
    env = second_broker_env
    bootstrap = env["PIPELINE_KAFKA_BOOTSTRAP_SERVERS"]
    worker = await start_worker(
        wait_ready=False,
        **smtp_sink.worker_env(PIPELINE_KAFKA_BOOTSTRAP_SERVERS=bootstrap),
    )
    await worker.wait_for_log(r"Kafka at \S+ does not answer \(try 1\); trying again in 1 s")
    await worker.wait_for_log(r"does not answer \(try 2\)")
    up = kafka_sh(env, "up")
    assert up.returncode == 0, up.stderr
    await worker.wait_for_log(r"Kafka at \S+ answers now")
    await worker.wait_ready()

    settings = Settings(kafka_bootstrap_servers=bootstrap, topic_prefix=topic_prefix)
    events = EventLog(settings)
    await events.start()
    try:
        async with EmailQueue.connect(settings) as queue:
            before = await queue.add_bulk(jobs("before", 20))
        await events.wait_for(before, EventType.COMPLETED)

        lines_before = len(WARNING_LINE.findall(worker.log_text()))
        down = kafka_sh(env, "down")
        assert down.returncode == 0, down.stderr
        await worker.wait_for_log(r"Unable connect to node|Unable to update metadata")
        up = kafka_sh(env, "up")
        assert up.returncode == 0, up.stderr
        async with EmailQueue.connect(settings) as queue:
            after = await queue.add_bulk(jobs("after", 20))
        await events.wait_for(after, EventType.COMPLETED, timeout_s=120)
    finally:
        await events.stop()

    assert worker.process is not None
    assert worker.process.returncode is None  # no restart was needed
    for i in range(20):
        assert len(smtp_sink.messages_to(f"before{i}@example.com")) == 1
        assert len(smtp_sink.messages_to(f"after{i}@example.com")) == 1
    # Summarised: one line per kind of error per 10 s, not thousands.
    outage_lines = len(WARNING_LINE.findall(worker.log_text())) - lines_before
    assert outage_lines < 60, worker.log_text()[-6000:]
    print(f"log lines at WARNING or above during the broker restart: {outage_lines}")
