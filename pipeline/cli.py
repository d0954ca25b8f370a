"""Command-line tools on the Faust CLI.

faust -A pipeline enqueue email otp-email-verification --data '{"email": ...}'
faust -A pipeline events [--follow] [--job ID]
"""

from __future__ import annotations

import json
import sys

from faust.cli import AppCommand, argument, option
from pydantic import ValidationError

from pipeline.application import app, settings
from pipeline.catalog import JOB_EVENTS, queue_named
from pipeline.errors import UnknownJobError, UnknownQueueError, describe_validation_error
from pipeline.events import EventDecodeError, decode_event
from pipeline.queues import Queue
from pipeline.reading import read_topic


@app.command(
    argument("queue"),
    argument("job_name"),
    option("--data", required=True, help="The job's data as JSON."),
    option("--job-id", default=None, help="Deduplicating id (default: a new UUID)."),
    option("--delay-s", type=float, default=None, help="Run no sooner than this many seconds."),
    option("--attempts", type=int, default=None, help="Attempts before dead-lettering."),
)
async def enqueue(
    self: AppCommand,
    queue: str,
    job_name: str,
    data: str,
    job_id: str | None,
    delay_s: float | None,
    attempts: int | None,
) -> None:
    """Validate and enqueue one job; prints its id."""
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise SystemExit(f"--data is not JSON: {exc}") from None
    try:
        async with Queue.connect(settings, queue=queue_named(queue)) as producer:
            new_id = await producer.add(
                job_name, payload, job_id=job_id, delay_s=delay_s, attempts=attempts
            )
    except ValidationError as exc:
        raise SystemExit(describe_validation_error(exc)) from None
    except (UnknownJobError, UnknownQueueError) as exc:
        raise SystemExit(str(exc)) from None
    print(new_id)


@app.command(
    option("--follow", is_flag=True, default=False, help="Keep printing new records."),
    option("--job", "job_id", default=None, help="Only the records of this job id."),
)
async def events(self: AppCommand, follow: bool, job_id: str | None) -> None:
    """Print lifecycle records from the beginning of job-events, one JSON object a line."""
    async for record in read_topic(settings, JOB_EVENTS.name(settings), follow=follow):
        _print_record(record.value, job_id)


def _print_record(value: bytes, job_id: str | None) -> None:
    try:
        event = decode_event(value)
    except EventDecodeError as exc:
        print(json.dumps({"error": str(exc)}), file=sys.stderr)
        return
    if job_id is None or event.job_id == job_id:
        print(json.dumps(event.to_dict()), flush=True)
