"""Prometheus metrics of one server, at TF Serving's `/monitoring/prometheus/metrics`.

Each app has its own registry, so several apps in one process (tests) never share counters.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

METRICS_PATH = "/monitoring/prometheus/metrics"
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServeMetrics:
    """Requests by route and status, latency, batch sizes, queue depth, the served version."""

    def __init__(self, queue_depth: Callable[[], float], version: Callable[[], float]):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "emotion_tf_requests",
            "HTTP requests answered, by route and status code (499: client went away).",
            ["route", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "emotion_tf_request_latency_seconds",
            "Seconds from request start to response, by route.",
            ["route"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "emotion_tf_batch_size",
            "Instances per model call.",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.internal_errors = Counter(
            "emotion_tf_internal_errors",
            "Requests that reached the catch-all handler (a bug: should stay 0).",
            registry=self.registry,
        )
        self.reloads = Counter(
            "emotion_tf_model_loads",
            "Version changes while serving, by outcome (loaded, unloaded, failed).",
            ["outcome"],
            registry=self.registry,
        )
        queue = Gauge(
            "emotion_tf_queue_depth",
            "Instances waiting for a model call.",
            registry=self.registry,
        )
        queue.set_function(queue_depth)
        served = Gauge(
            "emotion_tf_model_version",
            "The model version being served (0: none).",
            registry=self.registry,
        )
        served.set_function(version)
        self.in_flight = Gauge(
            "emotion_tf_requests_in_flight",
            "Requests being read, queued or run.",
            registry=self.registry,
        )
        self.connections = Gauge(
            "emotion_tf_open_connections",
            "Open client connections.",
            registry=self.registry,
        )

    def observe(self, route: str, code: int, seconds: float) -> None:
        self.requests.labels(route, str(code)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
