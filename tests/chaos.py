"""The chaos suite: ``python -m tests.chaos`` (``make chaos``; a short run is in the tests).

Real worker processes, a real broker and a real SMTP server, under load: OTP jobs enqueued
through the producer API while workers are SIGKILLed at random moments (and started again),
the SMTP server goes away for a while, the broker is restarted, and hostile records
(``tests/hostile.py``) arrive between the jobs; on a cluster of three (``--cluster``), one of
its brokers is SIGKILLed and started again instead of the restart. Then it counts, per job,
the emails the server accepted, and prints:

- lost: good jobs never sent; duplicated: sent more than once, each with the time from the
  first copy's acceptance to the kill that repeated it. A duplicate is inside the stated
  window unless the server accepted a copy after some worker had recorded the job done (its
  log line "job ... completed", written once the outcome is acked); such a copy fails the run;
- dead-lettered good jobs (an outage must not burn attempts) and hostile records that are not
  on the dead-letter topic;
- agent crashes and worker exits nobody asked for; secrets leaked into logs or job-events;
- the worker's own figure of the window (``pipeline_done_window_ms``) and its log lines at
  WARNING or above.

It exits 1 when any figure breaks the guarantee. The seed is printed, so a failing run can be
repeated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import aiohttp
from aiokafka import AIOKafkaProducer

from pipeline.admin import delete_topics, ensure_topics
from pipeline.catalog import all_topics
from pipeline.events import EventType
from pipeline.queues import EmailQueue, NewJob
from pipeline.schemas import JobName, OtpEmailJob
from pipeline.settings import Settings
from tests.brokers import KAFKA_SH, REPO
from tests.hostile import hostile_records
from tests.kafka_utils import EventLog, read_topic
from tests.local_kafka import LocalKafka
from tests.smtp import SmtpSink
from tests.workers import WorkerProcess, free_port, worker_env

OTP = JobName.OTP_EMAIL_VERIFICATION


@dataclass(frozen=True)
class Plan:
    """What one run does."""

    jobs: int = 2000
    workers: int = 2
    concurrency: int = 8
    kills: int = 3
    broker_restart: bool = True
    smtp_outage_s: float = 30.0
    hostile: bool = True
    load_s: float = 60.0  # the jobs are enqueued evenly over this long
    # On a cluster (run's ``cluster``): SIGKILL one node for this long, topics with 3 replicas.
    node_down_s: float = 0.0
    seed: int = field(default_factory=lambda: random.randrange(1_000_000))


@dataclass
class Figures:
    """What one run measured."""

    plan: Plan
    sent: int = 0
    delivered: int = 0
    lost: list[str] = field(default_factory=list)
    duplicates: dict[str, float | None] = field(default_factory=dict)  # job -> accept-to-kill ms
    sent_after_done: set[str] = field(default_factory=set)  # a copy accepted after "completed"
    dead_lettered: list[str] = field(default_factory=list)
    hostile_sent: int = 0
    hostile_missing: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    startup_exits: int = 0  # workers that gave up while starting (a broker going down)
    leaked: list[str] = field(default_factory=list)
    kills: int = 0
    broker_down_s: float = 0.0
    node_killed: int | None = None
    node_down_s: float = 0.0
    smtp_down_s: float = 0.0
    warnings: int = 0
    window_ms: dict[str, float] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def outside_window(self) -> dict[str, float | None]:
        """Duplicates with a copy sent after the job was recorded done: the window is only from
        the server's acceptance to that record. (Which worker recorded it does not matter: a
        job re-run by a worker killed later is still a duplicate of the first kill's window.)"""
        return {j: ms for j, ms in self.duplicates.items() if j in self.sent_after_done}

    def failures(self) -> list[str]:
        """Why the run fails the guarantee; empty when it holds."""
        problems = []
        if self.lost:
            problems.append(f"{len(self.lost)} jobs lost: {self.lost[:5]}")
        if outside := self.outside_window():
            problems.append(f"{len(outside)} duplicates outside the window: {outside}")
        if self.dead_lettered:
            problems.append(f"{len(self.dead_lettered)} good jobs dead-lettered")
        if self.hostile_missing:
            problems.append(f"hostile records not dead-lettered: {self.hostile_missing}")
        if self.crashes:
            problems.append(f"crashes: {self.crashes}")
        if self.leaked:
            problems.append(f"secrets leaked in: {self.leaked}")
        return problems

    def report(self) -> str:
        """The figures as a table."""
        in_window = sorted(ms for ms in self.duplicates.values() if ms is not None)
        rows = [
            ("seed", str(self.plan.seed)),
            ("jobs sent", f"{self.sent:,}"),
            ("delivered (at least once)", f"{self.delivered:,}"),
            ("lost", str(len(self.lost))),
            ("duplicated", str(len(self.duplicates))),
            ("  accept-to-kill ms", ", ".join(f"{ms:.0f}" for ms in in_window) or "-"),
            ("  outside the window", str(len(self.outside_window()))),
            ("good jobs dead-lettered", str(len(self.dead_lettered))),
            (
                "hostile records sent / not dead-lettered",
                f"{self.hostile_sent} / {len(self.hostile_missing)}",
            ),
            ("agent crashes, exits after ready", str(len(self.crashes))),
            ("workers that gave up starting (restarted)", str(self.startup_exits)),
            ("secrets leaked", str(len(self.leaked))),
            ("workers SIGKILLed", str(self.kills)),
            ("broker down (s)", f"{self.broker_down_s:.1f}"),
            (
                "cluster node SIGKILLed (down s)",
                f"{self.node_killed} ({self.node_down_s:.1f})" if self.node_killed else "-",
            ),
            ("SMTP server down (s)", f"{self.smtp_down_s:.1f}"),
            ("worker log lines at WARNING+", str(self.warnings)),
            (
                "done window p50 / p99 / max ms",
                " / ".join(
                    f"{self.window_ms[q]:.1f}" if q in self.window_ms else "-"
                    for q in ("0.5", "0.99", "1.0")
                ),
            ),
            ("elapsed (s)", f"{self.elapsed_s:.0f}"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


class Run:
    """One chaos run: its workers, SMTP server, event log and timeline."""

    def __init__(
        self, plan: Plan, bootstrap: str, folder: Path, cluster: LocalKafka | None = None
    ) -> None:
        self.plan = plan
        self.bootstrap = bootstrap
        self.folder = folder
        self.cluster = cluster
        self.replicas = 3 if cluster is not None and cluster.nodes == 3 else 1
        self.random = random.Random(plan.seed)
        run_id = uuid.uuid4().hex[:8]
        self.prefix = f"chaos-{run_id}-"
        self.app_id = f"pipeline-chaos-{run_id}"
        self.settings = Settings(
            kafka_bootstrap_servers=bootstrap,
            topic_prefix=self.prefix,
            topic_replication_factor=self.replicas,
        )
        self.sink = SmtpSink(port=free_port())
        self.workers: list[WorkerProcess] = []
        self.all_workers: list[WorkerProcess] = []
        self.killed: list[WorkerProcess] = []
        self.exited: list[WorkerProcess] = []  # on their own
        self.kill_times: list[float] = []
        self.hostile_places: dict[tuple[int, int], str] = {}
        self.figures = Figures(plan)

    def otp(self, index: int) -> OtpEmailJob:
        # Codes that cannot occur by chance in a log line, so a leak is found by searching.
        return OtpEmailJob(
            email=f"chaos{index}@example.com", customer_name="Chaos", otp=f"S3CR{index:06d}"
        )

    async def start_worker(self, in_place_of: WorkerProcess | None = None) -> WorkerProcess:
        """Start a worker; ``in_place_of`` one that died, on its data folder, as a supervisor
        restarting a container with its volume would (its tables on disk as the kill left them)."""
        index = len(self.all_workers)
        folder = self.folder / f"worker-{index}"
        if in_place_of is not None:
            folder = Path(in_place_of.env["PIPELINE_DATA_DIR"])
        env = worker_env(self.bootstrap, self.prefix, self.app_id, folder, free_port())
        # The product's default: the chaos figures are what a deployment would see.
        del env["PIPELINE_ACTIVE_AFTER_MS"]
        env.update(
            self.sink.worker_env(
                PIPELINE_EMAIL_CONCURRENCY=str(self.plan.concurrency),
                PIPELINE_EMAIL_RATE_LIMIT_JOBS="100000",
                PIPELINE_BREAKER_MAX_PAUSE_S="2",
                PIPELINE_TOPIC_REPLICATION_FACTOR=str(self.replicas),
            )
        )
        worker = WorkerProcess(env=env, log_path=self.folder / f"worker-{index}.log")
        self.all_workers.append(worker)
        self.workers.append(worker)
        await worker.start()
        return worker

    async def load(self) -> None:
        """Enqueue the jobs evenly over ``load_s``, hostile records between them."""
        plan = self.plan
        hostile = list(hostile_records()) if plan.hostile else []
        batch = 50
        batches = (plan.jobs + batch - 1) // batch
        every = max(batches // len(hostile), 1) if hostile else 0
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", max_request_size=2_000_000
        )
        await producer.start()
        try:
            async with EmailQueue.connect(self.settings) as queue:
                started = time.monotonic()
                for number in range(batches):
                    first = number * batch
                    jobs = [
                        NewJob(OTP, self.otp(i), job_id=f"chaos-{i}")
                        for i in range(first, min(first + batch, plan.jobs))
                    ]
                    await _until_sent(lambda jobs=jobs: queue.add_bulk(jobs))
                    self.figures.sent += len(jobs)
                    if hostile and number % every == 0:
                        record = hostile.pop(0)
                        sent = await _until_sent(
                            lambda r=record: producer.send_and_wait(
                                self.settings.topic_prefix + "email",
                                r.value,
                                key=r.key,
                                headers=r.headers,
                            )
                        )
                        self.hostile_places[sent.partition, sent.offset] = record.name
                    pause = started + (number + 1) * plan.load_s / batches - time.monotonic()
                    await asyncio.sleep(max(pause, 0))
        finally:
            await producer.stop()
        self.figures.hostile_sent = len(self.hostile_places)

    async def chaos(self) -> None:
        """Kills, a broker restart and an SMTP outage at random moments of the load."""
        plan = self.plan
        moments: list[tuple[float, str]] = [
            (self.random.uniform(0.1, 0.9) * plan.load_s, "kill") for _ in range(plan.kills)
        ]
        if plan.broker_restart:
            moments.append((self.random.uniform(0.3, 0.6) * plan.load_s, "broker"))
        if plan.node_down_s:
            moments.append((self.random.uniform(0.2, 0.5) * plan.load_s, "node"))
        if plan.smtp_outage_s:
            moments.append((self.random.uniform(0.1, 0.4) * plan.load_s, "smtp"))
        started = time.monotonic()
        tasks = []
        for at, what in sorted(moments):
            await asyncio.sleep(max(started + at - time.monotonic(), 0))
            if what == "kill":
                await self.kill_one()
            elif what == "broker":
                await self.restart_broker()
            elif what == "node":
                tasks.append(asyncio.create_task(self.kill_node()))
            else:
                tasks.append(asyncio.create_task(self.smtp_outage()))
        await asyncio.gather(*tasks)

    async def kill_one(self) -> None:
        await self.replace_exited()
        victim = self.random.choice(self.workers)
        assert victim.process is not None
        victim.process.send_signal(signal.SIGKILL)
        self.kill_times.append(time.monotonic())
        await victim.process.wait()
        self.workers.remove(victim)
        self.killed.append(victim)
        self.figures.kills += 1
        print(f"chaos: SIGKILLed worker {self.all_workers.index(victim)}", flush=True)
        await self.start_worker(in_place_of=victim)

    async def replace_exited(self) -> None:
        """Start a worker in place of any that exited on its own, as a supervisor would."""
        for worker in list(self.workers):
            if worker.process is not None and worker.process.returncode is not None:
                self.workers.remove(worker)
                self.exited.append(worker)
                print(f"chaos: worker {self.all_workers.index(worker)} exited", flush=True)
                await self.start_worker(in_place_of=worker)

    async def restart_broker(self) -> None:
        began = time.monotonic()
        env = {**os.environ, "PYTHON": sys.executable}
        for step in ("down", "up"):
            await asyncio.to_thread(
                subprocess.run, ["bash", str(KAFKA_SH), step], check=True, env=env, cwd=REPO
            )
        self.figures.broker_down_s = time.monotonic() - began
        print(f"chaos: broker restarted ({self.figures.broker_down_s:.1f} s)", flush=True)

    async def kill_node(self) -> None:
        """SIGKILL one node of the cluster, keep it down ``node_down_s``, start it again."""
        assert self.cluster is not None, "a node kill needs a cluster"
        node = self.random.randint(1, self.cluster.nodes)
        began = time.monotonic()
        await self.cluster.kill(node)
        self.figures.node_killed = node
        print(f"chaos: SIGKILLed cluster node {node}", flush=True)
        await asyncio.sleep(self.plan.node_down_s)
        await self.cluster.start(node)
        self.figures.node_down_s = time.monotonic() - began
        print(f"chaos: node {node} back ({self.figures.node_down_s:.1f} s)", flush=True)

    async def smtp_outage(self) -> None:
        self.sink.stop()
        print("chaos: SMTP server down", flush=True)
        await asyncio.sleep(self.plan.smtp_outage_s)
        self.sink.start()
        self.figures.smtp_down_s = self.plan.smtp_outage_s
        print("chaos: SMTP server back", flush=True)

    async def settle(self, events: EventLog, timeout_s: float) -> None:
        """Wait until every good job has a terminal record."""
        wanted = {f"chaos-{i}" for i in range(self.plan.jobs)}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await self.replace_exited()
            done = {
                e.job_id
                for e in events.events
                if e.type in (EventType.COMPLETED, EventType.DEAD_LETTERED)
            }
            if wanted <= done:
                return
            await asyncio.sleep(0.5)

    async def measure(self, events: EventLog) -> None:
        figures = self.figures
        by_job: dict[str, list[float]] = {}
        for received in list(self.sink.received):
            for address in received.recipients:
                by_job.setdefault(address, []).append(received.accepted_at)
        for index in range(self.plan.jobs):
            accepted = sorted(by_job.get(f"chaos{index}@example.com", []))
            if not accepted:
                figures.lost.append(f"chaos-{index}")
                continue
            figures.delivered += 1
            if len(accepted) > 1:
                kills = [k for k in self.kill_times if k >= accepted[0]]
                gap = (min(kills) - accepted[0]) * 1000 if kills else None
                figures.duplicates[f"chaos-{index}"] = gap
        figures.dead_lettered = sorted(
            {e.job_id for e in events.events if e.type == EventType.DEAD_LETTERED}
            & {f"chaos-{i}" for i in range(self.plan.jobs)}
        )
        letters = await read_topic(self.bootstrap, f"{self.prefix}email-dead-letter")
        places = {
            (int(h["dlq-original-partition"]), int(h["dlq-original-offset"]))
            for h in (dict(r.headers) for r in letters)
            if h.get("dlq-reason")
        }
        figures.hostile_missing = [
            name for place, name in self.hostile_places.items() if place not in places
        ]
        secrets = [self.otp(i).otp.get_secret_value() for i in range(self.plan.jobs)]
        secret = re.compile("|".join(re.escape(s) for s in secrets))
        done = re.compile(
            r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] .*\] job (chaos-\d+) \(\S+\) "
            r"completed on attempt",
            re.MULTILINE,
        )
        # Worker logs carry wall-clock times, the SMTP sink monotonic ones.
        wall_to_monotonic = time.monotonic() - time.time()
        done_at: dict[str, float] = {}
        for worker in self.all_workers:
            log = worker.log_text()
            name = worker.log_path.name
            for stamp, job_id in done.findall(log):
                wall = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
                at = wall + wall_to_monotonic
                done_at[job_id] = min(at, done_at.get(job_id, at))
            figures.warnings += len(re.findall(r"\] \[(WARNING|ERROR|CRITICAL)\] ", log))
            if "Crashed" in log or "Max restarts" in log:
                figures.crashes.append(f"{name}: an agent crashed")
            exited = worker.process is not None and worker.process.returncode is not None
            if worker in self.exited or (exited and worker not in self.killed):
                # Started while the broker was going down, Faust's start-up gives up: a worker
                # that had started must never exit; one that had not is restarted by its
                # supervisor (here, this harness) and counted.
                if re.search(r"\[\^Worker\]: Ready", log):
                    figures.crashes.append(f"{name}: exited after it was ready")
                else:
                    figures.startup_exits += 1
            if secret.search(log):
                figures.leaked.append(name)
        if any(secret.search(raw.decode("latin-1")) for raw in events.raw):
            figures.leaked.append("job-events")
        figures.sent_after_done = {
            job_id
            for job_id in figures.duplicates
            if job_id in done_at
            and any(at > done_at[job_id] for at in by_job[f"chaos{job_id[6:]}@example.com"])
        }
        figures.window_ms = await self.done_window()

    async def done_window(self) -> dict[str, float]:
        """The largest of each quantile of pipeline_done_window_ms over the live workers."""
        found: dict[str, float] = {}
        async with aiohttp.ClientSession() as http:
            for worker in self.workers:
                url = f"http://127.0.0.1:{worker.env['PIPELINE_WEB_PORT']}/metrics"
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(url) as response:
                        text = await response.text()
                    for q, value in re.findall(
                        r'pipeline_done_window_ms\{quantile="([0-9.]+)"\} ([0-9.e+-]+)', text
                    ):
                        found[q] = max(found.get(q, 0.0), float(value))
        return found

    async def stop(self) -> None:
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                worker.process.kill()
                await worker.process.wait()
        self.sink.stop()
        await delete_topics(self.settings, self.prefix)
        await delete_topics(self.settings, self.app_id)


T = TypeVar("T")


async def _until_sent(send: Callable[[], Awaitable[T]]) -> T:
    """A producer's own retry: the broker may be restarting (a real service would do this)."""
    while True:
        try:
            return await send()
        except Exception as exc:  # any send failure is retried the same way
            print(f"chaos: enqueue failed ({type(exc).__name__}); trying again", flush=True)
            await asyncio.sleep(1)


async def run(
    plan: Plan, bootstrap: str, folder: Path, cluster: LocalKafka | None = None
) -> Figures:
    """Run ``plan`` against the broker at ``bootstrap`` (``cluster``'s, when it kills a node);
    worker logs go to ``folder``."""
    began = time.monotonic()
    chaos = Run(plan, bootstrap, folder, cluster)
    await ensure_topics(chaos.settings, all_topics())
    events = EventLog(chaos.settings)
    await events.start()
    chaos.sink.start()
    try:
        for _ in range(plan.workers):
            await chaos.start_worker()
        for worker in list(chaos.workers):
            await worker.wait_ready()
        await asyncio.gather(chaos.load(), chaos.chaos())
        await chaos.settle(events, timeout_s=240)
        await chaos.measure(events)
    finally:
        await events.stop()
        await chaos.stop()
    chaos.figures.elapsed_s = time.monotonic() - began
    return chaos.figures


async def _run_on(plan: Plan, bootstrap: str, folder: Path, cluster: bool) -> Figures:
    if not cluster:
        return await run(plan, bootstrap, folder)
    brokers = LocalKafka.on_free_ports(folder / "cluster", nodes=3)
    await brokers.up()
    try:
        return await run(plan, brokers.bootstrap(), folder, brokers)
    finally:
        await brokers.down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = Plan()
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--jobs", type=int, default=defaults.jobs)
    parser.add_argument("--kills", type=int, default=defaults.kills)
    parser.add_argument("--smtp-outage-s", type=float, default=defaults.smtp_outage_s)
    parser.add_argument("--load-s", type=float, default=defaults.load_s)
    parser.add_argument("--no-broker-restart", action="store_true")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="start a cluster of three brokers of its own (kafka.sh) and SIGKILL one of them "
        "mid-load instead of restarting --bootstrap's broker",
    )
    parser.add_argument("--node-down-s", type=float, default=15.0)
    args = parser.parse_args()
    # This process's own clients would repeat every connection error of the broker restart.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    plan = Plan(
        jobs=args.jobs,
        kills=args.kills,
        smtp_outage_s=args.smtp_outage_s,
        load_s=args.load_s,
        broker_restart=not (args.no_broker_restart or args.cluster),
        node_down_s=args.node_down_s if args.cluster else 0.0,
        seed=args.seed,
    )
    folder = Path(tempfile.mkdtemp(prefix="pipeline-chaos-"))
    figures = asyncio.run(_run_on(plan, args.bootstrap, folder, args.cluster))
    print(figures.report())
    print(f"worker logs: {folder}")
    for problem in figures.failures():
        print(f"FAIL: {problem}")
    return 1 if figures.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
