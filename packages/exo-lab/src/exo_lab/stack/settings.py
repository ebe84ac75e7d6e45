"""What an `exo-lab run` is asked to do, validated: the run's settings and production timings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from exo_zone import AddressPool, HealthCheck, ZoneTimings, instance_type_by_name

from ..dataplane.lifecycle import MemberLifecycle
from ..load.plan import LoadPlan
from ..load.profiles import LoadProfile
from ..report.quality import member_rps_at_line
from .iam_role import POLICY_FILES
from .outage import MonitoringOutage

#: the benchmark's contestants: exo-scaler (its default policy), "seed" (exo-scaler with
#: `--policy step`, the seed's literal ±1 a tick), "naive" (exo_lab.bench.naive) and "limit",
#: the reactive limit (exo_lab.bench.limit: the oracle's size at the first tick after an alert)
SCALERS = ("exo-scaler", "seed", "naive", "limit")
#: the contestants that act at a tick (naive acts on each webhook at once)
TICKING_SCALERS = ("exo-scaler", "seed", "limit")
TIMING_MODELS = ("realistic", "fast")


class LabError(RuntimeError):
    """The lab cannot run here (missing tool, bad setting); the message says what to do."""


@dataclass(frozen=True)
class ProductionTimings:
    """Seconds at `--speed 1`: what a deployment on Exoscale uses (the README's timing model).

    `model` "realistic" (the default): a member is `running` once its VM booted, then boots its
    guest and provisions (dataplane/lifecycle.py, each stage with its jitter and source) before
    slow-web serves; new members appear `create_delay` after the size changed; an operation
    ends once the pool converged (exo-zone). "fast" (`ProductionTimings.fast()`): the lab as it
    was before, one stage (the app starts as soon as the VM runs, members appear at once): kinder
    than the cloud, for quick tests of logic only.

    - `boot_delay` 30 s, VM `starting` → `running`: `exo compute instance create` reports 16 s
      (exoscale/cli README) and `exo compute instance-pool create --size 3` 33 s (Exoscale
      community docs, compute/instances/how-to/instance-pools); 30 s is the harsher end. The
      zone's boot timer has no per-member jitter; the guest boot that follows carries it.
    - `create_delay` 3 s: `instances` lags `size` (exo-zone's `ZoneTimings.realistic()`).
    - `converge_timeout` 600 s: cluster-autoscaler's Exoscale provider polls the pool every
      10 s for `running` and gives up after 10 minutes (kubernetes/autoscaler,
      cluster-autoscaler/cloudprovider/exoscale, `pollCmd`).
    """

    scrape_interval: float = 15.0
    sd_interval: float = 15.0
    tick: float = 60.0
    boot_delay: float = 30.0
    operation_delay: float = 5.0
    create_delay: float = 3.0
    converge_timeout: float = 600.0
    health_interval: float = 10.0
    health_timeout: float = 5.0
    health_retries: int = 1
    drain: float = 10.0
    #: exo-scaler's defaults (its README): an alert value measures a new member this long
    #: after the NLB's health check first passes on it (the rule's 1m rate window + its 10 s
    #: evaluation), never longer than the limit; a pool not running this long is surfaced
    warm_up: float = 70.0
    warm_up_limit: float = 600.0
    unhealthy_after: float = 300.0
    model: str = "realistic"
    member: MemberLifecycle = field(default_factory=MemberLifecycle.realistic)

    def __post_init__(self) -> None:
        if self.model not in TIMING_MODELS:
            raise LabError(f"timing model must be one of {', '.join(TIMING_MODELS)}")

    @classmethod
    def fast(cls) -> ProductionTimings:
        """The one-stage model: no provisioning, members appear at once. Kinder than the cloud."""
        return cls(model="fast", create_delay=0.0, member=MemberLifecycle.instant())

    @classmethod
    def named(cls, model: str) -> ProductionTimings:
        """The timing model called `model` ("realistic" or "fast")."""
        if model == "fast":
            return cls.fast()
        return replace(cls(), model=model)

    def zone_timings(self, speed: float) -> ZoneTimings:
        """The zone's timers at `speed` (lab seconds)."""
        return ZoneTimings(
            boot_delay=self.boot_delay / speed,
            operation_delay=self.operation_delay / speed,
            tick_interval=0.05,
            create_delay=self.create_delay / speed,
            converge_timeout=self.converge_timeout / speed,
        )

    def health_check(self, speed: float) -> HealthCheck:
        """The NLB service's health check at `speed` (lab seconds)."""
        return HealthCheck(
            interval=self.health_interval / speed,
            timeout=self.health_timeout / speed,
            retries=self.health_retries,
        )


@dataclass(frozen=True)
class LabSettings:
    out: Path
    speed: float = 10.0
    profile: str = "step"
    duration: float = 1200.0  # production seconds of load
    min_size: int = 1
    max_size: int = 5
    initial_size: int = 1
    instance_type: str = "standard.tiny"
    cpu_per_vcpu: float = 0.25
    work_ms: int = 50
    base_members: float = 0.1  # offered load when quiet, in members' worth at the 80 % line
    peak_members: float = 3.5  # offered load at the peak, likewise
    member_network: str = "127.0.1.0/24"
    provisioning: Path = Path("grafana-provisioning")
    #: the folder of the IAM role policies exo-sd and exo-scaler get, one file each (None:
    #: Terraform's, infra/terraform/policies in the repository that holds `provisioning`)
    iam_policies: Path | None = None
    #: render the roles scoped to the pool and NLB (Terraform's iam_scope_by_id)
    iam_scope_by_id: bool = True
    #: whether the zone's IAM binds path and query parameters (`parameters.id`); False models
    #: an Exoscale that binds only the documented body parameters
    iam_binds_url_parameters: bool = True
    timings: ProductionTimings = field(default_factory=ProductionTimings)
    use_cgroups: bool = True
    progress: Callable[[str], None] | None = None
    #: one of SCALERS: "exo-scaler" (the product), "seed", "naive" or "limit" (the benchmark's
    #: baselines and bound)
    scaler: str = "exo-scaler"
    #: every notification sent this many times (Grafana replicas without HA clustering)
    notification_copies: int = 1
    #: take the monitoring data away mid-run (stack/outage.py), or None
    monitoring_outage: MonitoringOutage | None = None
    #: the noisy profile's Poisson seed (the benchmark's repeats draw another one each)
    load_seed: int = 1
    #: start the load this fraction of a tick after one of the scaler's ticks, or None (as
    #: soon as the stack is ready). The stack's start-up takes about as long in every run, so
    #: without it every repeat meets the tick at the same phase; the benchmark spreads its
    #: repeats over the phase instead. Ignored for a scaler without a tick (naive).
    tick_phase: float | None = None

    def __post_init__(self) -> None:
        if self.speed <= 0 or self.speed > 60:
            raise LabError("--speed must be within (0, 60]")
        if not 1 <= self.min_size <= self.initial_size <= self.max_size:
            raise LabError("need 1 <= min <= initial size <= max")
        if self.duration <= 0:
            raise LabError("--duration must be positive")
        if not 0 <= self.base_members <= self.peak_members:
            raise LabError("need 0 <= base load <= peak load")
        if self.scaler not in SCALERS:
            raise LabError(f"scaler must be one of {', '.join(SCALERS)}")
        if self.tick_phase is not None and not 0 <= self.tick_phase < 1:
            raise LabError("the tick phase must be within [0, 1)")
        if not 1 <= self.notification_copies <= 10:
            raise LabError("notification copies must be within [1, 10]")
        try:
            AddressPool(self.member_network)
        except ValueError as exc:
            raise LabError(
                f"--member-network {self.member_network}: {exc} (e.g. 127.0.2.0/24)"
            ) from None

    @property
    def role_policy_files(self) -> dict[str, Path]:
        """service -> the policy file of its role."""
        folder = self.iam_policies
        if folder is None:
            folder = self.provisioning.parent / "infra" / "terraform" / "policies"
        return {service: folder / name for service, name in POLICY_FILES.items()}

    def lab(self, seconds: float) -> float:
        return float(seconds / self.speed)

    @property
    def member_cores(self) -> float:
        return float(instance_type_by_name(self.instance_type).cpus * self.cpu_per_vcpu)

    @property
    def member_rps_at_line(self) -> float:
        """Requests per second one member carries at the 80 % CPU line."""
        return member_rps_at_line(self.member_cores, self.work_ms)

    def load_plan(self, url: str) -> LoadPlan:
        """The load this run offers to `url`."""
        return LoadPlan.in_members(
            url,
            self.profile,
            duration=self.duration,
            speed=self.speed,
            base_members=self.base_members,
            peak_members=self.peak_members,
            member_rps=self.member_rps_at_line,
            seed=self.load_seed,
        )

    def load_profile(self) -> LoadProfile:
        """The load's shape in lab seconds."""
        return self.load_plan(url="").shape()
