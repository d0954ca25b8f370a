"""The worker as users run it, ``faust -A pipeline worker``, against the real broker."""

from __future__ import annotations

import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from pipeline.admin import partition_counts
from pipeline.errors import UnknownJobError
from pipeline.events import EventType
from pipeline.queues import EmailQueue, NewJob
from pipeline.schemas import JobName, OtpEmailJob
from pipeline.settings import Settings
from tests.brokers import REPO
from tests.kafka_utils import EventLog, eventually, group_members
from tests.smtp import SmtpSink
from tests.workers import WorkerProcess

pytestmark = pytest.mark.slow

StartWorker = Callable[..., Awaitable[WorkerProcess]]
OTP = JobName.OTP_EMAIL_VERIFICATION


def listening_on(port: int) -> set[str]:
    """The IPv4 addresses a TCP socket listens on at ``port`` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


async def test_worker_creates_topics_joins_group_consumes_and_stops_cleanly(
    start_worker: StartWorker,
    producer: AIOKafkaProducer,
    kafka_admin: AIOKafkaAdminClient,
    kafka_bootstrap: str,
    topic_prefix: str,
    app_id: str,
) -> None:
    worker = await start_worker()
    names = [f"{topic_prefix}{base}" for base in ("email", "media-upload", "job-events")]

    async def all_topics() -> dict[str, int] | None:
        counts = await partition_counts(Settings(kafka_bootstrap_servers=kafka_bootstrap), names)
        return counts if len(counts) == len(names) else None

    # The web server listens on PIPELINE_WEB_HOST (127.0.0.1) only, not on every interface.
    assert listening_on(int(worker.env["PIPELINE_WEB_PORT"])) == {"127.0.0.1"}

    counts = await eventually(all_topics, what="the worker to create its topics")
    assert counts == dict.fromkeys(names, 6)
    assert await eventually(lambda: group_members(kafka_admin, app_id), what="group membership")

    sent = await producer.send_and_wait(
        f"{topic_prefix}email", b'{"email": "a@example.com"}', key=b"otp-email-verification"
    )
    # Data without the job's required fields: the email agent takes it and dead-letters it.
    await worker.wait_for_log(
        rf"job {topic_prefix}email:{sent.partition}:{sent.offset} "
        rf"\(otp-email-verification\) dead-lettered: InvalidJobData"
    )

    assert await worker.stop(signal.SIGTERM) == 0
    committed = await kafka_admin.list_consumer_group_offsets(app_id)
    email_partition = TopicPartition(f"{topic_prefix}email", sent.partition)
    assert committed[email_partition].offset == sent.offset + 1
    assert await group_members(kafka_admin, app_id) == 0


async def test_a_first_start_runs_every_job_enqueued_before_it(
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    event_log: EventLog,
    pipeline_settings: Settings,
) -> None:
    # Jobs wait on a cluster where this app has never run: no group, no changelogs.
    async with EmailQueue.connect(pipeline_settings) as queue:
        ids = await queue.add_bulk(
            NewJob(OTP, OtpEmailJob(email=f"first{i}@example.com", customer_name="F", otp="4321"))
            for i in range(20)
        )
    worker = await start_worker(**smtp_sink.worker_env())
    await event_log.wait_for(ids, EventType.COMPLETED, timeout_s=60)
    assert len(smtp_sink.received) == len(ids)
    log = worker.log_text()
    assert "Ignoring missing topic" not in log
    assert "PartitionsMismatch" not in log


async def test_a_queue_topic_partitioned_unlike_the_settings_stops_the_worker_with_one_line(
    start_worker: StartWorker, kafka_admin: AIOKafkaAdminClient, topic_prefix: str
) -> None:
    # A topic some earlier deployment made with 2 partitions, where the settings say 6: the
    # job-state table would be partitioned unlike its topic, so the worker must not start.
    await kafka_admin.create_topics([NewTopic(f"{topic_prefix}email", 2, 1)])
    worker = await start_worker(wait_ready=False)
    await worker.wait_for_log(
        rf"topics exist with another partition count: {topic_prefix}email has 2 "
        r"\(settings say 6\)"
    )
    assert worker.process is not None
    assert await worker.process.wait() != 0
    assert "Traceback" not in worker.log_text()


async def test_a_job_module_brings_its_own_queue_and_job_type(
    start_worker: StartWorker, event_log: EventLog, pipeline_settings: Settings
) -> None:
    from tests.report_jobs import MonthlyReport, ReportsQueue

    worker = await start_worker(
        PIPELINE_JOB_MODULES='["tests.report_jobs"]',
        PIPELINE_QUEUES__REPORTS__CONCURRENCY="2",
        PYTHONPATH=str(REPO),
    )
    async with ReportsQueue.connect(pipeline_settings) as queue:
        job_id = await queue.add("monthly-report", MonthlyReport(account_id="acme"))
        with pytest.raises(UnknownJobError, match=r"known: monthly-report"):
            await queue.add("yearly-report", {"account_id": "acme"})
    [done] = (await event_log.wait_for([job_id], EventType.COMPLETED)).values()
    assert (done.queue, done.result) == ("reports", {"account": "acme"})
    assert "reports_agent" in worker.log_text()
