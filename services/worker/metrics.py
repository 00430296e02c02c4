"""The worker's Prometheus metrics (``/metrics`` on ``WATCHKEEPER_WEB_PORT``), in a registry
of the worker's own: what it consumed, rejected and raised, how long batches take, how old
each partition's checkpoint is, and how far behind the broker it is.

Label values are bounded: topics, partitions, reasons and signal kinds are fixed sets (no
model id, no alert id).

>>> m = WorkerMetrics()
>>> m.messages.labels(topic="wk.predictions").inc(3)
>>> b"watchkeeper_worker_messages_total{topic=\\"wk.predictions\\"} 3.0" in m.exposition()
True
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class _CheckpointAge(Collector):
    """Per partition, how long what it processed has gone without a checkpoint, as of the
    scrape (0 when nothing since the last one: an idle partition is not stale)."""

    def __init__(self, ages: Callable[[], dict[int, float]]) -> None:
        self.ages = ages

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("watchkeeper_worker_checkpoint_age_seconds",
                                   "seconds the partition's processed input has gone "
                                   "without a checkpoint of its monitor state",
                                   labels=["partition"])
        for partition, age in sorted(self.ages().items()):
            family.add_metric([str(partition)], age)
        yield family


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.messages = Counter("watchkeeper_worker_messages", "Kafka messages consumed, by "
                                "topic", ["topic"], registry=r)
        self.events = Counter("watchkeeper_worker_events", "events processed, by outcome "
                              "(accepted, duplicate, rejected)", ["outcome"], registry=r)
        self.rejected = Counter("watchkeeper_worker_rejected", "events rejected, by reason",
                                ["reason"], registry=r)
        self.signals = Counter("watchkeeper_worker_signals", "signals the monitors raised, "
                               "by kind", ["kind"], registry=r)
        self.pages = Counter("watchkeeper_worker_pages", "pages triage queued", registry=r)
        self.alerts = Counter("watchkeeper_worker_alerts", "alerts triage opened (a condition "
                              "first seen)", registry=r)
        self.resolved = Counter("watchkeeper_worker_incidents_resolved",
                                "incidents triage resolved", registry=r)
        self.batch_seconds = Histogram(
            "watchkeeper_worker_batch_seconds", "time to process a fetch (monitors, triage "
            "and its transaction)", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.dropped_outputs = Counter("watchkeeper_worker_dropped_outputs",
                                       "dead letters and signals the broker can never take "
                                       "(too large), dropped (the store keeps them)",
                                       ["topic"], registry=r)
        self.store_failures = Counter("watchkeeper_worker_store_failures",
                                      "batches the database could not take (retried)",
                                      registry=r)
        self.lag = Gauge("watchkeeper_worker_consumer_lag", "records not read yet (the "
                         "high watermark less the position)", ["topic", "partition"],
                         registry=r)
        self.ready = Gauge("watchkeeper_worker_ready", "1 while the worker does its work, 0 "
                           "while its database is away", registry=r)
        self.ready.set(1)
        ProcessCollector(registry=r)  # memory, CPU, open files of the process

    def watch_checkpoints(self, ages: Callable[[], dict[int, float]]) -> None:
        """Report each partition's checkpoint age, ``ages()`` at each scrape."""
        self.registry.register(_CheckpointAge(ages))

    def forget(self, topics: Iterable[str], partitions: Iterable[int]) -> None:
        """Drop the per-partition series of partitions no longer assigned here."""
        for topic in topics:
            for partition in partitions:
                with contextlib.suppress(KeyError):
                    self.lag.remove(topic, str(partition))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
