"""Shared fixtures: one real Kafka broker per session; own topics and group per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from pipeline.admin import delete_topics, ensure_topics
from pipeline.catalog import all_topics
from pipeline.settings import Settings
from tests.brokers import Broker, BrokerUnavailable, provide_broker
from tests.kafka_utils import EventLog
from tests.s3 import S3Server
from tests.smtp import SmtpSink
from tests.workers import WorkerProcess, free_port, worker_env

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Broker]:
    """A real broker for the whole session. Under CI a missing broker fails the run."""
    try:
        with provide_broker() as broker:
            yield broker
    except BrokerUnavailable as exc:
        if IN_CI:
            pytest.fail(f"no Kafka broker: {exc}")
        pytest.skip(f"no Kafka broker: {exc}")


@pytest.fixture
def kafka_bootstrap(kafka_broker: Broker) -> str:
    """The broker's bootstrap servers."""
    return kafka_broker.bootstrap_servers


@pytest.fixture
def test_id() -> str:
    """A short id unique to this test: names its topics and consumer group."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def topic_prefix(test_id: str, kafka_bootstrap: str) -> AsyncIterator[str]:
    """The prefix of every topic this test's workers and producers use. The test's topics
    (Faust's changelogs too) are deleted after it: thousands of leftover topics slow every
    client's metadata refresh, and the benchmarks share the broker."""
    prefix = f"t-{test_id}-"
    yield prefix
    await delete_topics(Settings(kafka_bootstrap_servers=kafka_bootstrap), prefix)


@pytest.fixture
def app_id(test_id: str) -> str:
    """This test's Faust app id, so its consumer group is its own."""
    return f"pipeline-t-{test_id}"


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A plain aiokafka producer, as a user's own service would have."""
    client = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await client.start()
    yield client
    await client.stop()


@pytest.fixture
async def kafka_admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """An admin client on the session's broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    yield admin
    await admin.close()


@pytest.fixture
async def start_worker(
    kafka_bootstrap: str, topic_prefix: str, app_id: str, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[WorkerProcess]]]:
    """Factory: start a real worker on this test's topics; every one started is stopped after."""
    started: list[WorkerProcess] = []

    async def start(*, wait_ready: bool = True, **extra_env: str) -> WorkerProcess:
        index = len(started)
        env = worker_env(
            kafka_bootstrap, topic_prefix, app_id, tmp_path / f"worker-{index}", free_port()
        )
        env.update(extra_env)
        worker = WorkerProcess(env=env, log_path=tmp_path / f"worker-{index}.log")
        started.append(worker)
        await worker.start()
        if wait_ready:
            await worker.wait_ready()
        return worker

    yield start
    for worker in started:
        if worker.process is not None and worker.process.returncode is None:
            worker.process.kill()
            await worker.process.wait()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A running SMTP server on a free port, stopped after the test."""
    sink = SmtpSink(port=free_port())
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def pipeline_settings(kafka_bootstrap: str, topic_prefix: str) -> Settings:
    """Settings a producer in this test uses: the test's broker and topics."""
    return Settings(kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)


@pytest.fixture
async def event_log(pipeline_settings: Settings) -> AsyncIterator[EventLog]:
    """Every lifecycle record of this test, collected as it arrives (creates the test's topics
    first, so none is auto-created with the broker's default partitions)."""
    await ensure_topics(pipeline_settings, all_topics())
    log = EventLog(pipeline_settings)
    await log.start()
    yield log
    await log.stop()


@pytest.fixture
def s3_server() -> Iterator[S3Server]:
    """A running S3-compatible server on a free port, stopped after the test."""
    server = S3Server(port=free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    """An empty staging folder for media sources."""
    folder = tmp_path / "staging"
    folder.mkdir()
    return folder


@pytest.fixture
def bucket(s3_server: S3Server, test_id: str) -> str:
    """A bucket of this test's own: moto keeps every bucket in this process for the session."""
    name = f"media-{test_id}"
    s3_server.client().create_bucket(Bucket=name)
    return name
