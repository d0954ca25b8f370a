"""Email jobs end to end: the producer API, a real worker process, Kafka and an SMTP server."""

from __future__ import annotations

import json
import signal
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from pipeline.events import EventType
from pipeline.queues import EmailQueue, NewJob
from pipeline.schemas import JobName, OtpEmailJob
from pipeline.settings import Settings
from tests.kafka_utils import EventLog, eventually, read_topic
from tests.smtp import SmtpSink
from tests.workers import WorkerProcess

pytestmark = pytest.mark.slow

StartWorker = Callable[..., Awaitable[WorkerProcess]]
OTP = JobName.OTP_EMAIL_VERIFICATION


def otp_job(index: int, prefix: str = "user") -> OtpEmailJob:
    return OtpEmailJob(
        email=f"{prefix}{index}@example.com",
        customer_name=f"Customer {index}",
        otp=f"{731000 + index}",
    )


async def test_otp_jobs_become_emails_and_completed_records(
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    event_log: EventLog,
    pipeline_settings: Settings,
    kafka_bootstrap: str,
) -> None:
    worker = await start_worker(**smtp_sink.worker_env())
    jobs = [otp_job(i) for i in range(24)]
    async with EmailQueue.connect(pipeline_settings) as queue:
        ids = [await queue.add_otp_email_job(job) for job in jobs[:12]]
        ids += await queue.add_bulk(NewJob(OTP, job) for job in jobs[12:])

    received = await smtp_sink.wait_for_count(len(jobs))
    assert len(received) == len(jobs)
    for job in jobs:
        [mail] = smtp_sink.messages_to(job.email)
        assert mail.message["Subject"] == "Your verification code"
        assert job.otp.get_secret_value() in mail.text
        assert job.otp.get_secret_value() in mail.html
        assert job.customer_name in mail.html

    completed = await event_log.wait_for(ids, EventType.COMPLETED)
    for job_id in ids:
        assert event_log.types(job_id) == ["added", "active", "completed"]
        assert completed[job_id].result["message_id"] == f"<{job_id}@pipeline.jobs>"
        assert completed[job_id].worker_id

    # One job name, yet the records spread over the queue's partitions (placed by job id).
    records = await read_topic(kafka_bootstrap, f"{pipeline_settings.topic_prefix}email")
    assert {r.key for r in records} == {OTP.encode()}
    assert len({r.partition for r in records}) > 3

    secrets = [job.otp.get_secret_value() for job in jobs]
    assert not [s for s in secrets if s in worker.log_text()]
    assert not [s for s in secrets for raw in event_log.raw if s.encode() in raw]
    # Every record (the producer's added, the worker's active and completed) names itself.
    assert not event_log.mislabelled


async def test_an_smtp_outage_pauses_the_queue_without_spending_attempts(
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    event_log: EventLog,
    pipeline_settings: Settings,
) -> None:
    worker = await start_worker(**smtp_sink.worker_env())
    smtp_sink.stop()
    async with EmailQueue.connect(pipeline_settings) as queue:
        during_outage = [await queue.add_otp_email_job(otp_job(i, "outage")) for i in range(6)]
        await eventually(
            lambda: _true("queue_paused" in event_log.types("")), what="the queue to pause"
        )
        await worker.wait_for_log(r"queue email paused: SMTP server .* unreachable")
        # Jobs sent one at a time, each in a fetch of its own, pile up behind the paused queue:
        # its partitions stop being fetched, and the rest of the worker goes on (the monitor
        # still reads job-events, up to the last job's added record).
        during_outage += [await queue.add_otp_email_job(otp_job(i, "outage")) for i in range(6, 40)]
        await worker.wait_for_log(rf"job_event .*id={during_outage[-1]} type=added")
        smtp_sink.start()
        completed = await event_log.wait_for(during_outage, EventType.COMPLETED)
        # The outage was the server's, not the jobs': no attempt was spent, nothing failed.
        assert all(event.attempt == 1 for event in completed.values())
        for job_id in during_outage:
            assert event_log.types(job_id) == ["added", "active", "completed"]
        await eventually(
            lambda: _true("queue_resumed" in event_log.types("")), what="the queue to resume"
        )
        [paused] = [e for e in event_log.of("") if e.type == EventType.QUEUE_PAUSED]
        [resumed] = [e for e in event_log.of("") if e.type == EventType.QUEUE_RESUMED]
        assert paused.queue == "email"
        assert "unreachable" in (paused.error_message or "")
        assert resumed.duration_ms is not None
        assert resumed.duration_ms > 0
        for job in [otp_job(i, "outage") for i in range(40)]:
            assert len(smtp_sink.messages_to(job.email)) == 1

        # One mailbox answers "try later" twice; the other jobs do not wait for it.
        smtp_sink.defer["busy@example.com"] = 2
        busy = await queue.add_otp_email_job(
            OtpEmailJob(email="busy@example.com", customer_name="Busy", otp="555111")
        )
        others = [await queue.add_otp_email_job(otp_job(i, "other")) for i in range(5)]
        others_done = await event_log.wait_for(others, EventType.COMPLETED)
        busy_done = await event_log.wait_for([busy], EventType.COMPLETED)
    assert all(event.attempt == 1 for event in others_done.values())
    assert busy_done[busy].attempt == 3
    assert max(e.timestamp_ms for e in others_done.values()) < busy_done[busy].timestamp_ms
    assert event_log.types(busy) == [
        "added", "active", "failed", "retrying", "active", "failed", "retrying", "active",
        "completed",
    ]  # fmt: skip


async def test_refused_and_exhausted_jobs_are_dead_lettered_with_reasons(
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    event_log: EventLog,
    pipeline_settings: Settings,
    kafka_bootstrap: str,
) -> None:
    await start_worker(**smtp_sink.worker_env())
    smtp_sink.refuse.add("gone@example.com")
    smtp_sink.defer["never@example.com"] = 1000
    async with EmailQueue.connect(pipeline_settings) as queue:
        refused = await queue.add_otp_email_job(
            OtpEmailJob(email="gone@example.com", customer_name="Gone", otp="902211")
        )
        exhausted = await queue.add(
            OTP,
            {"email": "never@example.com", "customer_name": "Never", "otp": "902212"},
            attempts=2,
        )
    dead = await event_log.wait_for([refused, exhausted], EventType.DEAD_LETTERED)
    assert dead[refused].attempt == 1
    assert dead[refused].error_class == "PermanentEmailError"
    assert dead[exhausted].attempt == 2
    assert dead[exhausted].max_attempts == 2
    assert dead[exhausted].error_class == "SmtpUnavailable"
    assert not event_log.mislabelled  # failed, retrying and dead_lettered records included

    letters = await read_topic(
        kafka_bootstrap, f"{pipeline_settings.topic_prefix}email-dead-letter"
    )
    by_id = {dict(r.headers)["job-id"].decode(): r for r in letters}
    assert set(by_id) == {refused, exhausted}
    refused_headers = dict(by_id[refused].headers)
    assert b"refused" in refused_headers["dlq-reason"]
    assert refused_headers["dlq-attempts"] == b"1"
    assert (
        refused_headers["dlq-original-topic"] == f"{pipeline_settings.topic_prefix}email".encode()
    )
    assert dict(by_id[exhausted].headers)["dlq-attempts"] == b"2"
    assert by_id[exhausted].key == OTP.encode()
    assert b'"otp":"902212"' in by_id[exhausted].value  # the original job, ready to redrive


async def test_bad_input_is_dead_lettered_and_the_worker_keeps_going(
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    event_log: EventLog,
    pipeline_settings: Settings,
    producer: AIOKafkaProducer,
    kafka_bootstrap: str,
) -> None:
    worker = await start_worker(**smtp_sink.worker_env(PIPELINE_MAX_JOB_BYTES="2000"))
    topic = f"{pipeline_settings.topic_prefix}email"
    bad = {
        "not-json": (OTP.encode(), b"\xff\xfe not json"),
        "invalid": (OTP.encode(), b'{"email": "nobody", "customer_name": "X", "otp": "31337"}'),
        "unknown": (b"send-a-fax", b'{"to": "1234"}'),
        "oversize": (OTP.encode(), b'{"email": "' + b"a" * 3000 + b'"}'),
        "no-key": (None, b"{}"),
    }
    offsets = {}
    for name, (key, value) in bad.items():
        sent = await producer.send_and_wait(topic, value, key=key)
        offsets[name] = f"{topic}:{sent.partition}:{sent.offset}"
    dead = await event_log.wait_for(offsets.values(), EventType.DEAD_LETTERED)
    reasons = {name: dead[job_id].error_message or "" for name, job_id in offsets.items()}
    assert "invalid job data" in reasons["not-json"]
    assert "email" in reasons["invalid"]
    assert "31337" not in reasons["invalid"]
    assert "no handler for job 'send-a-fax'" in reasons["unknown"]
    assert "over the limit of 2000" in reasons["oversize"]
    assert "no handler for job ''" in reasons["no-key"]

    letters = await read_topic(kafka_bootstrap, f"{topic}-dead-letter")
    copies = sorted(value for name, (_, value) in bad.items() if name != "oversize")
    # Too large to run is too large to copy: the dead letter points at the original instead.
    assert sorted(r.value for r in letters) == sorted([*copies, b""])
    [reference] = [dict(r.headers) for r in letters if not r.value]
    assert int(reference["dlq-original-size"]) > 3000

    async with EmailQueue.connect(pipeline_settings) as queue:
        after = await queue.add_otp_email_job(otp_job(1, "after"))
    await event_log.wait_for([after], EventType.COMPLETED)
    assert worker.process is not None
    assert worker.process.returncode is None
    assert "31337" not in worker.log_text()


# The new worker starts either on the killed one's data folder (its tables on disk as the kill
# left them, as a restarted container keeps its volume) or on an empty one (a new machine).
@pytest.mark.parametrize("same_folder", [True, False], ids=["same-folder", "new-folder"])
async def test_a_killed_worker_resumes_without_sending_twice(
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    event_log: EventLog,
    pipeline_settings: Settings,
    same_folder: bool,
) -> None:
    env = smtp_sink.worker_env(PIPELINE_EMAIL_CONCURRENCY="1")
    smtp_sink.hold_s = 0.1
    first = await start_worker(**env)
    jobs = [otp_job(i, "kill") for i in range(30)]
    async with EmailQueue.connect(pipeline_settings) as queue:
        ids = await queue.add_bulk(NewJob(OTP, job) for job in jobs)

    await smtp_sink.wait_for_count(8)
    # Kill while the server holds a message for long: the one job in flight has no answer yet,
    # so its message is never accepted (the server sees the connection gone well before it
    # would answer), and every earlier job is done and recorded as done.
    smtp_sink.hold_s = 5
    await eventually(lambda: _true(smtp_sink.holding_s == 5), timeout_s=10, what="a held message")
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
    sent_before_restart = len(smtp_sink.received)
    assert sent_before_restart < len(jobs)

    smtp_sink.hold_s = 0
    folder = {"PIPELINE_DATA_DIR": first.env["PIPELINE_DATA_DIR"]} if same_folder else {}
    await start_worker(**env, **folder)
    await event_log.wait_for(ids, EventType.COMPLETED, timeout_s=120)
    for job in jobs:
        assert len(smtp_sink.messages_to(job.email)) == 1, job.email
    assert len(smtp_sink.received) == len(jobs)
    # The job in flight at the kill is recorded as stalled, then run again by the new worker.
    [interrupted] = [i for i in ids if "stalled" in event_log.types(i)]
    assert event_log.types(interrupted)[-3:] == ["stalled", "active", "completed"]


async def _true(value: bool) -> bool:
    return value


async def test_a_job_id_given_twice_runs_once_and_delay_s_holds_a_job_back(
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    event_log: EventLog,
    pipeline_settings: Settings,
) -> None:
    worker = await start_worker(**smtp_sink.worker_env())
    job = OtpEmailJob(email="once@example.com", customer_name="Once", otp="808080")
    # Two separate producers, so the second add reaches the worker (one producer alone would
    # not even send it).
    async with EmailQueue.connect(pipeline_settings) as queue:
        assert await queue.add_otp_email_job(job, job_id="signup-1") == "signup-1"
        assert await queue.add_otp_email_job(job, job_id="signup-1") == "signup-1"
        await event_log.wait_for(["signup-1"], EventType.COMPLETED)
    async with EmailQueue.connect(pipeline_settings) as queue:
        await queue.add_otp_email_job(job, job_id="signup-1")
        delayed = await queue.add_otp_email_job(otp_job(1, "delayed"), delay_s=2)
    await worker.wait_for_log(r"job signup-1 \(otp-email-verification, attempt 1\) skipped")
    done = await event_log.wait_for([delayed], EventType.COMPLETED)
    assert len(smtp_sink.messages_to("once@example.com")) == 1
    assert event_log.types("signup-1") == ["added", "active", "completed", "added"]

    [added] = [e for e in event_log.of(delayed) if e.type == EventType.ADDED]
    [active] = [e for e in event_log.of(delayed) if e.type == EventType.ACTIVE]
    assert added.due_at_ms == added.timestamp_ms + 2000
    assert active.timestamp_ms >= added.due_at_ms
    assert done[delayed].attempt == 1


async def test_a_hung_job_is_recorded_as_stalled_and_retried(
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    event_log: EventLog,
    pipeline_settings: Settings,
) -> None:
    await start_worker(**smtp_sink.worker_env(PIPELINE_EMAIL_JOB_TIMEOUT_S="1"))
    smtp_sink.hold_s = 30  # the server takes the message and never answers
    async with EmailQueue.connect(pipeline_settings) as queue:
        job_id = await queue.add_otp_email_job(otp_job(1, "hung"))
        await event_log.wait_for([job_id], EventType.STALLED)
        smtp_sink.hold_s = 0
        done = await event_log.wait_for([job_id], EventType.COMPLETED)
    assert done[job_id].attempt == 2
    failed = next(e for e in event_log.of(job_id) if e.type == EventType.FAILED)
    assert failed.error_class == "JobStalled"
    assert failed.will_retry is True
    assert event_log.types(job_id) == [
        "added", "active", "stalled", "failed", "retrying", "active", "completed",
    ]  # fmt: skip
    assert len(smtp_sink.messages_to("hung1@example.com")) == 1


async def test_a_dead_letter_is_listed_and_redriven_over_http(
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    event_log: EventLog,
    pipeline_settings: Settings,
) -> None:
    worker = await start_worker(**smtp_sink.worker_env())
    smtp_sink.refuse.add("later@example.com")
    async with EmailQueue.connect(pipeline_settings) as queue:
        job_id = await queue.add_otp_email_job(
            OtpEmailJob(email="later@example.com", customer_name="Later", otp="121212")
        )
    await event_log.wait_for([job_id], EventType.DEAD_LETTERED)

    base = f"http://127.0.0.1:{worker.env['PIPELINE_WEB_PORT']}"
    async with aiohttp.ClientSession() as http:

        async def listed() -> list[dict[str, Any]]:
            # The list follows job-events: the job shows once the monitor has read its
            # dead_lettered record.
            async with http.get(f"{base}/dlq/email/") as response:
                letters: list[dict[str, Any]] = await response.json()
            return letters

        [letter] = await eventually(listed, what="the dead letter on /dlq")
        assert letter["job_id"] == job_id
        assert "refused" in letter["reason"]
        assert letter["attempts"] == 1
        assert "121212" not in json.dumps(letter)

        smtp_sink.refuse.clear()  # the mailbox exists now
        async with http.post(f"{base}/dlq/email/{job_id}/redrive/") as response:
            assert response.status == 202
            assert await response.json() == {"job_id": job_id, "redrive": 1}
        await eventually(
            lambda: _true(event_log.types(job_id)[-1:] == ["completed"]),
            what="the redriven job to complete",
        )

        async def cleared() -> bool:
            return await listed() == []

        await eventually(cleared, what="the redriven job off /dlq")
        async with http.post(f"{base}/dlq/email/{job_id}/redrive/") as response:
            assert response.status == 404

        # The redriven job keeps its attempts and starts afresh: no old attempt or error.
        async def state_after_redrive() -> dict[str, object] | None:
            async with http.get(f"{base}/jobs/{job_id}/") as response:
                state: dict[str, object] = await response.json()
            return state if state.get("state") == "completed" else None

        state = await eventually(state_after_redrive, what="the job's state after the redrive")
        assert state["attempt"] == 1
        assert state["max_attempts"] == 3
        assert "last_error" not in state
    assert [e.max_attempts for e in event_log.of(job_id) if e.type == EventType.ADDED] == [3, 3]
    assert len(smtp_sink.messages_to("later@example.com")) == 1
    assert event_log.types(job_id) == [
        "added", "active", "failed", "dead_lettered", "added", "active", "completed",
    ]  # fmt: skip


async def test_a_finished_job_is_forgotten_after_the_retention(
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    event_log: EventLog,
    pipeline_settings: Settings,
    app_id: str,
    kafka_bootstrap: str,
) -> None:
    worker = await start_worker(**smtp_sink.worker_env(PIPELINE_JOB_RETENTION_S="4"))
    async with EmailQueue.connect(pipeline_settings) as queue:
        job_id = await queue.add_otp_email_job(otp_job(1, "retained"))
    await event_log.wait_for([job_id], EventType.COMPLETED)
    url = f"http://127.0.0.1:{worker.env['PIPELINE_WEB_PORT']}/jobs/{job_id}/"
    async with aiohttp.ClientSession() as http:

        async def status_is(code: int) -> bool:
            async with http.get(url) as response:
                return response.status == code

        await eventually(lambda: status_is(200), what="the job's status")
        await eventually(lambda: status_is(404), timeout_s=30, what="the job forgotten")

        async def uncounted() -> bool:
            async with http.get(url.replace(f"/jobs/{job_id}/", "/states/")) as response:
                states = await response.json()
            return bool(states["email"]["otp-email-verification"].get("completed") == 0)

        # Forgotten, it leaves the count of jobs completed too.
        await eventually(uncounted, what="the completed count back to 0")
    await worker.wait_for_log(r"forgot 1 finished jobs in email-job-state")
    # Tombstones, so compaction drops both states from the changelogs for good.
    for table in ("email-job-state", "job-status"):

        async def tombstoned(table: str = table) -> bool:
            records = await read_topic(kafka_bootstrap, f"{app_id}-{table}-changelog")
            return any(r.value is None and job_id.encode() in r.key for r in records)

        await eventually(tombstoned, what=f"a tombstone in {table}")
