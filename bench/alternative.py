"""``python -m bench.alternative``: the same job runner fed by a Faust agent and by a plain
aiokafka consumer, one after the other on the same noop load, each in a process of its own.

The issue asks to measure the alternative to Faust agents as the job topics' consumers before
departing from them. Here the alternative runs everything the worker's jobs role runs per job:
``JobRunner`` with its envelope checks, handler call, lifecycle records (Avro), state writes and
batch settling, records written through the same per-partition batches (``compat/sends.py``,
idempotent producer, acks=all), offsets committed every 2.8 s as Faust commits. What it leaves
out is Faust: its consumer thread and hand-over, agents, streams, acks, and its table, whose
place takes a dict plus the same changelog record per state (a compacted topic of the run's
own), without RocksDB. It keeps no job state across restarts and owns no rebalance handling, so
it is a measurement, not a worker: read its figure as the most a departure could give.

Both consume with the monitor elsewhere (the Faust worker with ``PIPELINE_ROLE=jobs``, no monitor
process at all), so the figures are the consume-and-run path alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.jobs import BENCH, NOOP, BenchQueue, NoopJob
from bench.ours import Completions, _workers
from bench.support import REPO, bench_env, child, cpu_seconds
from pipeline.admin import delete_topics, ensure_topics
from pipeline.application import GC_YOUNG_THRESHOLD
from pipeline.catalog import JOB_EVENTS
from pipeline.compat.sends import BatchedSends
from pipeline.connection import client_options
from pipeline.envelope import Headers
from pipeline.queues import NewJob
from pipeline.records import IncomingRecord
from pipeline.runner import runner_for
from pipeline.services.bundle import Services
from pipeline.settings import Settings

COMMIT_EVERY_S = 2.8  # Faust's broker_commit_every default, as the worker runs it
LINGER_S = 0.005  # the worker's producer linger


class Publisher:
    """The worker's ``Publisher`` on a plain aiokafka producer, through the same batches."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self.sends = BatchedSends(lambda: producer, LINGER_S)

    async def publish(
        self, topic: str, *, key: bytes | None, value: bytes, headers: Headers,
        partition: int | None = None,
    ) -> None:  # fmt: skip
        await self._producer.send_and_wait(topic, value, key, partition, None, list(headers))

    async def publish_soon(
        self, topic: str, *, key: bytes | None, value: bytes, headers: Headers,
        partition: int | None = None,
    ) -> Awaitable[object]:  # fmt: skip
        return await self.sends.send(topic, key, value, partition, headers)


class StateStore:
    """Each job's state in a dict, each change also written as a changelog record."""

    def __init__(self, publisher: Publisher, topic: str) -> None:
        self._states: dict[str, dict[str, Any]] = {}
        self._publisher = publisher
        self._topic = topic

    def get(self, job_id: str) -> dict[str, Any] | None:
        value = self._states.get(job_id)
        return dict(value) if value else None

    async def set(self, job_id: str, state: dict[str, Any], partition: int) -> Awaitable[object]:
        self._states[job_id] = state
        value = json.dumps(state, separators=(",", ":")).encode()  # as the worker writes it
        return await self._publisher.publish_soon(
            self._topic, key=job_id.encode(), value=value, headers=[], partition=partition
        )


async def serve(settings: Settings, concurrency: int) -> None:
    """Consume the bench topic with a plain aiokafka consumer and run its jobs until killed."""
    state_topic = f"{settings.topic_prefix}alternative-job-state"
    partitions = BENCH.topic.partition_count(settings)
    await ensure_topics(settings, [BENCH.topic, JOB_EVENTS], {state_topic: partitions})
    producer = AIOKafkaProducer(
        **client_options(settings), acks="all", enable_idempotence=True, linger_ms=5
    )
    consumer = AIOKafkaConsumer(
        BENCH.topic.name(settings),
        **client_options(settings),
        group_id=f"{settings.app_id}-alternative",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await producer.start()
    await consumer.start()
    publisher = Publisher(producer)
    runner = runner_for(
        BENCH,
        settings,
        publisher=publisher,
        states=StateStore(publisher, state_topic),
        services=Services.from_settings(settings),
        job_timeout_s=BENCH.settings(settings).job_timeout_s,
    )
    done: dict[TopicPartition, int] = {}
    committed = time.monotonic()
    print("alternative: ready", flush=True)
    while True:
        fetched = await consumer.getmany(timeout_ms=100)
        records = [
            IncomingRecord(
                message.topic,
                message.partition,
                message.offset,
                message.timestamp,
                message.key,
                message.value or b"",
                message.headers,
            )
            for messages in fetched.values()
            for message in messages
        ]
        for start in range(0, len(records), settings.batch_max_jobs):
            await runner.process_batch(
                records[start : start + settings.batch_max_jobs], concurrency
            )
        done.update((tp, messages[-1].offset + 1) for tp, messages in fetched.items())
        if done and time.monotonic() - committed >= COMMIT_EVERY_S:
            await consumer.commit(dict(done))
            committed = time.monotonic()


@contextlib.asynccontextmanager
async def _alternative(
    env: dict[str, str], workdir: Path
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """This module's ``serve`` in a process of its own, as ``_workers`` starts workers."""
    argv = (sys.executable, "-m", "bench.alternative", "--serve")
    async with child(*argv, env=env, log=workdir / "alternative.log") as process:
        yield [process]


async def _load(kind: str, jobs: int, workdir: Path) -> tuple[float, float]:
    """(noop jobs/s, consumer CPU us per job) of ``jobs`` jobs through ``kind``'s consumer."""
    stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{kind}"
    env = bench_env("alternative", stamp, 8)
    os.environ.update(env)
    settings = Settings()
    completions = Completions(settings)
    try:
        await ensure_topics(settings, [BENCH.topic, JOB_EVENTS])
        if kind == "faust":
            started = _workers(1, {**env, "PIPELINE_ROLE": "jobs"}, workdir, name=stamp)
        else:
            started = _alternative(env, workdir)
        async with started as [process], BenchQueue.connect(settings) as queue:
            await completions.start()
            completions.workers = [process]
            await completions.wait_for(await queue.add_bulk([NewJob(NOOP, NoopJob())]), 180)
            cpu_before = cpu_seconds(process.pid)
            noop = [NewJob(NOOP, NoopJob(seq=i)) for i in range(jobs)]
            began = time.time()
            ids: list[str] = []
            for first in range(0, jobs, 1000):
                ids += await queue.add_bulk(noop[first : first + 1000])
            finished = max((await completions.wait_for(ids)).values()) / 1000
            cpu = cpu_seconds(process.pid) - cpu_before
            await completions.stop()
        return jobs / (finished - began), cpu / jobs * 1e6
    finally:
        await delete_topics(settings, stamp)


async def compare(jobs: int, runs: int) -> str:
    workdir = REPO / "bench" / "results" / f"alternative-{time.strftime('%Y%m%d-%H%M%S')}"
    workdir.mkdir(parents=True)
    figures: dict[str, list[tuple[float, float]]] = {"faust": [], "aiokafka": []}
    for run in range(runs):
        for kind in figures:
            rate, cpu = await _load(kind, jobs, workdir)
            figures[kind].append((rate, cpu))
            print(
                f"run {run + 1} {kind}: {rate:,.0f} jobs/s, {cpu:,.0f} us CPU per job", flush=True
            )
    lines = [f"{jobs:,} noop jobs, {runs} alternating runs (min / median / max):"]
    for kind, pairs in figures.items():
        rates = sorted(rate for rate, _ in pairs)
        cpus = sorted(cpu for _, cpu in pairs)
        lines.append(
            f"  {kind:9} {rates[0]:,.0f} / {statistics.median(rates):,.0f} / {rates[-1]:,.0f} "
            f"jobs/s; CPU per job {cpus[0]:,.0f} / {statistics.median(cpus):,.0f} / "
            f"{cpus[-1]:,.0f} us"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.alternative", description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000, help="noop jobs per run")
    parser.add_argument("--runs", type=int, default=3, help="runs of each, alternating")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        # As the worker runs: uvloop (faust -L uvloop) and its garbage-collector settings.
        uvloop.install()
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
        settings = Settings()
        asyncio.run(serve(settings, BENCH.settings(settings).concurrency))
    else:
        print(asyncio.run(compare(args.jobs, args.runs)))


if __name__ == "__main__":
    main()
