"""The pipeline's figures: noop and OTP-email jobs through a real worker, latency at a fixed
rate, and the worker's peak memory."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.jobs import BENCH, NOOP, BenchQueue, NoopJob
from bench.support import (
    VENV_BIN,
    child,
    cpu_seconds,
    free_port,
    peak_rss_bytes,
    percentile,
    wait_port,
)
from pipeline.catalog import JOB_EVENTS
from pipeline.connection import client_options
from pipeline.events import EVENT_TYPE_HEADER, EventType, decode_event
from pipeline.queues import EmailQueue, NewJob, Queue
from pipeline.schemas import JobName, OtpEmailJob
from pipeline.settings import Settings

BATCH = 1000  # jobs per add_bulk call, as BullMQ's addBulk gets them
COMPLETED = EventType.COMPLETED.value.encode()  # the event-type header of a completed record


@dataclass
class Latency:
    """Enqueue-to-completed percentiles (ms) at one rate."""

    rate: int
    ms: dict[str, float]
    jobs: int


@dataclass
class NoopLoad:
    """One noop load: rates, and what it cost the workers and the broker."""

    enqueue_per_s: float
    noop_per_s: float
    cpu_us_per_job: float  # every worker's user + system CPU, per job
    records_per_job: float  # records written to the run's topics (changelogs included), per job
    monitor_behind: int  # job-events records the group had not committed at the last completion
    monitor_catch_up_s: float  # from the last completion until the group committed everything
    monitor_cpu_us_per_job: float | None = None  # a monitor of its own's CPU, when there is one


@dataclass
class OurFigures:
    """What the worker did, in jobs/s, ms and bytes."""

    noop: NoopLoad
    email_per_s: float
    latencies: list[Latency]
    peak_rss_bytes: int


class Completions:
    """Follows ``job-events`` from its end and notes when each job completed (worker clock)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.done: dict[str, int] = {}
        self._changed = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.workers: list[asyncio.subprocess.Process] = []  # fail early if one exits

    async def start(self) -> None:
        """Start reading from the current end of every partition."""
        consumer = AIOKafkaConsumer(**client_options(self._settings), enable_auto_commit=False)
        await consumer.start()
        topic = JOB_EVENTS.name(self._settings)
        admin = AIOKafkaAdminClient(**client_options(self._settings))
        await admin.start()
        try:
            [described] = await admin.describe_topics([topic])
        finally:
            await admin.close()
        partitions = [p["partition"] for p in described["partitions"]]
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        self._consumer = consumer
        self._task = asyncio.create_task(self._follow(consumer))

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batches.values():
                for record in records:
                    # The event-type header tells the completed records without decoding the
                    # rest: the bench's own reader then takes less of the CPU the worker needs.
                    if (EVENT_TYPE_HEADER, COMPLETED) not in record.headers:
                        continue
                    event = decode_event(record.value)
                    self.done[event.job_id] = event.timestamp_ms
            self._changed.set()

    async def wait_for(self, ids: Iterable[str], timeout_s: float = 300.0) -> dict[str, int]:
        """Completion times (epoch ms) of ``ids``, once every one has completed."""
        wanted = set(ids)
        deadline = time.monotonic() + timeout_s
        while not wanted <= self.done.keys():
            for worker in self.workers:
                if worker.returncode is not None:
                    raise RuntimeError(f"a worker exited ({worker.returncode}): see its log")
            if time.monotonic() > deadline:
                missing = len(wanted - self.done.keys())
                raise TimeoutError(f"{missing} of {len(wanted)} jobs did not complete")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), 1.0)
        return {job_id: self.done[job_id] for job_id in wanted}

    async def _partitions(self, admin: AIOKafkaAdminClient, topics: Sequence[str]) -> list[Any]:
        described = await admin.describe_topics(list(topics))
        return [
            TopicPartition(topic["topic"], p["partition"])
            for topic in described
            for p in topic["partitions"]
        ]

    async def behind(self, group: str, topics: Sequence[str]) -> int:
        """Records of ``topics`` the group has not committed yet."""
        assert self._consumer is not None
        admin = AIOKafkaAdminClient(**client_options(self._settings))
        await admin.start()
        try:
            tps = await self._partitions(admin, topics)
            ends = await self._consumer.end_offsets(tps)
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
            # -1: nothing committed yet on that partition.
            return sum(
                end - max(committed[tp].offset if tp in committed else 0, 0)
                for tp, end in ends.items()
            )
        finally:
            await admin.close()

    async def wait_idle(self, group: str, topics: Sequence[str], timeout_s: float = 300.0) -> None:
        """Wait until the worker's group has committed everything on ``topics``: the monitor
        has caught up, so the next load starts on an idle worker."""
        deadline = time.monotonic() + timeout_s
        while (behind := await self.behind(group, topics)) > 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker is still {behind} records behind")
            await asyncio.sleep(0.2)

    async def wait_members(self, group: str, count: int, timeout_s: float = 120.0) -> None:
        """Wait until the group is stable with ``count`` members: a load that starts while a
        second worker is still joining measures a rebalance, not the workers."""
        admin = AIOKafkaAdminClient(**client_options(self._settings))
        await admin.start()
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                [response] = await admin.describe_consumer_groups([group])
                [described] = response.to_object()["groups"]
                if described["state"] == "Stable" and len(described["members"]) == count:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"group {group} is {described['state']}, not {count} members"
                    )
                await asyncio.sleep(0.2)
        finally:
            await admin.close()

    async def records_written(self, markers: Sequence[str]) -> int:
        """Records on every topic whose name holds one of ``markers`` (end offsets summed)."""
        assert self._consumer is not None
        admin = AIOKafkaAdminClient(**client_options(self._settings))
        await admin.start()
        try:
            names = [n for n in await admin.list_topics() if any(m in n for m in markers)]
            tps = await self._partitions(admin, names)
        finally:
            await admin.close()
        return sum((await self._consumer.end_offsets(tps)).values())

    async def stop(self) -> None:
        """Stop following."""
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer:
            await self._consumer.stop()


def _batches(jobs: Sequence[NewJob], size: int = BATCH) -> Iterable[Sequence[NewJob]]:
    return (jobs[i : i + size] for i in range(0, len(jobs), size))


def _otp(i: int) -> NewJob:
    return NewJob(
        JobName.OTP_EMAIL_VERIFICATION,
        OtpEmailJob(email=f"user{i}@example.com", customer_name="Bench", otp=f"{i % 1000000:06d}"),
    )


async def _throughput(
    queue: Queue, completions: Completions, jobs: Sequence[NewJob]
) -> tuple[float, float]:
    """(add_bulk jobs/s, jobs/s from the first enqueue to the last completed)."""
    started = time.time()
    ids: list[str] = []
    for batch in _batches(jobs):
        ids += await queue.add_bulk(batch)
    enqueued = time.time()
    done = await completions.wait_for(ids)
    finished = max(done.values()) / 1000
    return len(jobs) / (enqueued - started), len(jobs) / (finished - started)


async def _noop_load(
    queue: Queue,
    completions: Completions,
    settings: Settings,
    processes: Sequence[asyncio.subprocess.Process],
    jobs: int,
    monitor: asyncio.subprocess.Process | None = None,
) -> NoopLoad:
    """``jobs`` noop jobs through idle workers, with the CPU and the records they cost (the
    CPU of ``processes``, and of ``monitor`` apart)."""
    markers = [settings.topic_prefix, settings.app_id]
    events = [JOB_EVENTS.name(settings)]
    records_before = await completions.records_written(markers)
    cpu_before = sum(cpu_seconds(process.pid) for process in processes)
    monitor_before = cpu_seconds(monitor.pid) if monitor else 0.0
    noop = [NewJob(NOOP, NoopJob(seq=i)) for i in range(jobs)]
    enqueue_per_s, noop_per_s = await _throughput(queue, completions, noop)
    behind = await completions.behind(settings.app_id, events)
    done_at = time.monotonic()
    await completions.wait_idle(settings.app_id, [BENCH.topic.name(settings), *events])
    catch_up_s = time.monotonic() - done_at
    cpu = sum(cpu_seconds(process.pid) for process in processes) - cpu_before
    records = await completions.records_written(markers) - records_before
    monitor_cpu = (cpu_seconds(monitor.pid) - monitor_before) / jobs * 1e6 if monitor else None
    return NoopLoad(
        enqueue_per_s,
        noop_per_s,
        cpu / jobs * 1e6,
        records / jobs,
        behind,
        catch_up_s,
        monitor_cpu,
    )


async def _latency(queue: Queue, completions: Completions, rate: int, seconds: float) -> Latency:
    """Percentiles of enqueue-to-completed ms at ``rate`` jobs/s for ``seconds``."""
    # Whole jobs per tick: the rate run is the nearest one above ``rate`` that ticks allow.
    tick_s = 0.02
    per_tick = max(1, math.ceil(rate * tick_s))
    enqueued_ms: dict[str, float] = {}
    started = time.monotonic()
    seq = 0
    for tick in range(round(seconds / tick_s)):
        await asyncio.sleep(max(0.0, started + tick * tick_s - time.monotonic()))
        jobs = [NewJob(NOOP, NoopJob(seq=seq + i)) for i in range(per_tick)]
        seq += per_tick
        at = time.time() * 1000
        for job_id in await queue.add_bulk(jobs):
            enqueued_ms[job_id] = at
    done = await completions.wait_for(enqueued_ms)
    latencies = [done[job_id] - at for job_id, at in enqueued_ms.items()]
    figures = {f"p{p}": percentile(latencies, p) for p in (50, 95, 99)}
    return Latency(round(per_tick / tick_s), figures, len(latencies))


@contextlib.asynccontextmanager
async def _workers(
    count: int, env: dict[str, str], workdir: Path, name: str = "worker"
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """``count`` worker processes in one consumer group, each with its own web port and state
    (``name`` tells apart the files of workers of different roles)."""
    faust = str(VENV_BIN / "faust")
    argv = (faust, "-L", "uvloop", "-A", "pipeline", "worker", "--loglevel", "warn")
    async with contextlib.AsyncExitStack() as stack:
        started = []
        for index in range(count):
            own = {
                **env,
                "PIPELINE_WEB_PORT": str(free_port()),
                "PIPELINE_DATA_DIR": str(workdir / f"{name}-{index}-data"),
            }
            log = workdir / f"{name}-{index}.log"
            started.append(await stack.enter_async_context(child(*argv, env=own, log=log)))
        yield started


async def measure(
    settings: Settings,
    env: dict[str, str],
    *,
    jobs: int,
    email_jobs: int,
    rate: int,
    seconds: float,
    workdir: Path,
    workers: int = 1,
) -> OurFigures:
    """Start ``workers`` workers (and an SMTP sink that discards), run the loads, and stop them.

    The latency run goes at half the noop capacity just measured, and at ``rate`` too when that
    half is above it.
    """
    smtp_port = free_port()
    sink = (str(VENV_BIN / "python"), "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink")
    env = {**env, "PIPELINE_SMTP_HOST": "127.0.0.1", "PIPELINE_SMTP_PORT": str(smtp_port)}
    completions = Completions(settings)
    async with (
        child(*sink, "-l", f"127.0.0.1:{smtp_port}", log=workdir / "smtp.log"),
        _workers(workers, env, workdir) as processes,
        BenchQueue.connect(settings) as bench,
        EmailQueue.connect(settings) as email,
    ):
        await wait_port(smtp_port)
        await completions.start()
        completions.workers = processes
        try:
            await _warm_up(bench, email, completions, settings)
            noop = await _noop_load(bench, completions, settings, processes, jobs)
            otps = [_otp(i) for i in range(email_jobs)]
            _, email_per_s = await _throughput(email, completions, otps)
            await _idle(completions, settings)
            latencies = []
            for each in sorted({min(rate, int(noop.noop_per_s / 2)), int(noop.noop_per_s / 2)}):
                latencies.append(await _latency(bench, completions, each, seconds))
                await _idle(completions, settings)
            peak = max(peak_rss_bytes(process.pid) for process in processes)
        finally:
            await completions.stop()
    return OurFigures(noop, email_per_s, latencies, peak)


async def measure_noop(
    settings: Settings,
    env: dict[str, str],
    *,
    jobs: int,
    workdir: Path,
    workers: int,
    monitor_apart: bool = False,
) -> NoopLoad:
    """Only the noop load, on ``workers`` workers of one group; with ``monitor_apart`` they run
    the jobs only, and one more process of the group the monitor."""
    completions = Completions(settings)
    roles = {"PIPELINE_ROLE": "jobs"} if monitor_apart else {}
    monitor_env = {**env, "PIPELINE_ROLE": "monitor"}
    async with (
        _workers(workers, {**env, **roles}, workdir) as processes,
        _workers(int(monitor_apart), monitor_env, workdir, name="monitor") as monitors,
        BenchQueue.connect(settings) as bench,
        EmailQueue.connect(settings) as email,
    ):
        await completions.start()
        completions.workers = [*processes, *monitors]
        try:
            await completions.wait_members(settings.app_id, workers + len(monitors))
            await _warm_up(bench, email, completions, settings)
            monitor = monitors[0] if monitors else None
            return await _noop_load(bench, completions, settings, processes, jobs, monitor)
        finally:
            await completions.stop()


async def _warm_up(
    bench: Queue, email: Queue, completions: Completions, settings: Settings
) -> None:
    """One job of each kind: the workers have joined and warmed up once they are done, and the
    next load starts once they have caught up on these jobs' records."""
    warm = [*await bench.add_bulk([NewJob(NOOP, NoopJob())])]
    warm += await email.add_bulk([_otp(0)])
    await completions.wait_for(warm, timeout_s=120)
    await _idle(completions, settings)


async def _idle(completions: Completions, settings: Settings) -> None:
    topics = [BENCH.topic.name(settings), JOB_EVENTS.name(settings)]
    await completions.wait_idle(settings.app_id, topics)
