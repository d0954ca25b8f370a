"""The monitor's HTTP API on the worker's web server (where the role runs the monitor): job
status, queue counts, dead letters and the dashboard.

GET  /jobs/{job_id}                 the job's latest state (asked of the worker that owns it)
GET  /queues                        counts of lifecycle records by queue, job name and type
GET  /dlq/{queue}                   the queue's dead-lettered jobs, newest first
POST /dlq/{queue}/{job_id}/redrive  send one back to its queue
Lists and counts are gathered from every worker (``?local=1``: this worker's part only).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from faust.web import Request, Response, View

from pipeline.agents.monitor import counts as monitor_counts
from pipeline.agents.monitor import dead_lettered, job_status, recent_failures
from pipeline.agents.runtime import FaustPublisher
from pipeline.application import app, settings
from pipeline.catalog import JOB_EVENTS, QUEUES, QueueSpec
from pipeline.compat import tables
from pipeline.deadletters import redrive
from pipeline.envelope import partition_for
from pipeline.monitoring import queue_counts


@app.page("/jobs/{job_id}/")
class JobView(View):
    """One job's state."""

    @app.table_route(table=job_status, match_info="job_id")
    async def get(self: View, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The state, or 404 when the owning worker's job-status has never seen it."""
        job_id = request.match_info["job_id"]
        # job-events is keyed by job id: the job's state is in its id's partition.
        partition = partition_for(job_id, JOB_EVENTS.partition_count(settings))
        state = tables.get(job_status, job_id.encode(), partition)
        if state is None:
            return self.json({"error": f"no job {job_id}"}, status=404)
        return self.json(state)


@app.page("/queues/")
class QueuesView(View):
    """Counts by queue, job name and type, gathered from every worker."""

    async def get(self, request: Request) -> Response:
        """``{queue: {job name: {type: count}}}``; ``?local=1`` for this worker's part only."""
        counts = monitor_counts()
        if request.query.get("local") != "1":
            # Each count lives on the worker that holds its partition of the counts table.
            for peer in await _from_peers("/queues/?local=1"):
                for queue, jobs in peer.items():
                    for job, kinds in jobs.items():
                        for kind, count in kinds.items():
                            key = f"{queue}/{job}/{kind}"
                            counts[key] = counts.get(key, 0) + count
        return self.json(queue_counts(counts))


async def _from_peers(path: str) -> list[Any]:
    """``path``'s JSON from every other worker of the group that runs the monitor (holds
    partitions of its tables): workers with role ``jobs`` serve none of this API."""
    own = str(app.conf.canonical_url).rstrip("/")
    monitor_changelog = job_status.changelog_topic.get_topic_name()
    answers = []
    for url, held in app.router.tables_metadata().items():
        base = str(url).rstrip("/")
        if base != own and monitor_changelog in held:
            async with app.http_client.get(f"{base}{path}") as peer:
                answers.append(await peer.json())
    return answers


def _queue(name: str) -> QueueSpec | None:
    return QUEUES.get(name)


@app.page("/dlq/{queue}/")
class DeadLettersView(View):
    """A queue's dead letters, newest first."""

    async def get(self, request: Request, queue: str) -> Response:
        """``[{job_id, queue, job_name, reason, error_class, attempts, max_attempts,
        failed_at_ms, redrive, partition}]``, from the monitor's dead-letters table."""
        if _queue(queue) is None:
            return self.json({"error": f"no queue {queue}"}, status=404)
        letters = dead_lettered(queue)
        if request.query.get("local") != "1":
            # Each worker lists the partitions it owns.
            for peer in await _from_peers(f"/dlq/{queue}/?local=1"):
                letters.extend(peer)
        return self.json(sorted(letters, key=lambda item: -item["failed_at_ms"]))


@app.page("/dlq/{queue}/{job_id}/redrive/")
class RedriveView(View):
    """Send one dead letter back to its queue."""

    async def post(self, request: Request, queue: str, job_id: str) -> Response:
        """202 with the redrive count, or 404 when the job is not dead-lettered."""
        name = _queue(queue)
        if name is None:
            return self.json({"error": f"no queue {queue}"}, status=404)
        sent = await redrive(settings, name, job_id, FaustPublisher())
        if sent is None:
            return self.json({"error": f"job {job_id} is not dead-lettered"}, status=404)
        return self.json(sent, status=202)


@app.page("/failures/")
class FailuresView(View):
    """The latest failures, newest first (messages are redacted where they are made)."""

    async def get(self, request: Request) -> Response:
        """``[lifecycle record]``."""
        return self.json([event.to_dict() for event in reversed(recent_failures)])


@cache
def _dashboard_html() -> str:
    page = resources.files("pipeline").joinpath("templates/dashboard.html").read_text()
    return page.replace("__QUEUES__", json.dumps(list(QUEUES)))


@app.page("/")
class DashboardView(View):
    """What Bull Board gave: queues, recent failures, dead letters with a redrive button."""

    async def get(self, request: Request) -> Response:
        """The page; its script refreshes the figures every 2 s."""
        return self.html(_dashboard_html())
