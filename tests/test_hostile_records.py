"""Hostile records between good jobs, on a real worker, broker and SMTP server: the worker never
restarts an agent, every good job is sent once, every bad record is a dead letter with a
reason."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaProducer

from pipeline.envelope import JobEnvelope
from pipeline.events import EventType
from pipeline.settings import Settings
from tests.hostile import OTP, hostile_records
from tests.kafka_utils import EventLog, eventually, read_topic
from tests.smtp import SmtpSink
from tests.workers import WorkerProcess

pytestmark = pytest.mark.slow

StartWorker = Callable[..., Awaitable[WorkerProcess]]


def good(index: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    value = (
        f'{{"email": "good{index}@example.com", "customer_name": "Good", "otp": "{index:06d}"}}'
    ).encode()
    return value, JobEnvelope(f"good-{index}", OTP.decode(), 1, 0).headers()


async def test_hostile_records_between_good_jobs(
    start_worker: StartWorker,
    smtp_sink: SmtpSink,
    event_log: EventLog,
    pipeline_settings: Settings,
    kafka_bootstrap: str,
) -> None:
    worker = await start_worker(**smtp_sink.worker_env())
    topic = f"{pipeline_settings.topic_prefix}email"
    hostile = list(hostile_records())
    assert len(hostile) >= 30
    places: dict[tuple[int, int], str] = {}
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", max_request_size=2_000_000
    )
    await producer.start()
    try:
        for index, record in enumerate(hostile):
            value, headers = good(index)
            await producer.send_and_wait(topic, value, key=OTP, headers=headers)
            sent = await producer.send_and_wait(
                topic, record.value, key=record.key, headers=record.headers
            )
            places[sent.partition, sent.offset] = record.name
    finally:
        await producer.stop()

    good_ids = [f"good-{index}" for index in range(len(hostile))]
    await event_log.wait_for(good_ids, EventType.COMPLETED, timeout_s=120)
    for index in range(len(hostile)):
        assert len(smtp_sink.messages_to(f"good{index}@example.com")) == 1

    async def all_dead_lettered() -> list[dict[str, bytes]] | None:
        letters = await read_topic(kafka_bootstrap, f"{topic}-dead-letter")
        found = [dict(r.headers) for r in letters]
        return found if len(found) >= len(hostile) else None

    letters = await eventually(all_dead_lettered, timeout_s=60, what="every dead letter")
    by_place = {
        (int(h["dlq-original-partition"]), int(h["dlq-original-offset"])): h for h in letters
    }
    missing = [name for place, name in places.items() if place not in by_place]
    assert missing == []
    assert len(letters) == len(hostile)  # each once
    for place, name in places.items():
        assert by_place[place]["dlq-reason"], name
    # Only the good ones reached the server, and the worker never restarted an agent.
    assert len(smtp_sink.received) == len(hostile)
    assert worker.process is not None
    assert worker.process.returncode is None
    log = worker.log_text()
    assert "Traceback" not in log
    assert "Crashed" not in log
    # Injected line breaks were escaped: no forged line starts a line of the log.
    assert not re.search(r"^(ERROR|job_event) forged", log, re.MULTILINE)
