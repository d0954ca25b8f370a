"""``python -m bench.restart``: how long a worker takes to be ready, and how much memory it holds,
with many finished jobs retained in its tables, per table store.

For each store and each count of retained jobs, on topics of its own:
1. a worker runs one noop job and stops: its records in each table's changelog are what a
   finished job leaves there;
2. those records are copied for ``N`` more job ids (each in its own id's partition), as if ``N``
   jobs had finished within the retention;
3. a worker starts on the data folder of step 1 (it missed the ``N`` jobs: a new machine, or a
   worker away while they ran) and then again on the same folder (a restart: a deploy). Each
   time a noop job is sent as the worker is started; ready is when it completes.

Prints the seconds to ready and the worker's peak and current RSS at that moment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.jobs import NOOP, BenchQueue, NoopJob
from bench.ours import Completions, _workers
from bench.support import REPO, bench_env, peak_rss_bytes
from pipeline.admin import delete_topics
from pipeline.catalog import all_tables
from pipeline.connection import client_options
from pipeline.envelope import partition_for
from pipeline.queues import NewJob
from pipeline.settings import Settings


@dataclass(frozen=True)
class Start:
    """One start of a worker: seconds until its first job completed, RSS then (MiB)."""

    ready_s: float | None  # None: not ready within the timeout
    peak_rss_mib: float
    rss_mib: float


def rss_bytes(pid: int) -> int:
    """The process's resident set size now (VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def changelog_records(
    settings: Settings, job_id: str
) -> list[tuple[str, int, bytes, bytes | None]]:
    """Every changelog record keyed by ``job_id``: (topic, partitions, key, value)."""
    topics = [f"{settings.app_id}-{name}-changelog" for name in all_tables()]
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        described = {
            t["topic"]: t for t in await admin.describe_topics(topics) if not t["error_code"]
        }
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    await consumer.start()
    found: dict[tuple[str, bytes], tuple[str, int, bytes, bytes | None]] = {}
    try:
        tps = [
            TopicPartition(topic, p["partition"])
            for topic, described_topic in described.items()
            for p in described_topic["partitions"]
        ]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for tp, records in (await consumer.getmany(timeout_ms=1000)).items():
                partitions = len(described[tp.topic]["partitions"])
                for record in records:
                    if record.key is not None and job_id.encode() in record.key:
                        found[tp.topic, record.key] = (
                            tp.topic,
                            partitions,
                            record.key,
                            record.value,
                        )
    finally:
        await consumer.stop()
    return list(found.values())


async def copy_records(
    settings: Settings, records: list[tuple[str, int, bytes, bytes | None]], job_id: str, count: int
) -> None:
    """Write ``records`` again for ``count`` new job ids, each in its id's partition."""
    producer = AIOKafkaProducer(
        **client_options(settings),
        linger_ms=20,
        max_batch_size=512 * 1024,
        acks=1,
    )
    await producer.start()
    try:
        pending = []
        old = job_id.encode()
        for index in range(count):
            new_id = f"{index:032x}"
            new = new_id.encode()
            for topic, partitions, key, value in records:
                pending.append(
                    await producer.send(
                        topic,
                        key=key.replace(old, new),
                        value=None if value is None else value.replace(old, new),
                        partition=partition_for(new_id, partitions),
                    )
                )
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def started(
    env: dict[str, str],
    workdir: Path,
    name: str,
    queue: BenchQueue,
    completions: Completions,
    timeout_s: float,
) -> AsyncIterator[Start]:
    """Start a worker, send it a job at once, and measure until that job completes."""
    began = time.monotonic()
    async with _workers(1, env, workdir, name=name) as [worker]:
        ids = await queue.add_bulk([NewJob(NOOP, NoopJob())])
        completions.workers = [worker]
        try:
            await completions.wait_for(ids, timeout_s)
            ready_s: float | None = time.monotonic() - began
        except TimeoutError:
            ready_s = None
        yield Start(
            ready_s,
            peak_rss_bytes(worker.pid) / 1024**2,
            rss_bytes(worker.pid) / 1024**2,
        )


async def measure(store: str, retained: int, workdir: Path, timeout_s: float) -> list[Start]:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    env = {**bench_env("restart", stamp, 8), "PIPELINE_TABLE_STORE": store}
    os.environ.update(env)
    settings = Settings()
    name = f"{store}-{retained}"
    starts: list[Start] = []
    try:
        async with BenchQueue.connect(settings) as queue:
            completions = Completions(settings)
            # The first start creates the topics; the bench's follower needs job-events.
            async with _workers(1, env, workdir, name=name) as [worker]:
                completions.workers = [worker]
                for _ in range(120):
                    with contextlib.suppress(Exception):
                        await completions.start()
                        break
                    await asyncio.sleep(1)
                [job_id] = await queue.add_bulk([NewJob(NOOP, NoopJob())])
                await completions.wait_for([job_id], 120)
                await asyncio.sleep(3)  # its changelog records acked and committed
            records = await changelog_records(settings, job_id)
            print(f"{name}: {len(records)} changelog records a job; copying", flush=True)
            await copy_records(settings, records, job_id, retained)
            for _ in ("missed them", "restarted"):
                async with started(env, workdir, name, queue, completions, timeout_s) as start:
                    starts.append(start)
                print(f"{name}: {start}", flush=True)
            await completions.stop()
    finally:
        await delete_topics(settings, stamp)
    return starts


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.restart", description=__doc__)
    parser.add_argument("--retained", default="0,100000,1000000", help="counts, comma-separated")
    parser.add_argument("--stores", default="rocksdb,memory", help="table stores")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for ready")
    args = parser.parse_args()
    workdir = REPO / "bench" / "results" / f"restart-{time.strftime('%Y%m%d-%H%M%S')}"
    workdir.mkdir(parents=True)
    rows = []
    for retained in (int(n) for n in args.retained.split(",")):
        for store in args.stores.split(","):
            starts = asyncio.run(measure(store, retained, workdir, args.timeout))
            rows.append((store, retained, starts))
    print("\n| store | retained jobs | start | ready, s | peak RSS, MiB | RSS at ready, MiB |")
    print("|---|---|---|---|---|---|")
    for store, retained, starts in rows:
        for label, start in zip(("missed them all", "restart"), starts, strict=True):
            ready = "> timeout" if start.ready_s is None else f"{start.ready_s:.1f}"
            print(
                f"| {store} | {retained:,} | {label} | {ready} | {start.peak_rss_mib:.0f} "
                f"| {start.rss_mib:.0f} |"
            )
    print(f"\nlogs: {workdir.relative_to(REPO)}")


if __name__ == "__main__":
    main()
