"""A job's data as the dashboard's job page shows it: its record found on its queue's topic,
read with its job model, every secret field masked. Free of Faust.

Job states do not keep the data (it may hold secrets, and it is already on the topic): the
record is looked up in the job's partition from the time it was added (or due), with Kafka's
time index, looking at a bounded number of records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from pipeline.catalog import QUEUES
from pipeline.envelope import JOB_ID, partition_for
from pipeline.errors import UnknownJobError, describe_validation_error
from pipeline.handlers import registry
from pipeline.reading import find_record
from pipeline.settings import Settings

# Records are stamped when the producer makes them, a little before the added record's time.
EARLIER_MS = 5_000


async def job_data(settings: Settings, state: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{data, topic, partition, offset}`` of the job whose state is ``state`` (``data`` with
    secrets masked, or ``error`` if it no longer reads as its job); None if not found."""
    queue = QUEUES.get(str(state.get("queue")))
    job_id = str(state["job_id"])
    if queue is None:
        return None
    topic = queue.topic.name(settings)
    partition = partition_for(job_id, queue.topic.partition_count(settings))

    def is_the_job(record: ConsumerRecord[bytes, bytes]) -> bool:
        return any(k == JOB_ID and v == job_id.encode() for k, v in record.headers)

    record = None
    # A delayed job reaches its queue's topic when it is due.
    for since_ms in (state.get("added_ms"), state.get("due_at_ms")):
        if since_ms and record is None:
            record = await find_record(
                settings, topic, partition, int(since_ms) - EARLIER_MS, is_the_job
            )
    if record is None:
        return None
    found: dict[str, Any] = {"topic": topic, "partition": partition, "offset": record.offset}
    try:
        job_type = registry.get(str(state.get("job_name")), queue)
        model = job_type.model.model_validate_json(record.value or b"")
    except UnknownJobError as exc:
        return {**found, "error": str(exc)}
    except ValidationError as exc:
        return {**found, "error": describe_validation_error(exc)}
    # A plain dump masks every secret field (pipeline.schemas.jobs.JobModel).
    return {**found, "data": model.model_dump(mode="json")}
