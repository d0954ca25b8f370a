"""The open endpoints of every worker, whatever its role: ``/metrics`` (the job side's figures,
lag on the job topics, paused queues, the done window, where jobs run; the monitor's, lifecycle
record counts and latency, where the monitor runs) and the probes ``/livez`` and ``/readyz``.
None carries a job's data, and none asks for ``PIPELINE_WEB_TOKEN``: Prometheus and the
orchestrator's probes carry no token."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, cast

from faust.web import Request, Response, View

from pipeline.agents.control import pauses
from pipeline.agents.runtime import runners
from pipeline.application import app, settings
from pipeline.catalog import QUEUES
from pipeline.metrics import WorkerMetrics


def _lag() -> list[tuple[str, int, int]]:
    consumer = app.consumer
    committed = getattr(consumer, "_committed_offset", {})
    queue_topics = {spec.topic.name(settings) for spec in QUEUES.values()}
    return [
        (tp.topic, tp.partition, max((consumer.highwater(tp) or 0) - (committed.get(tp) or 0), 0))
        for tp in consumer.assignment()
        if tp.topic in queue_topics
    ]


def _monitor_figures() -> tuple[
    Callable[[], Mapping[str, int]],
    Callable[[], Mapping[str, int]],
    Callable[[], Mapping[str, dict[str, Any]]],
]:
    """The monitor's counts, jobs by state and latency figures, or none where the role runs no
    monitor (its module declares the monitor's tables, which a jobs-only worker must not hold)."""
    if not settings.runs_monitor:
        return dict, dict, dict
    monitor = importlib.import_module("pipeline.agents.monitor")
    return monitor.counts, monitor.states, monitor.latency


counts, states, latency = _monitor_figures()
metrics = WorkerMetrics(
    counts=counts,
    states=states,
    latency=latency,
    lag=_lag,
    paused=lambda: {
        queue: runner.breaker.is_open or pauses.is_paused(queue)
        for queue, runner in runners.items()
    },
    done_window_ms=lambda: [ms for runner in runners.values() for ms in runner.done_window_ms],
)


@app.page("/metrics")
class MetricsView(View):
    """Prometheus scrape endpoint."""

    async def get(self, request: Request) -> Response:
        """The worker's metrics in the Prometheus text format."""
        return self.bytes(metrics.render(), content_type="text/plain; version=0.0.4")


@app.page("/livez")
class LiveView(View):
    """Liveness: the worker's event loop answers (a wedged loop times the probe out)."""

    async def get(self, request: Request) -> Response:
        """200 while the loop runs."""
        return self.json({"live": True})


@app.page("/readyz")
class ReadyView(View):
    """Readiness: the worker is in its consumer group and has recovered its tables, so the
    partitions it holds are being worked; 503 during a rebalance or a table recovery."""

    async def get(self, request: Request) -> Response:
        """200 when ready, 503 with the reason otherwise."""
        if app.rebalancing:
            return self.json({"ready": False, "reason": "rebalancing"}, status=503)
        # TableManager.recovery is public, but TableManagerT does not declare it.
        recovery = cast(Any, app.tables).recovery
        if recovery.in_recovery or not recovery.completed.is_set():
            return self.json({"ready": False, "reason": "recovering tables"}, status=503)
        return self.json({"ready": True})
