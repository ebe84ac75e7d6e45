"""What an `exo-lab run` is asked to do, validated: the run's settings and production timings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from exo_zone.catalog import instance_type_by_name
from exo_zone.zone import AddressPool

from ..load.profiles import LoadProfile, make_profile

#: the benchmark's contestants: exo-scaler (its default policy), "seed" (exo-scaler with
#: `--policy step`, the seed's literal ±1 a tick) and "naive" (exo_lab.bench.naive)
SCALERS = ("exo-scaler", "seed", "naive")


class LabError(RuntimeError):
    """The lab cannot run here (missing tool, bad setting); the message says what to do."""


@dataclass(frozen=True)
class ProductionTimings:
    """Seconds at `--speed 1`: what a deployment on Exoscale uses."""

    scrape_interval: float = 15.0
    sd_interval: float = 15.0
    tick: float = 60.0
    boot_delay: float = 30.0
    operation_delay: float = 5.0
    health_interval: float = 10.0
    health_timeout: float = 5.0
    health_retries: int = 1
    drain: float = 10.0


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
    #: the IAM role policy exo-sd and exo-scaler get (None: the one Terraform uses, in the
    #: repository that holds `provisioning`)
    iam_policy: Path | None = None
    timings: ProductionTimings = field(default_factory=ProductionTimings)
    use_cgroups: bool = True
    progress: Callable[[str], None] | None = None
    #: one of SCALERS: "exo-scaler" (the product), "seed" or "naive" (the benchmark's baselines)
    scaler: str = "exo-scaler"
    #: every notification sent this many times (Grafana replicas without HA clustering)
    notification_copies: int = 1

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
        if not 1 <= self.notification_copies <= 10:
            raise LabError("notification copies must be within [1, 10]")
        try:
            AddressPool(self.member_network)
        except ValueError as exc:
            raise LabError(
                f"--member-network {self.member_network}: {exc} (e.g. 127.0.2.0/24)"
            ) from None

    @property
    def role_policy_file(self) -> Path:
        if self.iam_policy is not None:
            return self.iam_policy
        return (
            self.provisioning.parent
            / "infra"
            / "terraform"
            / "policies"
            / ("autoscaler-role.json.tftpl")
        )

    def lab(self, seconds: float) -> float:
        return float(seconds / self.speed)

    @property
    def member_cores(self) -> float:
        return float(instance_type_by_name(self.instance_type).cpus * self.cpu_per_vcpu)

    @property
    def member_rps_at_line(self) -> float:
        """Requests per second one member carries at the 80 % CPU line."""
        return self.member_cores * 0.8 * 1000 / self.work_ms

    def load_profile(self) -> LoadProfile:
        return make_profile(
            self.profile,
            base_rps=self.base_members * self.member_rps_at_line,
            peak_rps=self.peak_members * self.member_rps_at_line,
            duration=self.duration,
        ).scaled(self.speed)
