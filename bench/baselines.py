"""The baselines, run on the same machine with the same job count: a raw aiokafka loop,
BullMQ on Redis, and Celery on Redis."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.support import REPO, VENV_BIN, child, free_port, wait_port
from pipeline.connection import client_options
from pipeline.settings import Settings

BULLMQ_DIR = REPO / "bench" / "bullmq"


@dataclass
class Rates:
    """A system's enqueue and processing rates, jobs/s (None: not measured)."""

    enqueue_per_s: float | None
    process_per_s: float
    settings: str


class JsonLines:
    """Reads a child's stdout one JSON object per line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        self._stdout = process.stdout

    async def next(self, timeout_s: float = 300.0) -> dict[str, Any]:
        """The next JSON line."""
        while True:
            line = await asyncio.wait_for(self._stdout.readline(), timeout_s)
            if not line:
                raise RuntimeError("the benchmark process ended early")
            if line.startswith(b"{"):
                result: dict[str, Any] = json.loads(line)
                return result


@contextlib.asynccontextmanager
async def _piped(*argv: str, log: Path, cwd: Path = REPO) -> AsyncIterator[JsonLines]:
    with log.open("ab") as err:
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=err
        )
    try:
        yield JsonLines(process)
    finally:
        if process.returncode is None:
            process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 20)
        if process.returncode is None:
            process.kill()
            await process.wait()


async def raw_aiokafka(settings: Settings, prefix: str, jobs: int, log: Path) -> Rates:
    """A consume-then-produce loop copying ``jobs`` records between two topics (the loop reads
    the same ``PIPELINE_KAFKA_*`` connection settings from its environment)."""
    source, sink = f"{prefix}raw-in", f"{prefix}raw-out"
    partitions = settings.topic_partitions
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in (source, sink)])
    finally:
        await admin.close()
    python = str(VENV_BIN / "python")
    loop_argv = (python, "-m", "bench.raw_loop", source, sink, f"{prefix}raw", str(jobs))
    async with _piped(*loop_argv, log=log) as out:
        await out.next(60)  # ready: partitions assigned
        # The producer our Queue uses: acks=all, idempotent, linger 5 ms, 1,000 per wait.
        producer = AIOKafkaProducer(
            **client_options(settings), acks="all", enable_idempotence=True, linger_ms=5
        )
        await producer.start()
        try:
            value = json.dumps({"seq": 0}).encode()
            started = time.time()
            for first in range(0, jobs, 1000):
                sent = [
                    await producer.send(source, value, key=f"job-{i}".encode())
                    for i in range(first, min(first + 1000, jobs))
                ]
                await asyncio.gather(*sent)
            enqueued = time.time()
        finally:
            await producer.stop()
        finished = (await out.next())["finished_ms"] / 1000
    return Rates(
        jobs / (enqueued - started),
        jobs / (finished - started),
        f"{partitions} partitions, acks=all, commit every 2.8 s",
    )


@contextlib.asynccontextmanager
async def redis_server(workdir: Path) -> AsyncIterator[int]:
    """A throwaway Redis (Debian's redis-server) on a free port, without persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is missing: apt-get install redis-server")
    port = free_port()
    argv = (binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
    async with child(*argv, "--dir", str(workdir), log=workdir / "redis.log"):
        await wait_port(port)
        yield port


async def bullmq(redis_port: int, jobs: int, concurrency: int, log: Path) -> Rates:
    """``addBulk`` in batches of 1,000, and a worker of ``concurrency`` running noop jobs."""
    node = shutil.which("node") or "node"
    script = str(BULLMQ_DIR / "bench.mjs")
    port, name = str(redis_port), f"bench-{int(time.time())}"
    async with _piped(
        node, script, "worker", port, name, str(jobs), str(concurrency), log=log
    ) as w:
        await w.next(60)
        async with _piped(node, script, "produce", port, name, str(jobs), "1000", log=log) as p:
            produced = await p.next()
        finished_ms = (await w.next())["finished_ms"]
    started, enqueued = produced["started_ms"], produced["enqueued_ms"]
    return Rates(
        jobs / ((enqueued - started) / 1000),
        jobs / ((finished_ms - started) / 1000),
        f"concurrency {concurrency}, one worker process",
    )


async def celery(redis_port: int, jobs: int, concurrency: int, log: Path) -> Rates:
    """``delay()`` per task, and a prefork worker of ``concurrency`` processes."""
    url = f"redis://127.0.0.1:{redis_port}/0"
    os.environ["BENCH_REDIS_URL"] = url
    from bench import celery_app  # reads BENCH_REDIS_URL when imported

    # A later run (--runs) has a Redis of its own: build the app again for its URL.
    celery_app = importlib.reload(celery_app)

    client = aioredis.Redis.from_url(url)
    argv = (
        str(VENV_BIN / "celery"), "-A", "bench.celery_app", "worker", "--pool", "prefork",
        "--concurrency", str(concurrency), "--without-gossip", "--without-mingle",
        "--without-heartbeat", "--loglevel", "warning", "--queues", "bench",
    )  # fmt: skip
    async with child(*argv, env={"BENCH_REDIS_URL": url}, log=log):

        async def finished(total: int, timeout_s: float) -> float:
            deadline = time.monotonic() + timeout_s
            while (value := await client.get(celery_app.FINISHED_KEY)) is None:
                if time.monotonic() > deadline:
                    raise TimeoutError("celery tasks did not finish")
                await asyncio.sleep(0.01)
            return float(value) / 1000

        # A first task, so the worker is up before the clock starts.
        await client.delete(celery_app.DONE_KEY, celery_app.FINISHED_KEY)
        await asyncio.to_thread(celery_app.noop.delay, 0, 1)
        await finished(1, 120)
        await client.delete(celery_app.DONE_KEY, celery_app.FINISHED_KEY)

        def publish() -> tuple[float, float]:
            started = time.time()
            for seq in range(jobs):
                celery_app.noop.delay(seq, jobs)
            return started, time.time()

        started, enqueued = await asyncio.to_thread(publish)
        done = await finished(jobs, 300)
    await client.aclose()
    return Rates(
        jobs / (enqueued - started),
        jobs / (done - started),
        f"prefork, concurrency {concurrency}",
    )
