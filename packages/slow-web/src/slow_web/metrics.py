"""Prometheus metrics, always on a registry the caller passes in."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from slow_web.drain import DrainController
from slow_web.workpool import WorkPool

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

# Fixed route names keep label cardinality bounded whatever paths clients ask for.
KNOWN_ROUTES = frozenset({"/", "/load", "/health", "/metrics"})
#: routes whose requests burn CPU: the ones that are served or shed
WORK_ROUTES = ("/", "/load")
#: the status of a served work request
SERVED = "200"


def route_label(path: str) -> str:
    return path if path in KNOWN_ROUTES else "other"


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "slow_web_requests",
            "HTTP requests answered, by route and status code.",
            ["route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "slow_web_request_duration_seconds",
            "Time from request start to the end of the response, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.shed = Counter(
            "slow_web_shed",
            "Work requests refused with 503 because the queue was full.",
            ["route"],
            registry=registry,
        )
        self.work_cpu_seconds = Counter(
            "slow_web_work_cpu_seconds",
            "CPU seconds burned by workers on behalf of requests.",
            registry=registry,
        )
        self.queue_wait = Histogram(
            "slow_web_queue_wait_seconds",
            "Time a work request waited for a free worker.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "slow_web_in_flight_requests",
            "Work requests admitted and not yet answered (queued or running).",
            registry=registry,
        )
        self.queue_depth = Gauge(
            "slow_web_queue_depth",
            "Work requests waiting for a free worker.",
            registry=registry,
        )
        self.workers = Gauge(
            "slow_web_workers", "Worker processes doing CPU work.", registry=registry
        )
        self.queue_limit = Gauge(
            "slow_web_queue_limit",
            "Waiting requests allowed before shedding.",
            registry=registry,
        )
        self.draining = Gauge(
            "slow_web_draining", "1 while the instance is draining.", registry=registry
        )
        # The series the demand signals rate() over exist at 0 from the first scrape: a counter
        # that first appears at N loses those N from rate() (it has no earlier sample), which
        # would hide the first shed requests of a load step exactly when they matter.
        for route in WORK_ROUTES:
            self.shed.labels(route=route)
            self.requests.labels(route=route, status=SERVED)

    def observe_runtime(self, pool: WorkPool, drain: DrainController) -> None:
        """Gauges read at scrape time, so they can never drift from the real state."""
        self.in_flight.set_function(lambda: pool.admitted)
        self.queue_depth.set_function(lambda: max(0, pool.waiting))
        self.draining.set_function(lambda: 1.0 if drain.draining else 0.0)
        self.workers.set(pool.workers)
        self.queue_limit.set(pool.queue_limit)
