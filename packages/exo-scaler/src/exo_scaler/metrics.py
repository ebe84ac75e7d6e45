"""The scaler's Prometheus metrics, on a registry the caller owns.

Counters and the histogram count events as they happen (`ScalerMetrics`); the gauges describe
state, so they are read from the scaler at scrape time (`StateCollector`, client_python's
custom-collector pattern) and can never drift from what /status says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

OPERATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class ScalerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.decisions = Counter(
            "exo_scaler_decisions_total",
            "Scaling decisions: one per tick, and the 2-first step's follow-up.",
            ["action", "reason"],
            registry=registry,
        )
        self.webhooks = Counter(
            "exo_scaler_webhooks_received_total",
            "Webhook and /up,/down requests by outcome.",
            ["source", "direction", "result"],
            registry=registry,
        )
        self.alerts_ignored = Counter(
            "exo_scaler_alerts_ignored_total",
            "Received alerts that recorded nothing, by why (resolved, nodata, test-notification…).",
            ["reason"],
            registry=registry,
        )
        self.operation_seconds = Histogram(
            "exo_scaler_operation_duration_seconds",
            "From the scaling call to the operation's end.",
            ["action", "result"],
            buckets=OPERATION_BUCKETS,
            registry=registry,
        )
        self.api_errors = Counter(
            "exo_scaler_api_errors_total",
            "Failed Exoscale API calls (after the client's retries).",
            ["operation"],
            registry=registry,
        )
        self.intents_expired = Counter(
            "exo_scaler_intents_expired_total",
            "Intents kept through busy ticks that grew too old to act on (--carry-ticks).",
            ["direction"],
            registry=registry,
        )


@dataclass(frozen=True)
class Gauges:
    """The scaler's state as the gauges show it."""

    pool_size: int | None
    min_size: int
    max_size: int  # the effective max (the cost cap included)
    pending: dict[str, int]  # direction -> 1 while an intent waits for the next tick
    paused: bool
    in_flight: bool
    last_tick: float | None
    warming: int
    pool_unhealthy: bool


class StateCollector(Collector):
    def __init__(self, read: Callable[[], Gauges]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        state = self._read()
        yield _gauge("exo_scaler_pool_size", "Pool size as last read from the API.",
                     state.pool_size)  # fmt: skip
        bounds = GaugeMetricFamily(
            "exo_scaler_pool_bound", "Configured size bounds.", labels=["bound"]
        )
        bounds.add_metric(["min"], state.min_size)
        bounds.add_metric(["max"], state.max_size)
        yield bounds
        pending = GaugeMetricFamily(
            "exo_scaler_pending_intents", "Intents waiting for the next tick.", labels=["direction"]
        )
        for direction, count in sorted(state.pending.items()):
            pending.add_metric([direction], count)
        yield pending
        yield _gauge("exo_scaler_paused", "1 while paused.", int(state.paused))
        yield _gauge("exo_scaler_operation_in_flight", "1 while an operation of ours runs.",
                     int(state.in_flight))  # fmt: skip
        yield _gauge("exo_scaler_last_tick_timestamp_seconds", "When the last tick ran.",
                     state.last_tick)  # fmt: skip
        yield _gauge(
            "exo_scaler_warming_members",
            "Members asked for and not serving yet, counted as capacity when scaling up.",
            state.warming,
        )
        yield _gauge(
            "exo_scaler_pool_unhealthy",
            "1 while the pool has been suspended/degraded longer than --unhealthy-after.",
            int(state.pool_unhealthy),
        )


def _gauge(name: str, documentation: str, value: float | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation)
    if value is not None:
        family.add_metric([], value)
    return family
