"""The command line's enqueue and events, and the monitoring agent, on a real worker."""

from __future__ import annotations

import itertools
import json
import operator
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.catalog import EMAIL
from pipeline.envelope import partition_for
from pipeline.events import EventType
from pipeline.monitoring import across_partitions, split_counts
from pipeline.queues import EmailQueue
from pipeline.schemas import OtpEmailJob
from pipeline.settings import Settings
from tests.cli import cli_env, pipeline_cli
from tests.kafka_utils import EventLog, eventually, read_topic
from tests.smtp import SmtpSink
from tests.workers import WorkerProcess

pytestmark = pytest.mark.slow

StartWorker = Callable[..., Awaitable[WorkerProcess]]


async def test_enqueue_and_events_commands_and_the_monitor(
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    event_log: EventLog,
    pipeline_settings: Settings,
    kafka_bootstrap: str,
    app_id: str,
) -> None:
    worker = await start_worker(**smtp_sink.worker_env())
    data = {"email": "cli@example.com", "customer_name": "Cli", "otp": "660066"}
    ran = await pipeline_cli(
        cli_env(pipeline_settings),
        "enqueue", "email", "otp-email-verification", "--data", json.dumps(data),
    )  # fmt: skip
    assert ran.code == 0, ran.err
    job_id = ran.out.strip()
    await event_log.wait_for([job_id], EventType.COMPLETED)
    assert len(smtp_sink.messages_to("cli@example.com")) == 1

    ran = await pipeline_cli(cli_env(pipeline_settings), "events", "--job", job_id)
    assert ran.code == 0, ran.err
    printed = [json.loads(line) for line in ran.out.splitlines()]
    assert [record["type"] for record in printed] == ["added", "active", "completed"]
    assert all(record["job_id"] == job_id for record in printed)
    assert "660066" not in ran.out

    await worker.wait_for_log(
        rf"job_event queue=email job=otp-email-verification id={job_id} type=completed "
        r"attempt=1/3 worker=\S+ duration_ms=\d+"
    )
    # The counts table's changelog holds the latest count of each key, per job-events partition.
    changelog = f"{app_id}-job-counts-changelog"
    expected = {
        "email/otp-email-verification/added": 1,
        "email/otp-email-verification/active": 1,
        "email/otp-email-verification/completed": 1,
    }

    async def counted() -> bool:
        # The table's changelog records go out right after the log line: wait for them.
        counts: dict[str, int] = {}
        for record in await read_topic(kafka_bootstrap, changelog):
            counts[json.loads(record.key)] = json.loads(record.value)
        records, _ = split_counts(across_partitions(counts, operator.add))
        return records == expected

    await eventually(counted, what="the counts in the changelog")
    assert "660066" not in worker.log_text()

    # The worker's web server answers for the job and the queues.
    base = f"http://127.0.0.1:{worker.env['PIPELINE_WEB_PORT']}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/jobs/{job_id}/") as response:
            assert response.status == 200
            status = await response.json()
        async with http.get(f"{base}/queues/") as response:
            queues = await response.json()
        async with http.get(f"{base}/jobs/no-such-job/") as response:
            assert response.status == 404
        async with http.get(f"{base}/metrics") as response:
            assert response.status == 200
            exposition = await response.text()
    assert status["state"] == "completed"
    assert status["attempt"] == 1
    assert status["result"]["message_id"] == f"<{job_id}@pipeline.jobs>"
    assert status["added_ms"] <= status["started_ms"] <= status["finished_ms"]
    assert queues["email"]["otp-email-verification"] == {"added": 1, "active": 1, "completed": 1}

    families = list(text_string_to_metric_families(exposition))
    types = {family.name: family.type for family in families}
    assert types["pipeline_job_events"] == "counter"
    assert types["pipeline_jobs"] == "gauge"
    assert types["pipeline_job_latency_seconds"] == "histogram"
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }
    job = (("job", "otp-email-verification"), ("queue", "email"))
    assert samples[("pipeline_job_events_total", (*job, ("type", "completed")))] == 1
    assert samples[("pipeline_jobs", (*job, ("state", "completed")))] == 1
    assert samples[("pipeline_job_latency_seconds_count", job)] == 1
    lags = [v for (name, _), v in samples.items() if name == "pipeline_consumer_lag"]
    assert lags
    assert all(lag >= 0 for lag in lags)


async def test_enqueue_refuses_invalid_data_and_publishes_nothing(
    pipeline_settings: Settings, event_log: EventLog, kafka_bootstrap: str
) -> None:
    bad = {"email": "not-an-address", "customer_name": "X", "otp": "123456"}
    env = cli_env(pipeline_settings)
    ran = await pipeline_cli(
        env, "enqueue", "email", "otp-email-verification", "--data", json.dumps(bad)
    )
    assert ran.code == 1
    assert ran.err.startswith("pipeline: invalid job data: email")
    assert "123456" not in ran.err
    ran = await pipeline_cli(env, "enqueue", "email", "no-such-job", "--data", "{}")
    assert ran.code == 1
    # One line that names the job names the queue knows.
    assert ran.err == (
        "pipeline: no handler for job 'no-such-job' on queue 'email' (known: "
        "daily-digest-email, forgot-password-email, otp-email-verification)\n"
    )
    for source, key in (("../../etc/passwd", "a.png"), ("a.png", "../b.png")):
        media = {"source": source, "bucket": "media", "key": key}
        ran = await pipeline_cli(
            env, "enqueue", "media-upload", "media-upload", "--data", json.dumps(media)
        )
        assert ran.code == 1
        assert ran.err.startswith("pipeline: invalid job data:"), ran.err
    assert await read_topic(kafka_bootstrap, f"{pipeline_settings.topic_prefix}media-upload") == []
    assert await read_topic(kafka_bootstrap, f"{pipeline_settings.topic_prefix}email") == []
    assert event_log.events == []


def _ids_in_every_partition(settings: Settings, count: int) -> list[str]:
    """``count`` job ids with at least one in each partition of the email topic: whichever
    partitions each worker owns, both have jobs (random ids left one idle 1 run in 128)."""
    partitions = EMAIL.topic.partition_count(settings)
    candidates = (f"pair-{n}" for n in itertools.count())
    ids: list[str] = []
    covered: set[int] = set()
    while len(covered) < partitions or len(ids) < count:
        job_id = next(candidates)
        partition = partition_for(job_id, partitions)
        if partition not in covered or len(covered) == partitions:
            covered.add(partition)
            ids.append(job_id)
    return ids


async def test_two_workers_answer_for_each_other(
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    event_log: EventLog,
    pipeline_settings: Settings,
) -> None:
    env = smtp_sink.worker_env()
    first = await start_worker(**env)
    second = await start_worker(**env)
    await second.wait_for_log(r"generation 2|Joined group .* \(generation [2-9]\)", 60)
    async with EmailQueue.connect(pipeline_settings) as queue:
        ids = [
            await queue.add_otp_email_job(
                OtpEmailJob(email=f"pair{i}@example.com", customer_name="Pair", otp="565656"),
                job_id=job_id,
            )
            for i, job_id in enumerate(_ids_in_every_partition(pipeline_settings, 8))
        ]
    done = await event_log.wait_for(ids, EventType.COMPLETED)
    assert len({event.worker_id for event in done.values()}) == 2  # both did work

    base = f"http://127.0.0.1:{first.env['PIPELINE_WEB_PORT']}"
    async with aiohttp.ClientSession() as http:

        async def all_completed() -> bool:
            for job_id in ids:  # about half of them live in the other worker's partitions
                async with http.get(f"{base}/jobs/{job_id}/") as response:
                    if response.status != 200 or (await response.json())["state"] != "completed":
                        return False
            return True

        await eventually(all_completed, what="every job's status from the first worker")

        async def all_counted() -> dict[str, int] | None:
            async with http.get(f"{base}/queues/") as response:
                counts = (await response.json()).get("email", {}).get("otp-email-verification")
            return counts if counts == {"added": 8, "active": 8, "completed": 8} else None

        await eventually(all_counted, what="counts from both workers")
