"""The monitor's HTTP API on the worker's web server (where the role runs the monitor): job
status, lists and counts, dead letters and the dashboard. What changes anything is in
``pipeline.web_actions``.

GET  /jobs/{job_id}                 the job's latest state (asked of the worker that owns it)
GET  /jobs/{job_id}/data            the job's data, its secret fields masked
GET  /jobs?queue=Q&state=S&limit=N  the most recently updated jobs, newest first
GET  /states                        jobs in each state now, by queue and job name
GET  /queues                        counts of lifecycle records by queue, job name and type
GET  /throughput                    jobs finished per minute over the last hour, by queue
GET  /lag                           the workers' consumer lag per partition of each job topic
GET  /workers                       every worker: role, partitions owned, last heartbeat
GET  /dlq/{queue}                   the queue's dead-lettered jobs, newest first
GET  /failures                      the latest failures
Lists and counts are gathered from every worker (``?local=1``: this worker's part only).
"""

from __future__ import annotations

import json
import time
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlencode

from faust.web import Request, Response, View

from pipeline.admin import group_lag
from pipeline.agents import monitor
from pipeline.agents.control import roster
from pipeline.agents.monitor import dead_lettered, job_status, recent_failures
from pipeline.application import app, settings
from pipeline.catalog import JOB_EVENTS, QUEUES
from pipeline.compat import tables
from pipeline.envelope import partition_for
from pipeline.events import now_ms
from pipeline.job_data import job_data
from pipeline.lifecycle import JobState
from pipeline.monitoring import merge_throughput, queue_counts
from pipeline.web_auth import GuardedView, authorization

MAX_LIST = 1000
MAX_OFFSET = 10_000


def _state(job_id: str) -> dict[str, Any] | None:
    """The job's state in this worker's job-status (the view's table_route brought the request
    to the worker that owns it)."""
    # job-events is keyed by job id: the job's state is in its id's partition.
    partition = partition_for(job_id, JOB_EVENTS.partition_count(settings))
    state: dict[str, Any] | None = tables.get(job_status, job_id.encode(), partition)
    return state


@app.page("/jobs/{job_id}/")
class JobView(GuardedView):
    """One job's state."""

    @app.table_route(table=job_status, match_info="job_id")
    async def get(self: View, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The state, or 404 when the owning worker's job-status has never seen it."""
        job_id = request.match_info["job_id"]
        state = _state(job_id)
        if state is None:
            return self.json({"error": f"no job {job_id}"}, status=404)
        return self.json(state)


@app.page("/jobs/{job_id}/data/")
class JobDataView(GuardedView):
    """One job's data, secrets masked."""

    @app.table_route(table=job_status, match_info="job_id")
    async def get(self: View, request: Request, *args: Any, **kwargs: Any) -> Response:
        """``{data, topic, partition, offset}``; 404 when the job or its record is not found."""
        job_id = request.match_info["job_id"]
        state = _state(job_id)
        found = await job_data(settings, state) if state else None
        if found is None:
            return self.json({"error": f"no record of job {job_id} found"}, status=404)
        return self.json(found)


@app.page("/jobs/")
class JobsView(GuardedView):
    """The most recently updated jobs, by queue and state, a page at a time."""

    async def get(self, request: Request) -> Response:
        """``[job state]`` newest first; ``?queue=``, ``?state=``, ``?limit=`` (50, at most
        1000) and ``?offset=`` (jobs to skip, at most 10,000) narrow it."""
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
            offset = min(max(int(request.query.get("offset", "0")), 0), MAX_OFFSET)
        except ValueError:
            return self.json({"error": "limit and offset are numbers"}, status=400)
        # Each worker's newest offset + limit: together they hold the page.
        found = monitor.jobs(queue, state, offset + limit)
        if request.query.get("local") != "1":
            wanted = {"queue": queue or "", "state": state or "", "limit": offset + limit}
            for peer in await _from_peers(f"/jobs/?local=1&{urlencode(wanted)}"):
                found.extend(peer)
        found.sort(key=monitor.newest_first, reverse=True)
        return self.json(found[offset : offset + limit])


@app.page("/queues/")
class QueuesView(GuardedView):
    """Counts of lifecycle records by queue, job name and type, gathered from every worker."""

    async def get(self, request: Request) -> Response:
        """``{queue: {job name: {type: count}}}``; ``?local=1`` for this worker's part only."""
        return self.json(await _gathered(request, "/queues/", monitor.counts()))


@app.page("/states/")
class StatesView(GuardedView):
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
class ThroughputView(GuardedView):
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
            async with app.http_client.get(
                f"{base}{path}", headers=authorization(settings)
            ) as peer:
                answers.append(await peer.json())
    return answers


@app.page("/lag/")
class LagView(GuardedView):
    """Records the workers have yet to finish, per partition of each queue's topic (Kafka's
    committed offsets of the group against the logs' ends)."""

    async def get(self, request: Request) -> Response:
        """``{queue: {partition: lag}}``, at most ``LAG_MAX_AGE_S`` old."""
        at, figures = _lag_asked
        if time.monotonic() - at > LAG_MAX_AGE_S:
            topics = {spec.topic.name(settings): name for name, spec in QUEUES.items()}
            lag = await group_lag(settings, topics)
            figures = {topics[topic]: parts for topic, parts in lag.items()}
            _lag_asked[:] = [time.monotonic(), figures]
        return self.json(figures)


# Asking Kafka takes an admin client and a consumer: dashboards polling every few seconds share
# one answer a while.
LAG_MAX_AGE_S = 2.0
_lag_asked: list[Any] = [0.0, {}]


@app.page("/workers/")
class WorkersView(GuardedView):
    """The workers, from their heartbeats."""

    async def get(self, request: Request) -> Response:
        """``[{worker_id, role, web, state, started_ms, at_ms, silent_s, partitions}]``."""
        return self.json(roster.workers())


@app.page("/dlq/{queue}/")
class DeadLettersView(GuardedView):
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
class FailuresView(GuardedView):
    """The latest failures, newest first (messages are redacted where they are made)."""

    async def get(self, request: Request) -> Response:
        """``[lifecycle record]``."""
        return self.json([event.to_dict() for event in reversed(recent_failures)])


@cache
def _dashboard_html() -> str:
    page = resources.files("pipeline").joinpath("templates/dashboard.html").read_text()
    states = [state.value for state in JobState if state != JobState.STALLED]
    return page.replace("__QUEUES__", json.dumps(list(QUEUES))).replace(
        "__STATES__", json.dumps(states)
    )


@app.page("/")
class DashboardView(GuardedView):
    """What Bull Board gives: queues with their depths and throughput, jobs by state, a page
    per job, dead letters, pausing, workers and lag."""

    async def get(self, request: Request) -> Response:
        """The page; its script draws each view and refreshes it every 3 s."""
        return self.html(_dashboard_html())
