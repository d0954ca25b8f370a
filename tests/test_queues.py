"""The producer API on a real broker: what a failed send and a bad job id leave behind."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from pipeline.events import EventType
from pipeline.queues import EmailQueue
from pipeline.schemas import OtpEmailJob
from pipeline.settings import Settings
from tests.kafka_utils import EventLog, read_topic

JOB = OtpEmailJob(email="ann@example.com", customer_name="Ann", otp="482913")


async def test_a_failed_send_does_not_mark_the_job_added(
    pipeline_settings: Settings, event_log: EventLog, kafka_bootstrap: str
) -> None:
    async with EmailQueue.connect(pipeline_settings) as queue:
        send_all = queue._send_all
        calls = []

        async def failing_once(records: Any) -> None:
            calls.append(1)
            if len(calls) == 1:
                raise KafkaTimeoutError("the broker did not answer")
            await send_all(records)

        queue._send_all = failing_once  # type: ignore[method-assign]
        with pytest.raises(KafkaTimeoutError):
            await queue.add_otp_email_job(JOB, job_id="retry-me")
        # The caller retries with the same id: this time it is sent, not taken for a repeat.
        assert await queue.add_otp_email_job(JOB, job_id="retry-me") == "retry-me"
        # A third add of the same id from this process sends nothing.
        assert await queue.add_otp_email_job(JOB, job_id="retry-me") == "retry-me"
    await event_log.wait_for(["retry-me"], EventType.ADDED)
    records = await read_topic(kafka_bootstrap, f"{pipeline_settings.topic_prefix}email")
    assert [dict(r.headers)["job-id"] for r in records] == [b"retry-me"]


@pytest.mark.parametrize("job_id", ["", "a\nb", "x" * 201, "tab\there"])
async def test_job_ids_that_could_collide_or_forge_logs_are_refused(
    pipeline_settings: Settings, job_id: str
) -> None:
    async with EmailQueue.connect(pipeline_settings) as queue:
        with pytest.raises(ValueError, match="job id"):
            await queue.add_otp_email_job(JOB, job_id=job_id)
