"""Prometheus metrics of one worker, in its own registry, read from its tables when scraped.

- ``pipeline_job_events_total{queue,job,type}``: lifecycle records by type (added, completed,
  failed, retrying, dead_lettered, stalled, ...), from the counts table.
- ``pipeline_job_latency_seconds{queue,job}``: enqueue-to-completed histogram, from the latency
  table.
- ``pipeline_consumer_lag{topic,partition}``: records after the committed offset.

Each key of a table lives on one worker, so summing the workers' series gives the whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.monitoring import LATENCY_BUCKETS_S, split_count_key


class WorkerMetrics(Collector):
    """Reads counts, latency figures and lag when scraped, from functions the worker gives."""

    def __init__(
        self,
        counts: Callable[[], Mapping[str, int]],
        latency: Callable[[], Mapping[str, dict[str, Any]]],
        lag: Callable[[], Iterable[tuple[str, int, int]]],
    ) -> None:
        self._counts = counts
        self._latency = latency
        self._lag = lag
        self.registry = CollectorRegistry()
        self.registry.register(self)

    def collect(self) -> Iterable[Metric]:
        """The current figures."""
        events = GaugeMetricFamily(
            "pipeline_job_events_total",
            "Lifecycle records by queue, job name and type.",
            labels=["queue", "job", "type"],
        )
        for key, count in self._counts().items():
            events.add_metric(list(split_count_key(key)), count)
        yield events

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

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
