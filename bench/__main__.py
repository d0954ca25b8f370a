"""``python -m bench``: run every benchmark against the local broker and print one table.

The figures are measured side by side in one run; the table goes to stdout and to
``bench/results/`` (not committed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from bench import baselines, ours
from bench.support import REPO, bench_env
from pipeline.admin import delete_topics
from pipeline.settings import Settings

MIB = 1024 * 1024


@dataclass
class Row:
    """One figure: ours, each baseline's, and whether the target holds."""

    figure: str
    ours: str
    raw: str = "-"
    bullmq: str = "-"
    celery: str = "-"
    ratio: str = "-"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _compared(figure: str, ours_value: float, **others: float | None) -> Row:
    """A row of rates with ours as a multiple of each baseline's."""
    ratio = ", ".join(f"{ours_value / v:.2f}x {k}" for k, v in others.items() if v)
    return Row(figure, _rate(ours_value), *(_rate(v) for v in others.values()), ratio)


def machine() -> str:
    """Cores, CPU model and Python of this machine."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown CPU",
    )
    return f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}"


async def run(args: argparse.Namespace) -> tuple[str, dict[str, float]]:
    """One run of every benchmark: its table, and its key figures by name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    workdir = REPO / "bench" / "results" / stamp
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        **bench_env("bench", stamp, args.concurrency),
        "PIPELINE_EMAIL__CONCURRENCY": str(args.concurrency),
        # The limiter protects a real mail provider; the sink here needs none.
        "PIPELINE_EMAIL__RATE_LIMIT_JOBS": "1000000",
        # One SMTP connection per concurrent job, as BullMQ's workers would each hold theirs.
        "PIPELINE_SMTP_POOL_SIZE": str(args.concurrency),
    }
    prefix = env["PIPELINE_TOPIC_PREFIX"]
    os.environ.update(env)
    settings = Settings()

    try:
        print(f"pipeline: {args.jobs} noop jobs, {args.email_jobs} email jobs, "
              f"{args.rate}/s for {args.seconds:g} s ...", flush=True)  # fmt: skip
        mine = await ours.measure(
            settings,
            env,
            jobs=args.jobs,
            email_jobs=args.email_jobs,
            rate=args.rate,
            seconds=args.seconds,
            workdir=workdir,
            workers=args.workers,
        )
        print("pipeline: the noop load on 2 workers ...", flush=True)
        (workdir / "two-workers").mkdir()
        two = await ours.measure_noop(
            settings, env, jobs=args.jobs, workdir=workdir / "two-workers", workers=2
        )
        print("pipeline: the noop load with the monitor in its own process ...", flush=True)
        (workdir / "monitor-apart").mkdir()
        apart = await ours.measure_noop(
            settings,
            env,
            jobs=args.jobs,
            workdir=workdir / "monitor-apart",
            workers=args.workers,
            monitor_apart=True,
        )
        print("raw aiokafka loop ...", flush=True)
        raw = await baselines.raw_aiokafka(settings, prefix, args.jobs, workdir / "raw.log")
        async with baselines.redis_server(workdir) as redis_port:
            print("BullMQ ...", flush=True)
            bull = await baselines.bullmq(
                redis_port, args.jobs, args.concurrency, workdir / "bullmq.log"
            )
            print("Celery ...", flush=True)
            cel = await baselines.celery(
                redis_port, args.jobs, args.celery_concurrency, workdir / "celery.log"
            )
    finally:
        # The run's topics would otherwise stay on the broker and slow every metadata refresh.
        await delete_topics(settings, prefix)

    noop = mine.noop
    half = max(mine.latencies, key=lambda each: each.rate)
    rows = [
        _compared(
            f"noop jobs/s, first enqueue to last completed ({args.jobs:,} jobs)",
            noop.noop_per_s,
            raw=raw.process_per_s,
            BullMQ=bull.process_per_s,
            Celery=cel.process_per_s,
        ),
        _compared(
            "noop jobs/s on 2 worker processes",
            two.noop_per_s,
            raw=raw.process_per_s,
            BullMQ=bull.process_per_s,
            Celery=None,
        ),
        _compared(
            "noop jobs/s, the monitor in a process of its own (`PIPELINE_ROLE` jobs + monitor)",
            apart.noop_per_s,
            raw=raw.process_per_s,
            BullMQ=bull.process_per_s,
            Celery=None,
        ),
        Row(
            "worker CPU per noop job, us (user + system, every worker)",
            f"{noop.cpu_us_per_job:.0f}",
        ),
        Row(
            "CPU per noop job with the monitor apart, us: jobs worker / monitor",
            f"{apart.cpu_us_per_job:.0f} / {apart.monitor_cpu_us_per_job or 0:.0f}",
        ),
        Row(
            "records written per noop job (every topic of the run, changelogs included)",
            f"{noop.records_per_job:.1f}",
        ),
        Row(
            "monitor: job-events records uncommitted at the last completion / s to catch up "
            "(in the worker; apart)",
            f"{noop.monitor_behind:,} / {noop.monitor_catch_up_s:.1f}; "
            f"{apart.monitor_behind:,} / {apart.monitor_catch_up_s:.1f}",
        ),
        _compared(
            "enqueue jobs/s (add_bulk / producer / addBulk / delay)",
            noop.enqueue_per_s,
            raw=raw.enqueue_per_s,
            BullMQ=bull.enqueue_per_s,
            Celery=cel.enqueue_per_s,
        ),
        Row(
            f"OTP email jobs/s to an SMTP sink ({args.email_jobs:,} jobs)", _rate(mine.email_per_s)
        ),
        *(
            Row(
                f"{name} ms, enqueue to completed at {each.rate}/s for {args.seconds:g} s "
                f"({each.jobs:,} jobs{', half the noop capacity' if each is half else ''})",
                f"{value:.1f}",
            )
            for each in mine.latencies
            for name, value in each.ms.items()
        ),
        Row(
            "worker peak RSS, MiB (noop, email, latency; the largest worker)",
            f"{mine.peak_rss_bytes / MIB:.0f}",
        ),
    ]
    targets = [
        ("noop rate >= 1.0x BullMQ", noop.noop_per_s >= bull.process_per_s),
        ("noop rate, monitor apart >= 1.0x BullMQ", apart.noop_per_s >= bull.process_per_s),
        ("noop rate >= 0.25x raw aiokafka", noop.noop_per_s >= 0.25 * raw.process_per_s),
        ("add_bulk >= 1.0x addBulk", noop.enqueue_per_s >= (bull.enqueue_per_s or 0)),
        (f"p99 <= 50 ms at half capacity ({half.rate}/s)", half.ms["p99"] <= 50),
        ("peak RSS <= 250 MB", mine.peak_rss_bytes <= 250 * 1000 * 1000),
    ]
    header = ("figure", "pipeline", "raw aiokafka", "BullMQ", "Celery", "pipeline vs")
    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} on {machine()}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *(
            f"| {r.figure} | {r.ours} | {r.raw} | {r.bullmq} | {r.celery} | {r.ratio} |"
            for r in rows
        ),
        "",
        "Targets: " + "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in targets),
        "",
        f"Settings: pipeline {settings.topic_partitions} partitions, {args.workers} worker "
        "process(es) (uvloop, log level warn), "
        f"concurrency {args.concurrency} (noop and email, no email rate limit, as many SMTP "
        "connections), acks=all, linger "
        f"{settings.kafka_producer_linger_ms} ms, add_bulk batches of {ours.BATCH}, "
        "Faust's commit every 2.8 s; raw aiokafka: "
        f"{raw.settings}; BullMQ {bull.settings}, addBulk batches of 1000; Celery {cel.settings}.",
    ]
    table = "\n".join(lines)
    (REPO / "bench" / "results" / f"{stamp}.md").write_text(table + "\n")
    (REPO / "bench" / "results" / "latest.md").write_text(table + "\n")
    figures = {
        "noop jobs/s, 1 worker": noop.noop_per_s,
        "noop, x BullMQ": noop.noop_per_s / bull.process_per_s,
        "noop, x raw aiokafka": noop.noop_per_s / raw.process_per_s,
        "noop jobs/s, 2 workers": two.noop_per_s,
        "noop jobs/s, monitor apart": apart.noop_per_s,
        "noop monitor apart, x BullMQ": apart.noop_per_s / bull.process_per_s,
        "BullMQ jobs/s": bull.process_per_s,
        "raw aiokafka jobs/s": raw.process_per_s,
        "worker CPU per noop job, us": noop.cpu_us_per_job,
        "jobs worker CPU per noop job (monitor apart), us": apart.cpu_us_per_job,
        "monitor CPU per noop job (apart), us": apart.monitor_cpu_us_per_job or 0.0,
        "records written per noop job": noop.records_per_job,
        "monitor: records uncommitted at the last completion": noop.monitor_behind,
        "monitor: s to catch up": noop.monitor_catch_up_s,
        "add_bulk jobs/s": noop.enqueue_per_s,
        "add_bulk, x addBulk": noop.enqueue_per_s / (bull.enqueue_per_s or 1),
        "OTP email jobs/s": mine.email_per_s,
        "p99 ms at half capacity": half.ms["p99"],
        "half capacity, jobs/s": half.rate,
        "worker peak RSS, MiB": mine.peak_rss_bytes / MIB,
    }
    return table, figures


def summary(runs: list[dict[str, float]]) -> str:
    """Min, median and max of each key figure over ``runs``."""
    lines = [
        f"Key figures over {len(runs)} runs ({time.strftime('%Y-%m-%d %H:%M %Z')}, {machine()}):",
        "",
        "| figure | min | median | max |",
        "|---|---|---|---|",
    ]
    for name in runs[0]:
        values = sorted(run[name] for run in runs)
        digits = 2 if max(values) < 10 else 1 if max(values) < 100 else 0
        cells = (f"{v:,.{digits}f}" for v in (values[0], statistics.median(values), values[-1]))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000, help="noop jobs per system")
    parser.add_argument("--email-jobs", type=int, default=3_000, help="OTP email jobs")
    parser.add_argument("--rate", type=int, default=500, help="jobs/s of the latency run")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the latency run")
    parser.add_argument("--concurrency", type=int, default=8, help="ours and BullMQ's")
    parser.add_argument("--workers", type=int, default=1, help="our worker processes")
    parser.add_argument(
        "--celery-concurrency", type=int, default=os.cpu_count() or 2, help="prefork processes"
    )
    parser.add_argument(
        "--runs", type=int, default=1, help="whole runs; with more than one, a min/median/max table"
    )
    args = parser.parse_args()
    figures = []
    for _ in range(args.runs):
        table, each = asyncio.run(run(args))
        figures.append(each)
        print()
        print(table)
    if args.runs > 1:
        text = summary(figures)
        (REPO / "bench" / "results" / "latest-summary.md").write_text(text + "\n")
        print()
        print(text)


if __name__ == "__main__":
    main()
