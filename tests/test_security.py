"""Authenticated and encrypted connections, on a broker of the module's own with the local
stack's SASL_SSL (SCRAM-SHA-512) and SSL (client certificate) listeners (``KAFKA_TLS=on``)."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from pipeline.catalog import EMAIL
from pipeline.errors import KafkaRefused
from pipeline.events import EventType
from pipeline.queues import EmailQueue
from pipeline.reading import read_topic
from pipeline.schemas import JobName, OtpEmailJob
from pipeline.settings import Settings
from tests.kafka_utils import EventLog
from tests.local_kafka import PLAIN, SASL_SSL, LocalKafka
from tests.smtp import SmtpSink
from tests.workers import WorkerProcess

StartWorker = Callable[..., Awaitable[WorkerProcess]]
OTP = JobName.OTP_EMAIL_VERIFICATION
TRACEBACK = re.compile(r"^Traceback \(most recent call last\)", re.MULTILINE)


@pytest.fixture(scope="module")
async def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalKafka]:
    broker = LocalKafka.on_free_ports(tmp_path_factory.mktemp("secure"), tls=True)
    await broker.up()
    try:
        yield broker
    finally:
        await broker.down()


def settings_for(env: dict[str, str], topic_prefix: str) -> Settings:
    """Settings from a kafka.sh client file, as a user's own service would read them."""
    fields = {
        name.removeprefix("PIPELINE_").lower(): value
        for name, value in env.items()
        if name.startswith("PIPELINE_")
    }
    return Settings(**fields, topic_prefix=topic_prefix)


async def test_a_worker_and_a_producer_work_over_sasl_ssl_and_the_password_is_never_logged(
    secure_kafka: LocalKafka,
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    topic_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    env = secure_kafka.client_env("sasl_ssl")
    password = env["PIPELINE_KAFKA_SASL_PASSWORD"]
    settings = settings_for(env, topic_prefix)
    worker = await start_worker(**env, **smtp_sink.worker_env())
    log = EventLog(settings)
    await log.start()
    try:
        async with EmailQueue.connect(settings) as queue:
            job_id = await queue.add(
                OTP, OtpEmailJob(email="tls@example.com", customer_name="T", otp="6543")
            )
        await log.wait_for([job_id], EventType.COMPLETED, timeout_s=60)
    finally:
        await log.stop()
    assert [tuple(r.recipients) for r in smtp_sink.received] == [("tls@example.com",)]
    assert "Authenticated as pipeline via SCRAM-SHA-512" in worker.log_text()
    assert password not in worker.log_text()
    assert password not in caplog.text


async def test_a_client_certificate_connects_over_ssl(
    secure_kafka: LocalKafka, topic_prefix: str
) -> None:
    settings = settings_for(secure_kafka.client_env("ssl"), topic_prefix)
    async with EmailQueue.connect(settings) as queue:
        await queue.add(OTP, OtpEmailJob(email="cert@example.com", customer_name="C", otp="1234"))
    [record] = [r async for r in read_topic(settings, EMAIL.topic.name(settings))]
    assert record.key == OTP.value.encode()


async def test_a_wrong_password_is_refused_with_one_line_that_does_not_hold_it(
    secure_kafka: LocalKafka,
    start_worker: StartWorker,
    topic_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {**secure_kafka.client_env("sasl_ssl"), "PIPELINE_KAFKA_SASL_PASSWORD": "Wr0ng-pw-77"}
    refused = r"Kafka at 127\.0\.0\.1:\d+ refused user 'pipeline' \(SCRAM-SHA-512\): check"
    with pytest.raises(KafkaRefused, match=refused):
        async with EmailQueue.connect(settings_for(env, topic_prefix)):
            pass
    worker = await start_worker(wait_ready=False, **env)
    await worker.wait_for_log(refused)
    assert worker.process is not None
    assert await worker.process.wait() != 0
    assert "Wr0ng-pw-77" not in worker.log_text()
    assert "Wr0ng-pw-77" not in caplog.text
    assert not TRACEBACK.search(worker.log_text()), worker.log_text()[-3000:]


async def test_a_client_without_tls_is_refused_with_one_line(
    secure_kafka: LocalKafka, topic_prefix: str
) -> None:
    # A plain client sent to the SASL_SSL listener, as a user who forgot the protocol would.
    plain = Settings(
        kafka_bootstrap_servers=f"127.0.0.1:{secure_kafka.port(1, SASL_SSL)}",
        topic_prefix=topic_prefix,
    )
    with pytest.raises(KafkaRefused, match=r"closed the connection at the first request: .*TLS"):
        async with EmailQueue.connect(plain):
            pass
    # And a TLS client sent to the plain listener.
    env = {
        **secure_kafka.client_env("sasl_ssl"),
        "PIPELINE_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{secure_kafka.port(1, PLAIN)}",
    }
    with pytest.raises(KafkaRefused, match=r"did not complete a TLS handshake"):
        async with EmailQueue.connect(settings_for(env, topic_prefix)):
            pass
