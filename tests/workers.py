"""Run ``faust -A pipeline worker`` as a real subprocess and watch its log."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.brokers import REPO


def this_tree(env: dict[str, str]) -> dict[str, str]:
    """``env`` for a console script (``faust``, ``pipeline``) that must run this tree's code,
    whichever clone the virtualenv's editable install points at: a console script does not put
    its working directory on sys.path."""
    paths = [str(REPO), env.get("PYTHONPATH", "")]
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, paths))}


@dataclass
class WorkerProcess:
    """One worker process, its environment and its log file."""

    env: dict[str, str]
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    _log_offset: int = field(default=0, repr=False)

    async def start(self) -> None:
        """Launch the worker; returns at once (see ``wait_ready``)."""
        faust = str(Path(sys.executable).with_name("faust"))
        log = self.log_path.open("ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                faust, "-A", "pipeline", "worker", "--loglevel", "info",
                cwd=REPO, env=this_tree(self.env), stdout=log, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        finally:
            log.close()

    def log_text(self) -> str:
        """Everything the worker has logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_for_log(self, pattern: str, timeout_s: float = 60.0) -> re.Match[str]:
        """Wait until a line matching ``pattern`` appears; fail if the worker exits first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout_s
        while True:
            match = regex.search(self.log_text())
            if match:
                return match
            if self.process is not None and self.process.returncode is not None:
                raise AssertionError(
                    f"worker exited ({self.process.returncode}) before logging {pattern!r}:\n"
                    + self.log_text()[-4000:]
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"worker did not log {pattern!r} in {timeout_s}s:\n" + self.log_text()[-4000:]
                )
            await asyncio.sleep(0.1)

    async def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Wait until the worker has joined its group and taken its partitions."""
        await self.wait_for_log(r"\[\^Worker\]: Ready", timeout_s)

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 60.0) -> int:
        """Send ``sig`` and wait for the exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), timeout_s)


def free_port() -> int:
    """A TCP port the OS says is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def worker_env(
    bootstrap: str, topic_prefix: str, app_id: str, data_dir: Path, web_port: int
) -> dict[str, str]:
    """The environment of a worker isolated to one test's topics and consumer group."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    env.update(
        PIPELINE_KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        PIPELINE_TOPIC_PREFIX=topic_prefix,
        PIPELINE_APP_ID=app_id,
        PIPELINE_DATA_DIR=str(data_dir),
        PIPELINE_WEB_PORT=str(web_port),
        # Every attempt gets its active record, before its handler starts: the tests check whole
        # lifecycles, which with the default would depend on how fast each handler was.
        PIPELINE_ACTIVE_AFTER_MS="0",
        PYTHONUNBUFFERED="1",
    )
    return env
