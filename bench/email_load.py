"""``python -m bench.email_load``: the bench's OTP email load alone, and what bounds it.

Starts an SMTP sink that discards (aiosmtpd, as ``make bench`` does) and one worker whose email
queue runs ``--concurrency`` jobs at once over as many SMTP connections, sends ``--jobs`` OTP jobs
and prints their rate, the worker's CPU per job split by thread (the event loop's main thread
and Faust's consumer thread), and the sink's CPU per job. Then, as the ceiling the worker works
under, the same number of messages composed as the worker composes them, sent by aiosmtplib
alone over ``--concurrency`` connections to the same sink.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

import aiosmtplib

from bench.jobs import BenchQueue
from bench.ours import Completions, _otp, _throughput, _warm_up, _workers
from bench.support import REPO, VENV_BIN, bench_env, child, cpu_seconds, free_port, wait_port
from pipeline.admin import delete_topics
from pipeline.queues import EmailQueue
from pipeline.services.email import compose, render
from pipeline.settings import Settings


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds each thread of ``pid`` has used, by ``<name>-<tid>``."""
    used = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        task = Path(f"/proc/{pid}/task/{tid}")
        fields = (task / "stat").read_text().rpartition(")")[2].split()
        name = (task / "comm").read_text().strip()
        used[f"{name}-{tid}"] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


async def through_worker(jobs: int, concurrency: int, smtp_port: int, sink_pid: int) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = REPO / "bench" / "results" / f"email-{stamp}"
    workdir.mkdir(parents=True)
    env = {
        **bench_env("email", stamp, concurrency),
        "PIPELINE_EMAIL__CONCURRENCY": str(concurrency),
        "PIPELINE_EMAIL__RATE_LIMIT_JOBS": "1000000",
        "PIPELINE_SMTP_POOL_SIZE": str(concurrency),
        "PIPELINE_SMTP_HOST": "127.0.0.1",
        "PIPELINE_SMTP_PORT": str(smtp_port),
    }
    os.environ.update(env)
    settings = Settings()
    completions = Completions(settings)
    try:
        async with (
            _workers(1, env, workdir) as [worker],
            BenchQueue.connect(settings) as bench,
            EmailQueue.connect(settings) as email,
        ):
            await completions.start()
            completions.workers = [worker]
            await _warm_up(bench, email, completions, settings)
            threads_before = thread_cpu_s(worker.pid)
            worker_before, sink_before = cpu_seconds(worker.pid), cpu_seconds(sink_pid)
            began = time.time()
            _, per_s = await _throughput(email, completions, [_otp(i + 1) for i in range(jobs)])
            wall = time.time() - began
            worker_cpu = cpu_seconds(worker.pid) - worker_before
            sink_cpu = cpu_seconds(sink_pid) - sink_before
            threads = {
                name: (used - threads_before.get(name, 0.0)) / wall
                for name, used in thread_cpu_s(worker.pid).items()
            }
            await completions.stop()
    finally:
        await delete_topics(settings, stamp)
    busy = ", ".join(f"{name} {share:.0%}" for name, share in threads.items() if share >= 0.01)
    return (
        f"through the worker: {per_s:,.0f} OTP jobs/s; worker CPU {worker_cpu / jobs * 1e3:.2f} ms "
        f"a job (threads, share of a core: {busy}); sink CPU {sink_cpu / jobs * 1e3:.2f} ms a job"
    )


async def client_alone(jobs: int, concurrency: int, smtp_port: int, sink_pid: int) -> str:
    messages = [
        compose(
            "no-reply@localhost",
            render(
                "otp",
                to=f"user{i}@example.com",
                subject="Your verification code",
                message_id=f"<{i}@bench.jobs>",
                customer_name="Bench",
                otp=f"{i % 1000000:06d}",
                expires_in_minutes=10,
            ),
        )
        for i in range(jobs)
    ]
    clients = [aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port) for _ in range(concurrency)]
    for client in clients:
        await client.connect()
    pending = iter(messages)

    async def lane(client: aiosmtplib.SMTP) -> None:
        for message in pending:
            await client.send_message(message)

    sink_before, own_before = cpu_seconds(sink_pid), time.process_time()
    began = time.perf_counter()
    await asyncio.gather(*(lane(client) for client in clients))
    wall = time.perf_counter() - began
    own, sink = time.process_time() - own_before, cpu_seconds(sink_pid) - sink_before
    for client in clients:
        await client.quit()
    return (
        f"aiosmtplib alone: {jobs / wall:,.0f} messages/s; client CPU {own / jobs * 1e3:.2f} ms "
        f"a message, sink CPU {sink / jobs * 1e3:.2f} ms"
    )


async def run(args: argparse.Namespace) -> str:
    port = free_port()
    sink = (str(VENV_BIN / "python"), "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink")
    log = REPO / "bench" / "results" / f"email-sink-{time.strftime('%Y%m%d-%H%M%S')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    async with child(*sink, "-l", f"127.0.0.1:{port}", log=log) as sink_process:
        await wait_port(port)
        worker = await through_worker(args.jobs, args.concurrency, port, sink_process.pid)
        alone = await client_alone(args.jobs, args.concurrency, port, sink_process.pid)
    return f"{args.jobs:,} OTP emails, concurrency {args.concurrency}\n{worker}\n{alone}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.email_load", description=__doc__)
    parser.add_argument("--jobs", type=int, default=3_000, help="OTP email jobs")
    parser.add_argument("--concurrency", type=int, default=8, help="jobs at once, connections")
    print(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
