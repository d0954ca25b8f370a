"""The monitor's HTTP API on the worker's web server (where the role runs the monitor): job
status, lists and counts, dead letters and the dashboard. What changes anything is in
``pipeline.web_actions``.

GET  /jobs/{job_id}                 the job's latest state (asked of the worker that owns it)
GET  /jobs?queue=Q&state=S&limit=N  the most recently updated jobs, newest first
GET  /states                        jobs in each state now, by queue and job name
GET  /queues                        counts of lifecycle records by queue, job name and type
GET  /throughput                    jobs finished per minute over the last hour, by queue
GET  /dlq/{queue}                   the queue's dead-lettered jobs, newest first
GET  /failures                      the latest failures
Lists and counts are gathered from every worker (``?local=1``: this worker's part only).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from faust.web import Request, Response, View

from pipeline.agents import monitor
from pipeline.agents.monitor import dead_lettered, job_status, recent_failures
from pipeline.application import app, settings
from pipeline.catalog import JOB_EVENTS, QUEUES
from pipeline.compat import tables
from pipeline.envelope import partition_for
from pipeline.events import now_ms
from pipeline.lifecycle import JobState
from pipeline.monitoring import merge_throughput, queue_counts

MAX_LIST = 1000


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


@app.page("/jobs/")
class JobsView(View):
    """The most recently updated jobs, by queue and state."""

    async def get(self, request: Request) -> Response:
        """``[job state]`` newest first; ``?queue=``, ``?state=`` and ``?limit=`` (50, at most
        1000) narrow it."""
        queue = request.query.get("queue") or None
        state = request.query.get("state") or None
        if queue is not None and queue not in QUEUES:
            known = ", ".join(QUEUES)
            return self.json({"error": f"no queue {queue} (known: {known})"}, status=404)
        if state is not None and state not in set(JobState):
            known = ", ".join(JobState)
            return self.json({"error": f"no state {state} (known: {known})"}, status=400)
        try:
            limit = min(max(int(request.query.get("limit", "50")), 1), MAX_LIST)
        except ValueError:
            return self.json({"error": "limit is not a number"}, status=400)
        found = monitor.jobs(queue, state, limit)
        if request.query.get("local") != "1":
            for peer in await _from_peers(f"/jobs/?local=1&{request.query_string}"):
                found.extend(peer)
        found.sort(key=lambda entry: -int(entry.get("updated_ms") or 0))
        return self.json(found[:limit])


@app.page("/queues/")
class QueuesView(View):
    """Counts of lifecycle records by queue, job name and type, gathered from every worker."""

    async def get(self, request: Request) -> Response:
        """``{queue: {job name: {type: count}}}``; ``?local=1`` for this worker's part only."""
        return self.json(await _gathered(request, "/queues/", monitor.counts()))


@app.page("/states/")
class StatesView(View):
    """Jobs in each state now by queue and job name, gathered from every worker."""

    async def get(self, request: Request) -> Response:
        """``{queue: {job name: {state: count}}}``; ``?local=1`` for this worker's part only."""
        return self.json(await _gathered(request, "/states/", monitor.states()))


async def _gathered(
    request: Request, path: str, counts: dict[str, int]
) -> dict[str, dict[str, dict[str, int]]]:
    if request.query.get("local") != "1":
        # Each count lives on the worker that holds its partition of the counts table.
        for peer in await _from_peers(f"{path}?local=1"):
            for queue, jobs in peer.items():
                for job, kinds in jobs.items():
                    for kind, count in kinds.items():
                        key = f"{queue}/{job}/{kind}"
                        counts[key] = counts.get(key, 0) + count
    return queue_counts(counts)


@app.page("/throughput/")
class ThroughputView(View):
    """Jobs finished per minute over the last hour, gathered from every worker."""

    async def get(self, request: Request) -> Response:
        """``{queue: [{minute_ms, completed, failed, dead_lettered}]}``, oldest first."""
        figures = monitor.throughput.figures(now_ms())
        if request.query.get("local") != "1":
            for peer in await _from_peers("/throughput/?local=1"):
                figures = merge_throughput(figures, peer)
        return self.json(figures)


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


@app.page("/dlq/{queue}/")
class DeadLettersView(View):
    """A queue's dead letters, newest first."""

    async def get(self, request: Request, queue: str) -> Response:
        """``[{job_id, queue, job_name, reason, error_class, attempts, max_attempts,
        failed_at_ms, redrive, partition}]``, from the monitor's dead-letters table."""
        if queue not in QUEUES:
            return self.json({"error": f"no queue {queue}"}, status=404)
        letters = dead_lettered(queue)
        if request.query.get("local") != "1":
            # Each worker lists the partitions it owns.
            for peer in await _from_peers(f"/dlq/{queue}/?local=1"):
                letters.extend(peer)
        return self.json(sorted(letters, key=lambda item: -item["failed_at_ms"]))


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
