"""The agent's own metrics, registered on the registry it is given (never the global one)."""

from __future__ import annotations

from collections import Counter as CallCounter
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

ERROR_KINDS = ("auth", "not_found", "unavailable", "api", "write", "unexpected")


class ApiCallsCollector(Collector):
    """Reads the client's per-operation call counter at scrape time."""

    def __init__(self, calls: CallCounter[str]) -> None:
        self._calls = calls

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "exo_sd_api_calls",
            "Exoscale API calls sent, by operation (every attempt counts)",
            labels=["operation"],
        )
        for operation, count in sorted(dict(self._calls).items()):
            family.add_metric([operation], count)
        yield family


class SdMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.refreshes = Counter(
            "exo_sd_refreshes", "Refresh attempts (successful or not)", registry=registry
        )
        self.errors = Counter(
            "exo_sd_errors", "Failed refreshes, by kind", ["kind"], registry=registry
        )
        for kind in ERROR_KINDS:
            self.errors.labels(kind)
        self.writes = Counter(
            "exo_sd_file_writes", "Times the targets file was rewritten", registry=registry
        )
        self.targets = Gauge(
            "exo_sd_targets", "Targets in the last file written", registry=registry
        )
        self.last_success = Gauge(
            "exo_sd_last_success_timestamp_seconds",
            "Unix time of the last successful refresh",
            registry=registry,
        )
        self.duration = Histogram(
            "exo_sd_refresh_duration_seconds",
            "Time one refresh took (API call and file write)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )

    def watch_api_calls(self, calls: CallCounter[str]) -> None:
        self.registry.register(ApiCallsCollector(calls))
