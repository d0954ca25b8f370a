"""Run the ``pipeline`` command as a real subprocess, as an operator would."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.settings import Settings
from tests.brokers import REPO
from tests.workers import this_tree

PIPELINE = str(Path(sys.executable).with_name("pipeline"))


@dataclass(frozen=True)
class Ran:
    """What one command did."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """Its standard output as JSON (``--json``)."""
        return json.loads(self.out)


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The ``PIPELINE_*`` variables that point the command at ``settings``' broker and topics,
    plus ``extra``."""
    return {
        "PIPELINE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "PIPELINE_TOPIC_PREFIX": settings.topic_prefix,
        **extra,
    }


async def stays_waiting(env: dict[str, str], job_id: str, seconds: float = 3.0) -> None:
    """Watch ``job_id`` for ``seconds``: it must stay waiting (a negative can only be watched
    for a while)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ran = await pipeline_cli(env, "jobs", "show", job_id, "--json")
        assert ran.code == 0, ran.err
        assert ran.json()["state"] == "waiting"
        await asyncio.sleep(0.5)


async def pipeline_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> Ran:
    """``pipeline *args`` with the ``PIPELINE_*`` variables of ``env`` and no others."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PIPELINE_")}
    clean.update((k, v) for k, v in env.items() if k.startswith("PIPELINE_"))
    process = await asyncio.create_subprocess_exec(
        PIPELINE, *args, cwd=REPO, env=this_tree(clean),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(
        process.communicate(stdin.encode() if stdin is not None else None), 120
    )
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())
