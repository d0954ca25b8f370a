"""The ``pipeline`` command against a real worker and broker: every command an operator has,
and the monitor's counts of jobs by state agreeing with each job's own state."""

from __future__ import annotations

import base64
import json
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from pipeline.events import EventType
from pipeline.settings import Settings
from tests.cli import Ran, cli_env, pipeline_cli, stays_waiting
from tests.kafka_utils import EventLog, eventually
from tests.smtp import SmtpSink
from tests.workers import WorkerProcess, free_port

pytestmark = pytest.mark.slow

StartWorker = Callable[..., Awaitable[WorkerProcess]]
OTP = "909090"


def otp(email: str) -> str:
    return json.dumps({"email": email, "customer_name": "Op", "otp": OTP})


async def states_agree(base: str) -> dict[str, int] | None:
    """The monitor's counts of email jobs by state, if they agree with the states of the jobs
    themselves (``/jobs``, each job's own entry)."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/states/") as response:
            counted = (await response.json()).get("email", {}).get("otp-email-verification", {})
        async with http.get(f"{base}/jobs/?queue=email&limit=1000") as response:
            jobs = await response.json()
    counted = {state: n for state, n in counted.items() if n}
    return counted if counted == dict(Counter(job["state"] for job in jobs)) else None


async def test_every_command_an_operator_has(
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    event_log: EventLog,
    pipeline_settings: Settings,
    tmp_path: Path,
) -> None:
    smtp_sink.refuse.add("dead@example.com")
    smtp_sink.defer["retry@example.com"] = 1
    worker = await start_worker(**smtp_sink.worker_env())
    env = cli_env(
        pipeline_settings,
        PIPELINE_APP_ID=worker.env["PIPELINE_APP_ID"],
        PIPELINE_API_URL=f"http://127.0.0.1:{worker.env['PIPELINE_WEB_PORT']}",
    )
    base = env["PIPELINE_API_URL"]

    async def cli(*args: str, stdin: str | None = None, code: int = 0) -> Ran:
        ran = await pipeline_cli(env, *args, stdin=stdin)
        assert ran.code == code, (args, ran.out, ran.err)
        assert OTP not in ran.out + ran.err
        if code not in (0, 2):  # an error is one line, without a traceback (2: click's usage)
            assert ran.err.count("\n") == 1, ran.err
            assert ran.err.startswith("pipeline: ")
        return ran

    # enqueue: data inline, from a file, from standard input.
    enqueue = ("enqueue", "email", "otp-email-verification", "--data")
    ok = (await cli(*enqueue, otp("ok@example.com"))).out.strip()
    data_file = tmp_path / "job.json"
    data_file.write_text(otp("file@example.com"))
    from_file = (await cli(*enqueue, f"@{data_file}", "--json")).json()["job_id"]
    retried = (await cli(*enqueue, "-", stdin=otp("retry@example.com"))).out.strip()
    dead = (await cli(*enqueue, otp("dead@example.com"), "--attempts", "1")).out.strip()
    await event_log.wait_for([ok, from_file, retried], EventType.COMPLETED)
    await event_log.wait_for([dead], EventType.DEAD_LETTERED)

    # jobs show: state, attempts and what went wrong, never the data.
    shown = (await cli("jobs", "show", retried, "--json")).json()
    assert shown["state"] == "completed"
    assert shown["attempt"] == 2
    assert [entry["type"] for entry in shown["history"]] == ["failed", "retrying"]
    assert "421" in shown["history"][0]["error"]
    text = (await cli("jobs", "show", dead)).out
    assert "dead_lettered (attempt 1 of 1)" in text
    assert "SMTPRecipientsRefused" in text or "550" in text
    await cli("jobs", "show", "no-such-job", code=3)

    # jobs list, by state and queue.
    async def listed(state: str) -> set[str]:
        found = (await cli("jobs", "list", "--queue", "email", "--state", state, "--json")).json()
        return {job["job_id"] for job in found}

    assert await listed("completed") == {ok, from_file, retried}
    paged = [
        (await cli("jobs", "list", "--state", "completed", "--limit", "2", *more, "--json")).json()
        for more in ((), ("--offset", "2"))
    ]
    assert {job["job_id"] for page in paged for job in page} == {ok, from_file, retried}
    assert await listed("dead_lettered") == {dead}
    await cli("jobs", "list", "--state", "sleeping", code=2)

    # queues: current depths by state, lag and rate, all agreeing with the jobs' own states.
    async def depths() -> dict[str, Any] | None:
        email = (await cli("queues", "--json")).json()["email"]
        expected = {"completed": 3, "dead_lettered": 1, "waiting": 0, "active": 0}
        return (
            email if email["lag"] == 0 and email["states"] | expected == email["states"] else None
        )

    email = await eventually(depths, what="the email queue's depths and lag")
    assert email["done_per_minute"] > 0
    assert not email["paused"]
    assert await eventually(lambda: states_agree(base), what="counts agreeing with the jobs")

    # dlq: list, redrive (the job fails again: 550 for ever), discard.
    letters = (await cli("dlq", "list", "email", "--json")).json()
    assert [letter["job_id"] for letter in letters] == [dead]
    assert letters[0]["attempts"] == 1
    redriven = (await cli("dlq", "redrive", "email", dead, "--json")).json()["redriven"]
    assert redriven == [{"job_id": dead, "redrive": 1}]

    async def redriven_and_dead() -> bool:
        job: dict[str, Any] = (await cli("jobs", "show", dead, "--json")).json()
        return job.get("redrive") == 1 and job["state"] == "dead_lettered"

    await eventually(redriven_and_dead, what="the redriven job dead-lettered again")
    await cli("dlq", "redrive", "email", code=2)  # neither an id nor --all
    await cli("dlq", "redrive", "email", "no-such-job", code=3)
    assert (await cli("dlq", "discard", "email", "--all", "--json")).json() == {"discarded": [dead]}
    assert (await cli("dlq", "list", "email", "--json")).json() == []

    async def discarded() -> bool:
        job: dict[str, Any] = (await cli("jobs", "show", dead, "--json")).json()
        return bool(job["state"] == "skipped")

    await eventually(discarded, what="the discarded job skipped")
    assert await eventually(lambda: states_agree(base), what="counts agreeing after the discard")

    # queue pause: the worker takes no new job of the queue until resumed.
    await cli("queue", "pause", "email")
    await worker.wait_for_log(r"queue email paused by an operator", 30)
    held = (await cli(*enqueue, otp("held@example.com"))).out.strip()

    async def waiting() -> bool:
        job = await pipeline_cli(env, "jobs", "show", held, "--json")
        return job.code == 0 and job.json()["state"] == "waiting"

    await eventually(waiting, what="the held job known to the monitor")
    await stays_waiting(env, held)  # the job must not start while paused
    assert (await cli("queues", "--json")).json()["email"]["paused"] is True
    await cli("queue", "resume", "email")
    await event_log.wait_for([held], EventType.COMPLETED, timeout_s=30)
    assert (await cli("queues", "--json")).json()["email"]["paused"] is False

    # Errors: one line each, with the exit code scripts can use.
    await cli("enqueue", "no-such-queue", "x", "--data", "{}", code=1)
    await cli(*enqueue, "@/no/such/file.json", code=1)
    await cli(*enqueue, "{not json", code=1)
    offline = {**env, "PIPELINE_API_URL": f"http://127.0.0.1:{free_port()}"}
    ran = await pipeline_cli(offline, "jobs", "show", ok)
    assert ran.code == 4
    assert "did not answer" in ran.err
    no_kafka = {**env, "PIPELINE_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}"}
    ran = await pipeline_cli(no_kafka, *enqueue, otp("x@example.com"))
    assert (ran.code, ran.err.count("\n")) == (4, 1), ran.err
    assert "Kafka did not answer" in ran.err
    ran = await pipeline_cli(no_kafka, *enqueue, otp("x@example.com"), "--verbose")
    assert ran.code == 4
    assert "Traceback" in ran.err
    assert OTP not in worker.log_text()


async def test_with_a_token_only_who_has_it_is_answered(
    start_worker: StartWorker, pipeline_settings: Settings
) -> None:
    token = "tok-" + "7" * 20
    worker = await start_worker(PIPELINE_WEB_TOKEN=token)
    base = f"http://127.0.0.1:{worker.env['PIPELINE_WEB_PORT']}"
    bearer = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http:

        async def status(method: str, path: str, **kwargs: Any) -> int:
            async with http.request(method, f"{base}{path}", **kwargs) as response:
                if response.status == 401:
                    assert "Basic" in response.headers["WWW-Authenticate"]
                return response.status

        for path in ("/", "/states/", "/jobs/", "/dlq/email/", "/workers/"):
            assert await status("GET", path) == 401
            assert await status("GET", path, headers={"Authorization": "Bearer wrong"}) == 401
            assert await status("GET", path, headers=bearer) == 200
        # A browser gives it as HTTP Basic's password, with any user name.
        for password, answer in ((token, 200), ("wrong", 401)):
            basic = base64.b64encode(f"anyone:{password}".encode()).decode()
            assert await status("GET", "/", headers={"Authorization": f"Basic {basic}"}) == answer
        assert await status("POST", "/queues/email/pause/") == 401
        assert await status("POST", "/dlq/email/redrive/") == 401
        assert await status("POST", "/dlq/email/discard/") == 401
        assert await status("GET", "/metrics") == 200  # Prometheus scrapes it without one
        # Nor do an orchestrator's probes: live at once, ready once in the group and recovered.
        assert await status("GET", "/livez") == 200

        async def ready() -> bool:
            async with http.get(f"{base}/readyz") as response:
                answer = await response.json()
                assert response.status == (200 if answer["ready"] else 503), answer
                return bool(answer["ready"])

        await eventually(ready, what="/readyz to answer ready")

    env = cli_env(pipeline_settings, PIPELINE_API_URL=base)
    ran = await pipeline_cli(env, "jobs", "list")
    assert ran.code == 1
    assert ran.err.startswith("pipeline: unauthorized")
    assert "PIPELINE_WEB_TOKEN" in ran.err
    ran = await pipeline_cli({**env, "PIPELINE_WEB_TOKEN": token}, "jobs", "list", "--json")
    assert (ran.code, ran.json()) == (0, [])
    assert token not in worker.log_text()


async def test_a_worker_started_while_its_queue_is_paused_takes_none_of_its_jobs(
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    event_log: EventLog,
    pipeline_settings: Settings,
    app_id: str,
) -> None:
    env = cli_env(pipeline_settings, PIPELINE_APP_ID=app_id)
    # No worker is up: pausing and enqueueing need only Kafka.
    assert (await pipeline_cli(env, "queue", "pause", "email")).code == 0
    ran = await pipeline_cli(
        env, "enqueue", "email", "otp-email-verification", "--data", otp("early@example.com")
    )
    assert ran.code == 0, ran.err
    job_id = ran.out.strip()
    worker = await start_worker(**smtp_sink.worker_env())
    env["PIPELINE_API_URL"] = f"http://127.0.0.1:{worker.env['PIPELINE_WEB_PORT']}"

    async def known_and_waiting() -> bool:
        job = await pipeline_cli(env, "jobs", "show", job_id, "--json")
        return job.code == 0 and job.json()["state"] == "waiting"

    await eventually(known_and_waiting, what="the job known to the monitor")
    await stays_waiting(env, job_id)  # the worker holds the job while the queue is paused
    assert smtp_sink.messages_to("early@example.com") == []
    assert (await pipeline_cli(env, "queue", "resume", "email")).code == 0
    await event_log.wait_for([job_id], EventType.COMPLETED, timeout_s=30)
