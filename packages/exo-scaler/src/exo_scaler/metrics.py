"""The scaler's Prometheus metrics, on a registry the caller owns."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

OPERATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class ScalerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.decisions = Counter(
            "exo_scaler_decisions_total",
            "Scaling decisions, one per tick.",
            ["action", "reason"],
            registry=registry,
        )
        self.pool_size = Gauge(
            "exo_scaler_pool_size", "Pool size as last read from the API.", registry=registry
        )
        self.pool_bounds = Gauge(
            "exo_scaler_pool_bound", "Configured size bounds.", ["bound"], registry=registry
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
        self.pending_intents = Gauge(
            "exo_scaler_pending_intents",
            "Intents waiting for the next tick.",
            ["direction"],
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
        self.warming = Gauge(
            "exo_scaler_warming_members",
            "Members asked for and not serving yet, counted as capacity when scaling up.",
            registry=registry,
        )
        self.pool_unhealthy = Gauge(
            "exo_scaler_pool_unhealthy",
            "1 while the pool has been suspended/degraded longer than --unhealthy-after.",
            registry=registry,
        )
        self.paused = Gauge("exo_scaler_paused", "1 while paused.", registry=registry)
        self.in_flight = Gauge(
            "exo_scaler_operation_in_flight",
            "1 while an operation of ours runs.",
            registry=registry,
        )
        self.last_tick = Gauge(
            "exo_scaler_last_tick_timestamp_seconds", "When the last tick ran.", registry=registry
        )
