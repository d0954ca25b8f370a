"""Small pieces every benchmark uses: ports, child processes, peak memory, percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A port nobody listens on now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_port(port: int, timeout_s: float = 30.0) -> None:
    """Wait until something accepts connections on ``port``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on port {port}") from None
            await asyncio.sleep(0.1)
        else:
            writer.close()
            return


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set size so far (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def bench_env(name: str, stamp: str, concurrency: int) -> dict[str, str]:
    """Settings of a run's workers: topics and a group of the run's own, and the bench queue,
    which the worker registers from ``bench/jobs.py`` (the repository root on its path)."""
    return {
        "PIPELINE_TOPIC_PREFIX": f"{name}-{stamp}-",
        "PIPELINE_APP_ID": f"pipeline-{name}-{stamp}",
        "PIPELINE_JOB_MODULES": '["bench.jobs"]',
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "PIPELINE_QUEUES__BENCH__CONCURRENCY": str(concurrency),
    }


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # utime and stime are the 14th and 15th fields; the split starts at the 3rd.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def child(
    *argv: str, env: dict[str, str] | None = None, log: Path, cwd: Path = REPO
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ``argv`` with its output in ``log``; stop it (SIGTERM, then SIGKILL) on exit."""
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *argv, env={**os.environ, **(env or {})}, cwd=cwd, stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile of ``values`` (inclusive method)."""
    if len(values) == 1:
        return float(values[0])
    cuts = statistics.quantiles(values, n=1000, method="inclusive")
    return cuts[min(int(pct * 10) - 1, len(cuts) - 1)]
