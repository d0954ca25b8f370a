"""Prometheus metrics of one worker, in its own registry (no process-wide global state).

- ``pipeline_job_events_total{queue,job,type}``: lifecycle records by type, from the counts
  table: jobs added, completed, failed, retried (``retrying``), dead-lettered, stalled.
- ``pipeline_job_latency_seconds{queue,job}``: enqueue-to-completed time of the jobs whose
  records this worker's partitions saw.
- ``pipeline_consumer_lag{topic,partition}``: records after the committed offset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class SnapshotCollector(Collector):
    """Reads counts and lag when scraped, from functions the worker supplies."""

    def __init__(
        self,
        counts: Callable[[], Mapping[str, int]],
        lag: Callable[[], Iterable[tuple[str, int, int]]],
    ) -> None:
        self._counts = counts
        self._lag = lag

    def collect(self) -> Iterable[Metric]:
        """The current figures."""
        events = GaugeMetricFamily(
            "pipeline_job_events_total",
            "Lifecycle records by queue, job name and type.",
            labels=["queue", "job", "type"],
        )
        for key, count in self._counts().items():
            queue, _, rest = key.partition("/")
            job, _, kind = rest.rpartition("/")
            events.add_metric([queue, job, kind], count)
        yield events
        lag = GaugeMetricFamily(
            "pipeline_consumer_lag",
            "Records after the committed offset, per assigned partition.",
            labels=["topic", "partition"],
        )
        for topic, partition, behind in self._lag():
            lag.add_metric([topic, str(partition)], behind)
        yield lag


class WorkerMetrics:
    """The metrics of one worker."""

    def __init__(
        self,
        counts: Callable[[], Mapping[str, int]],
        lag: Callable[[], Iterable[tuple[str, int, int]]],
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(SnapshotCollector(counts, lag))
        self.latency = Histogram(
            "pipeline_job_latency_seconds",
            "Time from enqueue to completed.",
            labelnames=["queue", "job"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )

    def observe_latency(self, queue: str, job: str, seconds: float) -> None:
        """Record one job's enqueue-to-completed time."""
        self.latency.labels(queue=queue, job=job).observe(max(seconds, 0.0))

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
