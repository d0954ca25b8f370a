"""The ``pipeline`` command: enqueue jobs, look at them, work the dead letters, pause queues.

A console script, not ``faust -A pipeline ...``: a Faust command loads the whole worker (the
app, every agent and table) before it runs, 2-4 s a call, and the producer side never imports
the worker. Here what lives in Kafka is read and written in Kafka (enqueue, events, dead
letters, pauses, lag: no worker needs to be up) and what only the monitor knows (a job's state,
lists by state, counts, throughput) is asked of a worker's web API (``PIPELINE_API_URL``).

Every command takes ``--json`` (one JSON document, or one a line for ``events``) and
``--verbose`` (a traceback with an error). Errors are one line on stderr. Exit codes: 0 done,
1 refused (bad data, unknown job, settings), 2 wrong usage, 3 not found, 4 Kafka or the web
API did not answer.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
import traceback
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote

import click
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from pipeline import api, handlers
from pipeline.admin import group_lag
from pipeline.catalog import JOB_EVENTS, QUEUES, queue_named
from pipeline.deadletters import describe, discard, latest_dead_letters, redrive, redrive_all
from pipeline.errors import (
    CommandError,
    ConfigurationError,
    JobError,
    NotFound,
    Unreachable,
    describe_validation_error,
)
from pipeline.events import EventDecodeError, decode_event, now_ms
from pipeline.lifecycle import JobState
from pipeline.pauses import read_pauses, set_paused
from pipeline.queues import ProducerPublisher, Queue
from pipeline.reading import read_topic
from pipeline.registry import prepare as prepare_registry
from pipeline.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")

# The columns of ``pipeline queues``: the states a job waits or ends in, as BullMQ counts them.
DEPTHS = (
    JobState.WAITING,
    JobState.ACTIVE,
    JobState.DELAYED,
    JobState.COMPLETED,
    JobState.FAILED,
    JobState.DEAD_LETTERED,
)
RATE_MINUTES = 5


class Output:
    """How a command prints: JSON or text, and whether errors carry their traceback."""

    def __init__(self, as_json: bool, verbose: bool) -> None:
        self.as_json = as_json
        self.verbose = verbose

    def show(self, value: Any, text: Callable[[Any], str]) -> None:
        """``value`` as JSON, or as ``text(value)`` reads."""
        click.echo(json.dumps(value, indent=2) if self.as_json else text(value))


def command(group: click.Group, name: str) -> Callable[[Callable[..., None]], click.Command]:
    """A command of ``group`` with ``--json`` and ``--verbose``, whose errors end the process
    with one line and their exit code."""

    def decorate(body: Callable[..., None]) -> click.Command:
        @click.option("--json", "as_json", is_flag=True, help="Print JSON.")
        @click.option("--verbose", is_flag=True, help="With an error, print its traceback.")
        @functools.wraps(body)
        def run(as_json: bool, verbose: bool, **kwargs: Any) -> None:
            out = Output(as_json, verbose)
            # aiokafka logs each failed connection; the one line below says it, or --verbose.
            logging.basicConfig(level=logging.INFO if verbose else logging.CRITICAL)
            try:
                body(out, **kwargs)
            except click.ClickException:
                raise  # wrong usage: click says so, with exit code 2
            except Exception as exc:  # every error is one line; --verbose adds the traceback
                _fail(out, exc)

        return group.command(name)(run)

    return decorate


def _fail(out: Output, exc: Exception) -> None:
    if out.verbose:
        traceback.print_exception(exc, file=sys.stderr)
    message, code = _explain(exc)
    click.echo(f"pipeline: {message}", err=True)
    sys.exit(code)


def _explain(exc: Exception) -> tuple[str, int]:
    if isinstance(exc, CommandError):
        return str(exc), exc.exit_code
    if isinstance(exc, ValidationError):
        # Settings or a job's data; never the input itself (it may be a secret).
        return describe_validation_error(exc), 1
    if isinstance(exc, ConfigurationError | JobError):
        return str(exc), 1
    if isinstance(exc, KafkaError | OSError):
        return (
            f"Kafka did not answer ({exc}); is it up, and PIPELINE_KAFKA_BOOTSTRAP_SERVERS right?",
            Unreachable.exit_code,
        )
    return f"{type(exc).__name__}: {exc} (--verbose shows where)", 1


def _run(work: Callable[P, Coroutine[Any, Any, T]], *args: P.args, **kwargs: P.kwargs) -> T:
    return asyncio.run(work(*args, **kwargs))


def _settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        raise ConfigurationError(describe_validation_error(exc, "settings (PIPELINE_*)")) from None
    # A deployment's own job types, as the worker loads them.
    handlers.load_job_modules(settings.job_modules)
    return settings


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Background jobs on Kafka: enqueue, inspect, redrive, pause.

    Settings come from the environment (PIPELINE_*), as the worker's do.
    """


# -- enqueue and events ------------------------------------------------------------------------


def _read_data(data: str) -> Any:
    """``--data``: JSON itself, ``@file`` or ``-`` (standard input)."""
    if data == "-":
        text, where = sys.stdin.read(), "standard input"
    elif data.startswith("@"):
        try:
            text, where = Path(data[1:]).read_text(), data[1:]
        except OSError as exc:
            raise CommandError(f"cannot read --data file {data[1:]}: {exc.strerror}") from None
    else:
        text, where = data, "--data"
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CommandError(f"{where} is not JSON: {exc}") from None


@command(main, "enqueue")
@click.argument("queue")
@click.argument("job_name")
@click.option(
    "--data", required=True, help="The job's data: JSON, @FILE for a file's, - for stdin's."
)
@click.option("--job-id", default=None, help="Deduplicating id (default: a new one).")
@click.option("--delay-s", type=float, default=None, help="Run no sooner than this many seconds.")
@click.option("--attempts", type=int, default=None, help="Attempts before dead-lettering.")
def enqueue(
    out: Output,
    queue: str,
    job_name: str,
    data: str,
    job_id: str | None,
    delay_s: float | None,
    attempts: int | None,
) -> None:
    """Validate and enqueue one job; prints its id."""
    payload = _read_data(data)
    settings = _settings()
    spec = queue_named(queue)

    async def add() -> str:
        async with Queue.connect(settings, queue=spec) as producer:
            return await producer.add(
                job_name, payload, job_id=job_id, delay_s=delay_s, attempts=attempts
            )

    new_id = _run(add)
    out.show({"job_id": new_id}, lambda value: str(value["job_id"]))


@command(main, "events")
@click.option("--follow", is_flag=True, help="Keep printing new records.")
@click.option("--job", "job_id", default=None, help="Only the records of this job id.")
def events(out: Output, follow: bool, job_id: str | None) -> None:
    """Print lifecycle records from the beginning of job-events, one JSON object a line."""
    settings = _settings()

    async def follow_events() -> None:
        await prepare_registry(settings)  # records in the registry's framing name its ids
        async for record in read_topic(settings, JOB_EVENTS.name(settings), follow=follow):
            if job_id is not None and record.key != job_id.encode():
                continue
            try:
                event = decode_event(record.value or b"")
            except EventDecodeError as exc:
                click.echo(json.dumps({"error": str(exc)}), err=True)
                continue
            click.echo(json.dumps(event.to_dict()))

    _run(follow_events)


# -- jobs --------------------------------------------------------------------------------------


@main.group()
def jobs() -> None:
    """A job's state, and jobs by state (from a worker's web API)."""


def _job_text(job: dict[str, Any]) -> str:
    started, finished = job.get("started_ms"), job.get("finished_ms")
    took = f" ({finished - started} ms)" if started and finished else ""
    lines = [
        f"job       {job['job_id']}",
        f"queue     {job.get('queue')} / {job.get('job_name')}",
        f"state     {job.get('state')} (attempt {job.get('attempt')} of {job.get('max_attempts')})",
        f"added     {_when(job.get('added_ms'))}",
        f"started   {_when(started)}" + (f" on {job['worker_id']}" if job.get("worker_id") else ""),
        f"finished  {_when(finished)}{took}",
    ]
    if job.get("due_at_ms"):
        lines.append(f"due       {_when(job['due_at_ms'])}")
    if job.get("redrive"):
        lines.append(f"redriven  {job['redrive']} time(s)")
    if job.get("last_error_class"):
        lines.append(f"error     {job['last_error_class']}: {job.get('last_error')}")
    for name, value in sorted((job.get("result") or {}).items()):
        lines.append(f"result    {name}={value}")
    for entry in job.get("history", []):
        what = f"{entry.get('error_class')}: {entry.get('error')}" if entry.get("error") else ""
        if entry.get("due_at_ms"):
            what = f"next try at {_when(entry['due_at_ms'])}"
        attempt = f"attempt {entry['attempt']}" if entry.get("attempt") else ""
        lines.append(f"  {_when(entry['at_ms'])}  {entry['type']:<13} {attempt:<10} {what}")
    return "\n".join(lines)


@command(jobs, "show")
@click.argument("job_id")
def jobs_show(out: Output, job_id: str) -> None:
    """One job: its state, attempts, last error and result (never its data)."""
    settings = _settings()
    job = api.get(settings, f"/jobs/{quote(job_id, safe='')}/")
    out.show(job, _job_text)


@command(jobs, "list")
@click.option("--queue", default=None, help="Only this queue's jobs.")
@click.option(
    "--state",
    type=click.Choice([state.value for state in JobState]),
    default=None,
    help="Only jobs in this state.",
)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0, 10_000), default=0, help="Jobs to skip.")
def jobs_list(out: Output, queue: str | None, state: str | None, limit: int, offset: int) -> None:
    """The most recently updated jobs, newest first, a page at a time."""
    settings = _settings()
    if queue is not None:
        queue_named(queue)
    found = api.get(settings, "/jobs/", queue=queue, state=state, limit=limit, offset=offset)

    def text(entries: list[dict[str, Any]]) -> str:
        if not entries:
            return "no jobs"
        rows = [["JOB", "QUEUE", "NAME", "STATE", "ATTEMPT", "UPDATED"]]
        rows += [
            [
                entry["job_id"],
                str(entry.get("queue")),
                str(entry.get("job_name")),
                str(entry.get("state")),
                f"{entry.get('attempt')}/{entry.get('max_attempts')}",
                _when(entry.get("updated_ms")),
            ]
            for entry in entries
        ]
        return _table(rows)

    out.show(found, text)


# -- queues ------------------------------------------------------------------------------------


@command(main, "queues")
def queues(out: Output) -> None:
    """Every queue: jobs in each state now, consumer lag, jobs done a minute, paused or not."""
    settings = _settings()

    async def from_kafka() -> tuple[dict[str, dict[int, int]], dict[str, dict[str, Any]]]:
        topics = [spec.topic.name(settings) for spec in QUEUES.values()]
        return await group_lag(settings, topics), (await read_pauses(settings)).paused()

    lag, paused = _run(from_kafka)
    try:
        states = api.get(settings, "/states/")
        throughput = api.get(settings, "/throughput/")
    except Unreachable as exc:
        # Kafka's part stands on its own; say what is missing, and end with its exit code.
        states = throughput = None
        missing: Unreachable | None = exc
    else:
        missing = None
    since = now_ms() - RATE_MINUTES * 60_000
    report: dict[str, Any] = {}
    for name, spec in QUEUES.items():
        by_job = (states or {}).get(name, {})
        depth = {
            state.value: sum(jobs.get(state.value, 0) for jobs in by_job.values())
            for state in DEPTHS
        }
        finished = sum(
            count
            for minute in (throughput or {}).get(name, [])
            if minute["minute_ms"] >= since
            for kind, count in minute.items()
            if kind != "minute_ms"
        )
        report[name] = {
            "states": depth if states is not None else None,
            "lag": sum(lag.get(spec.topic.name(settings), {}).values()),
            "lag_by_partition": lag.get(spec.topic.name(settings), {}),
            "done_per_minute": round(finished / RATE_MINUTES, 1)
            if throughput is not None
            else None,
            "paused": name in paused,
        }

    def text(value: dict[str, Any]) -> str:
        rows = [["QUEUE", *(s.value.upper() for s in DEPTHS), "LAG", "DONE/MIN", "PAUSED"]]
        for name, figures in value.items():
            depth = figures["states"] or {}
            rows.append(
                [
                    name,
                    *(str(depth.get(s.value, "?")) for s in DEPTHS),
                    str(figures["lag"]),
                    str(
                        figures["done_per_minute"]
                        if figures["done_per_minute"] is not None
                        else "?"
                    ),
                    "yes" if figures["paused"] else "no",
                ]
            )
        return _table(rows)

    out.show(report, text)
    if missing is not None:
        raise missing


# -- dead letters ------------------------------------------------------------------------------


@main.group()
def dlq() -> None:
    """A queue's dead letters: list, redrive, discard (straight from Kafka)."""


def _letters_text(letters: list[dict[str, Any]]) -> str:
    if not letters:
        return "no dead letters"
    rows = [["JOB", "NAME", "FAILED AT", "ATTEMPTS", "ERROR"]]
    rows += [
        [
            letter["job_id"],
            letter["job_name"],
            _when(letter["failed_at_ms"]),
            f"{letter['attempts']}/{letter['max_attempts']}",
            f"{letter['error_class']}: {letter['reason']}",
        ]
        for letter in letters
    ]
    return _table(rows)


@command(dlq, "list")
@click.argument("queue")
@click.option("--job-name", default=None, help="Only this job's.")
def dlq_list(out: Output, queue: str, job_name: str | None) -> None:
    """The queue's dead letters, newest first."""
    settings = _settings()
    spec = queue_named(queue)
    letters = _run(latest_dead_letters, settings, spec)
    listed = [
        describe(spec, job_id, record)
        for job_id, record in letters.items()
        if job_name is None or record.key == job_name.encode()
    ]
    out.show(sorted(listed, key=lambda letter: -letter["failed_at_ms"]), _letters_text)


def _one_or_all_letters(body: Callable[..., None]) -> Callable[..., None]:
    """The arguments of a command on one dead letter or all of a queue's."""
    for option in reversed(
        (
            click.argument("queue"),
            click.argument("job_id", required=False),
            click.option("--all", "every", is_flag=True, help="Every dead letter of the queue."),
            click.option("--job-name", default=None, help="With --all: only this job's."),
        )
    ):
        body = option(body)
    return body


def _one_or_all(job_id: str | None, every: bool) -> None:
    if job_id is not None and every:
        raise click.UsageError("give a JOB_ID or --all, not both")
    if job_id is None and not every:
        raise click.UsageError("give a JOB_ID, or --all for every dead letter")


@command(dlq, "redrive")
@_one_or_all_letters
def dlq_redrive(
    out: Output, queue: str, job_id: str | None, every: bool, job_name: str | None
) -> None:
    """Send dead letters back to their queue with fresh attempts."""
    _one_or_all(job_id, every)
    settings = _settings()
    spec = queue_named(queue)

    async def send() -> list[dict[str, Any]]:
        async with ProducerPublisher.connect(settings) as publisher:
            if job_id is None:
                return await redrive_all(settings, spec, publisher, job_name=job_name)
            sent = await redrive(settings, spec, job_id, publisher)
            if sent is None:
                raise NotFound(f"job {job_id} is not dead-lettered in {queue}")
            return [sent]

    sent = _run(send)
    out.show({"redriven": sent}, lambda value: f"redriven: {len(value['redriven'])}")


@command(dlq, "discard")
@_one_or_all_letters
def dlq_discard(
    out: Output, queue: str, job_id: str | None, every: bool, job_name: str | None
) -> None:
    """Drop dead letters for good: their jobs end ``skipped`` and no redrive finds them."""
    _one_or_all(job_id, every)
    settings = _settings()
    spec = queue_named(queue)

    async def drop() -> list[str]:
        async with ProducerPublisher.connect(settings) as publisher:
            ids = None if job_id is None else [job_id]
            gone = await discard(settings, spec, publisher, job_ids=ids, job_name=job_name)
        if job_id is not None and not gone:
            raise NotFound(f"job {job_id} is not dead-lettered in {queue}")
        return gone

    gone = _run(drop)
    out.show({"discarded": gone}, lambda value: f"discarded: {len(value['discarded'])}")


# -- pausing -----------------------------------------------------------------------------------


@main.group("queue")
def queue_group() -> None:
    """Pause or resume a queue on every worker."""


def _pausing(paused: bool) -> Callable[[Output, str], None]:
    def change(out: Output, name: str) -> None:
        settings = _settings()
        spec = queue_named(name)

        async def write() -> None:
            async with ProducerPublisher.connect(settings) as publisher:
                await set_paused(
                    settings, spec, publisher, paused=paused, by=f"cli:{settings.worker_id}"
                )

        _run(write)
        out.show(
            {"queue": name, "paused": paused},
            lambda value: f"{name} {'paused' if paused else 'resumed'}",
        )

    return change


queue_pause = command(queue_group, "pause")(click.argument("name")(_pausing(True)))
queue_pause.help = "Every worker stops taking the queue's new jobs (running ones finish)."
queue_resume = command(queue_group, "resume")(click.argument("name")(_pausing(False)))
queue_resume.help = "Every worker takes the queue's jobs again."
