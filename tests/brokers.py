"""Where the test suite's Kafka broker comes from.

In order: ``PIPELINE_KAFKA_BOOTSTRAP_SERVERS`` when set; a testcontainers Kafka when a Docker
engine answers; else the project's own local broker (``deploy/kafka/kafka.sh``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"
WAIT_READY = REPO / "deploy" / "kafka" / "wait_ready.py"


class BrokerUnavailable(RuntimeError):
    """No broker could be found or started."""


@dataclass(frozen=True)
class Broker:
    """A running broker the tests may use."""

    bootstrap_servers: str
    source: str  # "env", "testcontainers" or "local"


def wait_ready(bootstrap: str, timeout_s: float) -> bool:
    """Whether a broker at ``bootstrap`` answers metadata requests within ``timeout_s``."""
    probe = [sys.executable, str(WAIT_READY), "--bootstrap", bootstrap, "--timeout", str(timeout_s)]
    return subprocess.run(probe, check=False, capture_output=True).returncode == 0


def docker_engine_answers() -> bool:
    """Whether a Docker engine (not just the client) answers ``GET /_ping``."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    address: str | tuple[str, int]
    if host.startswith("unix://"):
        family, address = socket.AF_UNIX, host.removeprefix("unix://")
    elif host.startswith("tcp://"):
        name, _, port = host.removeprefix("tcp://").partition(":")
        family, address = socket.AF_INET, (name, int(port or 2375))
    else:
        return False
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(3)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            status_line = sock.recv(64)
    except OSError:
        return False
    return status_line.startswith(b"HTTP/1.") and b" 200 " in status_line


def local_broker_running() -> bool:
    """Whether the project's local broker process is up and answering."""
    status = subprocess.run(
        ["bash", str(KAFKA_SH), "status"], check=False, capture_output=True, env=_script_env()
    )
    return status.returncode == 0


def _script_env() -> dict[str, str]:
    return {**os.environ, "PYTHON": sys.executable}


@contextlib.contextmanager
def provide_broker() -> Iterator[Broker]:
    """Yield a ready broker; stop it afterwards if this call started it."""
    configured = os.environ.get("PIPELINE_KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        if not wait_ready(configured, 60):
            raise BrokerUnavailable(
                f"PIPELINE_KAFKA_BOOTSTRAP_SERVERS={configured} does not answer"
            )
        yield Broker(configured, "env")
        return
    if docker_engine_answers():
        from testcontainers.community.kafka import KafkaContainer  # type: ignore[import-untyped]

        with KafkaContainer("confluentinc/cp-kafka:7.9.0").with_kraft() as container:
            yield Broker(container.get_bootstrap_server(), "testcontainers")
        return
    started_here = not local_broker_running()
    up = subprocess.run(
        ["bash", str(KAFKA_SH), "up"],
        check=False,
        capture_output=True,
        text=True,
        env=_script_env(),
    )
    if up.returncode != 0:
        raise BrokerUnavailable(f"deploy/kafka/kafka.sh up failed:\n{up.stderr}")
    try:
        yield Broker("127.0.0.1:9092", "local")
    finally:
        if started_here:
            subprocess.run(["bash", str(KAFKA_SH), "down"], check=False, env=_script_env())
