"""``python -m bench.profile``: where one worker's CPU goes during a noop load.

Starts a worker with the bench queue (as ``make bench`` does), sends ``--jobs`` noop jobs (at
once, or at ``--rate`` a second as a steady load does), records the worker with py-spy (per
thread) while it works through them, and prints the samples per thread and the
functions that take the most samples, by themselves and with what they call. The raw samples
stay in ``bench/results/`` for a flame graph.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import time
from pathlib import Path

from bench.jobs import NOOP, BenchQueue, NoopJob
from bench.ours import Completions, _workers
from bench.support import REPO, VENV_BIN, bench_env
from pipeline.admin import delete_topics
from pipeline.queues import NewJob
from pipeline.settings import Settings


def frame_name(frame: str) -> str:
    """``function (dir/file.py)`` of one py-spy frame ``function (path:line)``."""
    function, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    return f"{function} ({'/'.join(path.split('/')[-2:])})"


def summarise(raw: Path, top: int) -> str:
    """The busiest functions of the main thread in py-spy's raw (collapsed) output."""
    own: collections.Counter[str] = collections.Counter()
    within: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        samples = int(count)
        threads[frames[0]] += samples
        if not frames[0].endswith("MainThread") or len(frames) < 2:
            continue
        total += samples
        names = [frame_name(frame) for frame in frames[1:]]
        own[names[-1]] += samples
        for name in set(names):
            within[name] += samples
    lines = ["samples by thread:", *(f"{n:8}  {name}" for name, n in threads.most_common())]
    lines += ["", f"main thread: {total} samples", "", "by itself:"]
    lines += [f"{n * 100 / total:6.1f} %  {name}" for name, n in own.most_common(top)]
    lines += ["", "with what it calls (the project's, Faust's and aiokafka's code):"]
    ours = ("pipeline/", "agents/", "faust/", "transport/", "producer/", "consumer/", "tables/")
    lines += [
        f"{n * 100 / total:6.1f} %  {name}"
        for name, n in within.most_common()
        if any(part in name for part in ours)
    ][:top]
    return "\n".join(lines)


async def steady(queue: BenchQueue, jobs: list[NewJob], rate: int) -> list[str]:
    """Send ``jobs`` at ``rate`` a second, in a small batch every 20 ms, as a steady load does."""
    tick_s = 0.02
    per_tick = max(1, round(rate * tick_s))
    ids: list[str] = []
    started = time.monotonic()
    for tick, first in enumerate(range(0, len(jobs), per_tick)):
        await asyncio.sleep(max(0.0, started + tick * tick_s - time.monotonic()))
        ids += await queue.add_bulk(jobs[first : first + per_tick])
    return ids


async def run(args: argparse.Namespace) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = REPO / "bench" / "results" / f"profile-{stamp}"
    workdir.mkdir(parents=True)
    env = bench_env("profile", stamp, args.concurrency)
    prefix = env["PIPELINE_TOPIC_PREFIX"]
    os.environ.update(env)
    settings = Settings()
    raw = workdir / "py-spy.txt"
    completions = Completions(settings)
    try:
        async with (
            _workers(1, env, workdir) as [worker],
            BenchQueue.connect(settings) as queue,
        ):
            await completions.start()
            completions.workers = [worker]
            await completions.wait_for(await queue.add_bulk([NewJob(NOOP, NoopJob())]), 120)
            jobs = [NewJob(NOOP, NoopJob(seq=i)) for i in range(args.jobs)]
            ids: list[str] = []
            if not args.rate:
                for first in range(0, len(jobs), 1000):
                    ids += await queue.add_bulk(jobs[first : first + 1000])
            # Sampled without stopping the worker: stopping it (py-spy's default, needed for
            # native frames) lands the samples next to system calls and made decode_event look
            # three times as costly at a steady load as timing its calls showed. The event
            # loop's own C code counts as the Python frame that runs it
            # (Worker.execute_from_commandline).
            spy = (str(VENV_BIN / "py-spy"), "record", "--threads", "--nonblocking", "-f", "raw")
            with (workdir / "py-spy.log").open("ab") as log:
                recorder = await asyncio.create_subprocess_exec(
                    *spy, "-r", "100", "-p", str(worker.pid), "-o", str(raw), stdout=log, stderr=log
                )
            try:
                if args.rate:
                    ids = await steady(queue, jobs, args.rate)
                await completions.wait_for(ids, 600)
            finally:
                # py-spy writes its samples when interrupted, as after Ctrl-C.
                recorder.send_signal(signal.SIGINT)
                await recorder.wait()
                await completions.stop()
    finally:
        await delete_topics(settings, prefix)
    return summarise(raw, args.top) + f"\n\nraw samples: {raw.relative_to(REPO)}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--jobs", type=int, default=20_000, help="noop jobs")
    parser.add_argument(
        "--rate", type=int, default=0, help="send the jobs at this rate a second (default: at once)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="the bench queue's")
    parser.add_argument("--top", type=int, default=30, help="functions listed per table")
    print(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
