"""deploy/kafka/kafka.sh: the broker the project provisions for itself, on its own ports here."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.brokers import KAFKA_SH
from tests.local_kafka import LocalKafka

pytestmark = pytest.mark.slow


def kafka_sh(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(KAFKA_SH), *args], env=env, capture_output=True, text=True, timeout=180
    )


@pytest.fixture
def second_broker_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """kafka.sh's environment for a second local broker with its own ports and state (no TLS
    listeners); stopped afterwards. Its plain port is given the way a user gives it, as the
    worker's PIPELINE_KAFKA_BOOTSTRAP_SERVERS, which the script reads too."""
    env = LocalKafka.on_free_ports(tmp_path / "kafka").env()
    env["PIPELINE_KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{env.pop('KAFKA_PORT')}"
    yield env
    kafka_sh(env, "down")


async def test_up_twice_down_and_up_again_keeps_the_data(second_broker_env: dict[str, str]) -> None:
    env = second_broker_env
    bootstrap = env["PIPELINE_KAFKA_BOOTSTRAP_SERVERS"]

    first = kafka_sh(env, "up")
    assert first.returncode == 0, first.stderr
    assert f"ready on {bootstrap}" in first.stderr
    pid = (Path(env["KAFKA_STATE_DIR"]) / "kafka.pid").read_text().strip()

    second = kafka_sh(env, "up")
    assert second.returncode == 0, second.stderr
    assert f"already running (pid {pid})" in second.stderr

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait("kept", b"survives a restart", partition=0)
    finally:
        await producer.stop()

    stopped = kafka_sh(env, "down")
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped" in stopped.stderr
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)
    assert kafka_sh(env, "status").returncode == 3

    again = kafka_sh(env, "up")
    assert again.returncode == 0, again.stderr
    assert "resolving" not in again.stderr
    assert "formatting" not in again.stderr

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition("kept", 0)])
        batch = await consumer.getmany(timeout_ms=10_000)
    finally:
        await consumer.stop()
    assert [record.value for records in batch.values() for record in records] == [
        b"survives a restart"
    ]
    # Kafka's own console consumer, from the tools jar resolved with the broker.
    consumed = kafka_sh(env, "consume", "kept", "--max-messages", "1", "--timeout-ms", "60000")
    assert consumed.returncode == 0, consumed.stderr
    assert "survives a restart" in consumed.stdout
    assert "Partition:0" in consumed.stdout
