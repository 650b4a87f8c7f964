"""Prometheus metrics of one daemon instance, on a registry of its own (no global default registry).

The worker, watcher supervisor and retention runner update these objects; the API serves ``render()`` at
``/metrics``. Queue depth is read from the database at scrape time through ``queue_counts`` so it is never stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _QueueDepth(Collector):
    """Images per state, asked of the database at each scrape."""

    def __init__(self, queue_counts: Callable[[], Mapping[str, int]]) -> None:
        self._queue_counts = queue_counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("enhancerd_queue_depth", "Images by state", labels=["state"])
        try:
            counts = self._queue_counts()
        except Exception:  # a scrape must never fail because the database is busy
            counts = {}
        for state, count in sorted(counts.items()):
            family.add_metric([state], float(count))
        yield family


class Metrics:
    """Every metric the daemon exports."""

    def __init__(self, queue_counts: Callable[[], Mapping[str, int]] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.processed = Counter("enhancerd_images_processed", "Images enhanced and recorded", registry=r)
        self.failed = Counter("enhancerd_images_failed", "Images that failed", ["kind"], registry=r)
        self.duplicates = Counter("enhancerd_images_duplicate", "Images recognised as duplicates", registry=r)
        self.retried = Counter("enhancerd_images_retried", "Transient failures scheduled for retry", registry=r)
        self.processing_seconds = Histogram(
            "enhancerd_processing_seconds",
            "Seconds per image, decode to output written",
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.batch_fill = Histogram(
            "enhancerd_batch_fill",
            "Images per worker batch as a fraction of the batch size",
            buckets=(0.1, 0.25, 0.5, 0.75, 0.9, 1.0),
            registry=r,
        )
        self.oom_splits = Counter(
            "enhancerd_oom_splits", "Out-of-memory retries with smaller batches/tiles", registry=r
        )
        self.watcher_restarts = Counter(
            "enhancerd_watcher_restarts", "Inbox observers restarted", ["inbox"], registry=r
        )
        self.rescan_finds = Counter(
            "enhancerd_rescan_finds", "Files found by a rescan, not by an event", ["inbox"], registry=r
        )
        self.retention_deleted = Counter(
            "enhancerd_retention_deleted", "Files removed by retention", ["kind"], registry=r
        )
        self.model_info = Info("enhancerd_model", "Model and device in use", registry=r)
        self.worker_busy = Gauge("enhancerd_worker_busy", "1 while the worker is processing a batch", registry=r)
        if queue_counts is not None:
            r.register(_QueueDepth(queue_counts))

    def render(self) -> bytes:
        return generate_latest(self.registry)
