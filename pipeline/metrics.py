"""Prometheus metrics of one worker, in its own registry, read from its tables when scraped.

- ``pipeline_job_events_total{queue,job,type}`` (counter): lifecycle records by type (added,
  completed, failed, retrying, dead_lettered, stalled, ...), from the counts table.
- ``pipeline_jobs{queue,job,state}`` (gauge): jobs in each state now (waiting, active, delayed,
  completed, failed, dead_lettered, ...), from the counts table.
- ``pipeline_job_latency_seconds{queue,job}``: enqueue-to-completed histogram, from the latency
  table.
- ``pipeline_consumer_lag{topic,partition}``: records after the committed offset.
- ``pipeline_queue_paused{queue}``: 1 while the queue's circuit breaker is open on this worker,
  or an operator paused the queue.
- ``pipeline_done_window_ms{quantile}`` (0.5, 0.99, 1): time from a handler's return to its
  outcome being durable, over this worker's last 10,000 jobs: the window in which a crash
  repeats a job.

Each key of a table lives on one worker, so summing the workers' series gives the whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from pipeline.monitoring import LATENCY_BUCKETS_S, split_count_key


class WorkerMetrics(Collector):
    """Reads counts, latency figures and lag when scraped, from functions the worker gives."""

    def __init__(
        self,
        counts: Callable[[], Mapping[str, int]],
        latency: Callable[[], Mapping[str, dict[str, Any]]],
        lag: Callable[[], Iterable[tuple[str, int, int]]],
        paused: Callable[[], Mapping[str, bool]] = dict,
        done_window_ms: Callable[[], Sequence[float]] = list,
        states: Callable[[], Mapping[str, int]] = dict,
    ) -> None:
        self._counts = counts
        self._states = states
        self._latency = latency
        self._lag = lag
        self._paused = paused
        self._done_window_ms = done_window_ms
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def collect(self) -> Iterable[Metric]:
        """The current figures."""
        events = CounterMetricFamily(
            "pipeline_job_events",
            "Lifecycle records by queue, job name and type.",
            labels=["queue", "job", "type"],
        )
        for key, count in self._counts().items():
            events.add_metric(list(split_count_key(key)), count)
        yield events

        jobs = GaugeMetricFamily(
            "pipeline_jobs", "Jobs in each state now.", labels=["queue", "job", "state"]
        )
        for key, count in self._states().items():
            jobs.add_metric(list(split_count_key(key)), count)
        yield jobs

        latency = HistogramMetricFamily(
            "pipeline_job_latency_seconds",
            "Time from enqueue to completed.",
            labels=["queue", "job"],
        )
        for key, figures in self._latency().items():
            queue, _, job = key.partition("/")
            cumulative, buckets = 0, []
            for bound in [*map(str, LATENCY_BUCKETS_S), "+Inf"]:
                cumulative += figures["buckets"].get(bound, 0)
                buckets.append((bound, cumulative))
            latency.add_metric([queue, job], buckets, figures["sum_ms"] / 1000)
        yield latency

        lag = GaugeMetricFamily(
            "pipeline_consumer_lag",
            "Records after the committed offset, per assigned partition.",
            labels=["topic", "partition"],
        )
        for topic, partition, behind in self._lag():
            lag.add_metric([topic, str(partition)], behind)
        yield lag

        paused = GaugeMetricFamily(
            "pipeline_queue_paused",
            "1 while the queue takes no new jobs: its breaker is open, or an operator paused it.",
            labels=["queue"],
        )
        for queue, is_open in self._paused().items():
            paused.add_metric([queue], int(is_open))
        yield paused

        window = sorted(self._done_window_ms())
        done = GaugeMetricFamily(
            "pipeline_done_window_ms",
            "From a handler's return to its outcome being durable (the crash-duplicate window).",
            labels=["quantile"],
        )
        for quantile in (0.5, 0.99, 1.0) if window else ():
            done.add_metric(
                [str(quantile)], window[min(int(quantile * len(window)), len(window) - 1)]
            )
        yield done

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
