"""A Kafka of a test's own, beside the session's broker: ``deploy/kafka/kafka.sh`` on free ports
and its own state folder, as one node or a cluster of three (node N on each port + 10 x (N - 1)),
with or without its SASL_SSL and SSL listeners. The jars are the local stack's."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.brokers import KAFKA_SH, REPO

# Ports of node 1 relative to its base: plain, controller, SASL_SSL, SSL.
PLAIN, CONTROLLER, SASL_SSL, SSL = range(4)


class KafkaScriptFailed(RuntimeError):
    """kafka.sh exited with an error."""


@dataclass(frozen=True)
class LocalKafka:
    """One kafka.sh instance: ``nodes`` nodes, node 1's ports from ``base_port``."""

    state_dir: Path
    base_port: int
    nodes: int = 1
    tls: bool = False

    @classmethod
    def on_free_ports(cls, state_dir: Path, nodes: int = 1, tls: bool = False) -> LocalKafka:
        """An instance whose every port is free right now."""
        # Below the kernel's ephemeral range: a port found free there can still be taken by an
        # outgoing connection before the broker binds it (seen: a node of a cluster of three
        # failing with "Address already in use" once in 20 runs).
        low = min(_ephemeral_start(), 60_000)
        for _ in range(200):
            base = random.randrange(10_000, low - 100, 100)
            if all(_free(base + offset + 10 * n) for offset in range(4) for n in range(nodes)):
                return cls(state_dir, base, nodes, tls)
        raise KafkaScriptFailed("no block of free ports found")

    def bootstrap(self, listener: int = PLAIN) -> str:
        """Every node's address on ``listener``, comma separated."""
        return ",".join(f"127.0.0.1:{self.port(n, listener)}" for n in range(1, self.nodes + 1))

    def port(self, node: int, listener: int = PLAIN) -> int:
        """Node ``node``'s port on ``listener``."""
        return self.base_port + listener + 10 * (node - 1)

    def env(self) -> dict[str, str]:
        """The script's environment for this instance."""
        return {
            **os.environ,
            "PYTHON": sys.executable,
            "KAFKA_NODES": str(self.nodes),
            "KAFKA_TLS": "on" if self.tls else "off",
            "KAFKA_STATE_DIR": str(self.state_dir),
            "KAFKA_PORT": str(self.port(1, PLAIN)),
            "KAFKA_CONTROLLER_PORT": str(self.port(1, CONTROLLER)),
            "KAFKA_SASL_SSL_PORT": str(self.port(1, SASL_SSL)),
            "KAFKA_SSL_PORT": str(self.port(1, SSL)),
            "KAFKA_HEAP": "384m" if self.nodes > 1 else "512m",
            "KAFKA_STOP_TIMEOUT_S": "20",
        }

    async def run(self, *args: str) -> str:
        """Run ``kafka.sh ARGS`` to its end; its stderr (the script's log), or an error."""
        process = await asyncio.create_subprocess_exec(
            "bash", str(KAFKA_SH), *args, env=self.env(), cwd=REPO,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
        text = (out + err).decode(errors="replace")
        if process.returncode != 0:
            raise KafkaScriptFailed(f"kafka.sh {' '.join(args)} failed:\n{text}")
        return text

    async def up(self) -> None:
        await self.run("up")

    async def down(self) -> None:
        await self.run("down")

    async def kill(self, node: int) -> None:
        """SIGKILL node ``node``: a crash."""
        await self.run("kill", str(node))

    async def start(self, node: int) -> None:
        """Start node ``node`` again; returns once the cluster lists it."""
        await self.run("start", str(node))

    def client_env(self, name: str) -> dict[str, str]:
        """The PIPELINE_* settings kafka.sh wrote for its ``name`` listener (sasl_ssl or ssl)."""
        lines = (self.state_dir / "tls" / f"{name}.env").read_text().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)


def _ephemeral_start() -> int:
    """The first port the kernel hands out to outgoing connections (Linux), else 32768."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
