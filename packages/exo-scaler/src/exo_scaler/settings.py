"""Everything the scaler is told at start, validated once (the CLI builds it, tests too)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

ScaleDownPolicy = Literal["newest", "oldest", "least-busy"]
SCALE_DOWN_POLICIES: tuple[ScaleDownPolicy, ...] = ("newest", "oldest", "least-busy")
Policy = Literal["step", "proportional", "demand"]
POLICIES: tuple[Policy, ...] = ("demand", "proportional", "step")
#: The demand signals the alert rules carry (--signal NAME=REFID), by name.
SIGNAL_NAMES: tuple[str, ...] = ("cpu", "arrivals", "cpu_per_request", "serving", "evaluated_at")

DEFAULT_DRAIN_URL = "http://{ip}:8081/admin/drain"
DEFAULT_BUSY_QUERY = 'sum by (instance_id) (rate(node_cpu_seconds_total{mode!="idle"}[1m]))'
MAX_BODY_BYTES = 64 * 1024


class SettingsError(ValueError):
    """A setting (or a combination of settings) the scaler cannot run with."""


@dataclass(frozen=True)
class ScalerSettings:
    pool: str
    max_size: int
    min_size: int = 1
    step: int = 1
    interval: float = 60.0
    # step: the seed's literal ±`step` per tick. proportional: desired = ceil(serving × value /
    # target_value) from the alert's value, at most `max_step` a tick, warm-up aware (README).
    # demand: sized from the arrival rate and the CPU per request (strategy/demand.py).
    policy: Policy = "demand"
    target_value: float = 70.0
    max_step: int = 2
    saturation: float = 98.0  # a value at or above this means saturated members (decide())
    # The NLB whose health checks say which members serve (get-load-balancer). Without it
    # a member serves once its VM is `running`, and --warm-up must also cover the guest's
    # provisioning that follows (README, "Warm-up").
    nlb: str | None = None
    # Seconds from the last asked-for member serving to an alert value that measures it:
    # the rule's rate window (rate(...[1m])) plus its evaluation interval (10 s), so the
    # whole window lies after the member took load.
    warm_up: float = 70.0
    warm_up_limit: float = 600.0  # the longest a scale-up's members count as warming
    carry_ticks: int = 5  # a busy tick keeps intents, for at most this many intervals
    unhealthy_after: float = 300.0  # suspended/degraded this long → surfaced condition
    max_hourly_cost: float | None = None
    price_per_member_hour: float | None = None
    dry_run: bool = False
    direction_label: str = "action"
    # Where an alert's CPU value is read (webhooks.alert_signals): the `cpu` signal's refId,
    # then these annotations, then the largest of `values` that is no other signal and not 0/1.
    value_annotations: tuple[str, ...] = ("value", "cpu")
    # --signal NAME=REFID: where each demand signal is read (Grafana `values[REFID]`, else the
    # annotation `value_<REFID>`). A name not given is read under its own name.
    signals: tuple[tuple[str, str], ...] = ()
    member_cores: float = 1.0  # vCPUs of a member (the instance type's; the lab's CPU cap)
    target_utilisation: float = 0.8  # the demand policy sizes to this share of the cores
    # In ticks, so the sped-up lab keeps the ratios: 5 ticks is 300 s at the 60 s tick.
    scale_in_window_ticks: int = 5  # scale-in from the largest need over this many ticks
    signal_max_age_ticks: float = 3.0  # an older demand value is stale (strategy/demand.py)
    scale_down_policy: ScaleDownPolicy = "newest"
    prometheus_url: str | None = None
    busy_query: str = DEFAULT_BUSY_QUERY
    drain_url: str = DEFAULT_DRAIN_URL
    drain_token: str | None = field(default=None, repr=False)
    drain_seconds: float = 0.0
    operation_timeout: float = 600.0
    # None: the official SDKs' schedule (3 s backing off; exo_client.sdk_poll_interval),
    # shrunk in proportion when the tick is shorter than a minute (the sped-up lab).
    operation_poll: float | None = None
    auth_token: str | None = field(default=None, repr=False)
    basic_user: str | None = None
    no_auth: bool = False
    max_body_bytes: int = MAX_BODY_BYTES

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise SettingsError("; ".join(problems))

    def _problems(self) -> list[str]:
        found: list[str] = []
        if not self.pool:
            found.append("--pool is required (or set EXOSCALE_INSTANCEPOOL_ID)")
        if self.min_size < 0:
            found.append("--min must be >= 0")
        if self.max_size < max(self.min_size, 1):
            found.append("--max must be >= --min and >= 1")
        if self.step < 1:
            found.append("--step must be >= 1")
        if not self.interval > 0 or not math.isfinite(self.interval):
            found.append("--interval must be a positive number of seconds")
        if (self.max_hourly_cost is None) != (self.price_per_member_hour is None):
            found.append("--max-hourly-cost and --price-per-member-hour go together")
        if self.price_per_member_hour is not None and not self.price_per_member_hour > 0:
            found.append("--price-per-member-hour must be > 0")
        if self.max_hourly_cost is not None and self.max_hourly_cost < 0:
            found.append("--max-hourly-cost must be >= 0")
        if self.scale_down_policy not in SCALE_DOWN_POLICIES:
            found.append(f"--scale-down-policy must be one of {', '.join(SCALE_DOWN_POLICIES)}")
        if self.scale_down_policy == "least-busy" and not self.prometheus_url:
            found.append("--scale-down-policy least-busy needs --prometheus-url")
        if self.drain_seconds < 0:
            found.append("--drain-seconds must be >= 0")
        if self.drain_enabled:
            if "{ip}" not in self.drain_url:
                found.append("--drain-url must contain {ip}")
            if not self.drain_token:
                found.append(
                    "draining needs the members' admin token "
                    "(--drain-token-file or SLOW_WEB_ADMIN_TOKEN)"
                )
        if self.policy not in POLICIES:
            found.append(f"--policy must be one of {', '.join(POLICIES)}")
        if not self.target_value > 0 or not math.isfinite(self.target_value):
            found.append("--target-value must be a positive number")
        if self.max_step < 1:
            found.append("--max-step must be >= 1")
        if not self.target_value < self.saturation <= 100:
            found.append("--saturation must be within (--target-value, 100]")
        if self.warm_up < 0 or self.warm_up_limit < 0:
            found.append("--warm-up and --warm-up-limit must be >= 0")
        if self.carry_ticks < 0:
            found.append("--carry-ticks must be >= 0")
        if not self.unhealthy_after >= 0:
            found.append("--unhealthy-after must be >= 0")
        if not self.operation_timeout > 0 or not (
            self.operation_poll is None or self.operation_poll > 0
        ):
            found.append("--operation-timeout and the poll interval must be > 0")
        if not self.direction_label:
            found.append("--direction-label must not be empty")
        if self.no_auth and self.auth_token:
            found.append("--no-auth and a token exclude each other")
        if not self.no_auth and not self.auth_token:
            found.append(
                "no webhook token: pass --token-file or set EXO_SCALER_TOKEN "
                "(or run with --no-auth, which leaves every mutating route open)"
            )
        for name, ref in self.signals:
            if name not in SIGNAL_NAMES:
                found.append(
                    f"--signal {name}={ref}: NAME must be one of {', '.join(SIGNAL_NAMES)}"
                )
            elif not ref:
                found.append(f"--signal {name}=: REFID must not be empty")
        if len({name for name, _ in self.signals}) < len(self.signals):
            found.append("--signal names each signal once")
        if not self.member_cores > 0 or not math.isfinite(self.member_cores):
            found.append("--member-cores must be a positive number")
        if not 0 < self.target_utilisation <= 1:
            found.append("the target utilisation must be within (0, 1]")
        if self.scale_in_window_ticks < 1 or not self.signal_max_age_ticks > 0:
            found.append("the scale-in window and the signal age limit must be positive")
        if self.max_body_bytes < 1:
            found.append("the body limit must be positive")
        return found

    def signal_ref(self, name: str) -> str:
        """The refId the signal `name` is read under."""
        return dict(self.signals).get(name, name)

    @property
    def scale_in_window(self) -> float:
        return self.scale_in_window_ticks * self.interval

    @property
    def signal_max_age(self) -> float:
        return self.signal_max_age_ticks * self.interval

    @property
    def intent_ttl(self) -> float:
        """How long an intent a busy tick kept may wait for a tick that can act on it."""
        return self.carry_ticks * self.interval

    @property
    def drain_enabled(self) -> bool:
        return self.drain_seconds > 0

    @property
    def cost_cap_size(self) -> int | None:
        """The most members the hourly budget pays for, when a budget is set."""
        if self.max_hourly_cost is None or self.price_per_member_hour is None:
            return None
        # A tiny epsilon so that 0.3 / 0.1 counts as 3 members, not 2.
        return math.floor(self.max_hourly_cost / self.price_per_member_hour + 1e-9)

    @property
    def effective_max(self) -> int:
        cap = self.cost_cap_size
        return self.max_size if cap is None else min(self.max_size, cap)
