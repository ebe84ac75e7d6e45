"""`DeploymentProbe`: the measured run's view of a deployment, from Terraform's outputs.

Pool size from the API (exo-client's get-instance-pool) and members serving from the NLB's
healthcheck-status (`exo_client.pool_health_from`); every member's create and delete from the
pool's member list (created-at; deleted when it is no longer listed); average CPU from the
monitor's Prometheus with the alert's own expression (read from grafana-provisioning/, as the
lab does); decisions from exo-scaler's authenticated `GET /decisions?since=`, or, where that
answers 404, its `/status` `last_decision` polled every second (the report says which); the
oracle from a short calibration (slow-web reports the CPU and wall time of each request); the
cost from the outputs' `cost_estimate_eur_per_hour`, which Terraform computes from
infra/terraform/prices.json.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from exo_client import ExoClient
from exo_client.errors import ExoApiError
from exo_client.settings import ClientSettings
from exo_scaler import DecisionLogError, DecisionRecord
from exo_zone import instance_type_by_name

from ..load.plan import LoadPlan
from ..measure import RunClock, SettlePlan
from ..measure.probe import query_scalar
from ..report.quality import member_rps_at_line, oracle_demand
from ..report.run_report import MemberLife, Observation
from ..stack.grafana import cpu_rule, load_rules, scale_expression
from .outputs import Deployment

#: production seconds of the scaler's tick when /status does not say
DEFAULT_TICK = 60.0
DECISIONS_FROM_ENDPOINT = "exo-scaler GET /decisions"
DECISIONS_FROM_STATUS = (
    "exo-scaler /status last_decision polled every second (GET /decisions answered 404; "
    "a decision replaced within one poll is missed)"
)


class TargetError(RuntimeError):
    """The target load test cannot go on; one line for the terminal."""


@dataclass(frozen=True)
class TargetSettings:
    out: Path
    profile: str = "step"
    duration: float = 1200.0  # production seconds of load
    speed: float = 1.0  # a lab started with --speed K: its durations are divided by K
    base_members: float = 0.1
    peak_members: float = 3.5
    provisioning: Path = Path("grafana-provisioning")
    #: production seconds to watch the pool come back to its minimum after the load (bounded)
    settle: float | None = None
    calibration_requests: int = 8
    vcpus: int | None = None  # of a member; None: the lab's instance type, else 1
    work_ms: float | None = None  # overrides the calibration
    member_cores: float | None = None  # overrides the calibration
    progress: Callable[[str], None] | None = None

    def lab(self, seconds: float) -> float:
        return seconds / self.speed


@dataclass
class Calibration:
    work_ms: float
    member_cores: float
    samples: int
    source: str

    @property
    def member_rps_at_line(self) -> float:
        return member_rps_at_line(self.member_cores, self.work_ms)


@dataclass
class DeploymentProbe:
    deployment: Deployment
    settings: TargetSettings
    admin_key: tuple[str, str]
    token: str = ""
    decisions_seen: dict[tuple[int, float], DecisionRecord] = field(default_factory=dict)
    decisions_source: str = DECISIONS_FROM_ENDPOINT
    #: member id -> [created (wall), last seen listed (wall)]
    listed: dict[str, list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        d = self.deployment
        self.out = self.settings.out
        self.pool_id = d.text("instance_pool_id")
        self.scaler_url = d.text("scaler_internal_url").rstrip("/") + "/"
        self.prometheus_url = d.text("prometheus_url").rstrip("/") + "/"
        self.token = self.token or d.text("scaler_token")
        self.client = ExoClient(
            ClientSettings(
                api_key=self.admin_key[0],
                api_secret=self.admin_key[1],
                zone=d.text("zone") or "ch-gva-2",
                endpoint=d.api_endpoint,
                timeout=5.0,
            )
        )
        self.http = httpx.Client(timeout=5.0)
        self.lb_id = ""
        self.cpu_expr = ""
        self.status: dict[str, Any] = {}
        self.calibration: Calibration | None = None

    def say(self, text: str) -> None:
        if self.settings.progress:
            self.settings.progress(text)

    def close(self) -> None:
        self.http.close()
        self.client.close()

    # -- before the load ------------------------------------------------------------------

    def prepare(self) -> Calibration:
        s = self.settings
        rules = load_rules(s.provisioning)
        self.cpu_expr = scale_expression(cpu_rule(rules).expr, s.speed)
        self.status = self._get_json(urljoin(self.scaler_url, "status"))
        if not isinstance(self.status.get("min"), int):
            raise TargetError(f"{self.scaler_url}status has no bounds: is this exo-scaler?")
        self.lb_id = self._find_load_balancer()
        probe = self.http.get(
            urljoin(self.scaler_url, "decisions"),
            params={"since": f"{time.time():.3f}"},
            headers=self._auth(),
        )
        if probe.status_code == 404:
            self.decisions_source = DECISIONS_FROM_STATUS
        elif probe.status_code != 200:
            raise TargetError(f"{self.scaler_url}decisions answered {probe.status_code}")
        calibration = self.calibration = self.calibrate()
        self.say(
            f"calibration ({calibration.source}): {calibration.work_ms:.0f} ms CPU per request, "
            f"{calibration.member_cores:.2f} cores per member → "
            f"{calibration.member_rps_at_line:.1f} rps per member at the 80 % line"
        )
        return calibration

    def _find_load_balancer(self) -> str:
        try:
            for lb in self.client.list_load_balancers():
                body = self.client.get_load_balancer(str(lb["id"]))
                if any((svc.get("instance-pool") or {}).get("id") == self.pool_id
                       for svc in body.get("services", [])):  # fmt: skip
                    return str(lb["id"])
        except ExoApiError as exc:
            raise TargetError(f"cannot read the NLB with the operator's key: {exc}") from None
        raise TargetError(f"no NLB service sends traffic to pool {self.pool_id}")

    def calibrate(self) -> Calibration:
        """Per-member capacity from a few sequential requests on an idle pool.

        slow-web answers each request with `cpu_ms` (CPU it burnt) and `worker_wall_ms` (wall
        time of that burn): their ratio is the CPU share one worker gets, which is 1 on a VM
        and the cgroup cap in the lab. A member runs one worker per vCPU.
        """
        s = self.settings
        vcpus = s.vcpus or self._lab_vcpus()
        cpu, wall = [], []
        for _ in range(s.calibration_requests):
            with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
                # A new connection per request, as the generator does (the NLB is layer 4).
                with httpx.Client(timeout=10.0) as one:
                    body = one.get(self.deployment.app_url).json()
                cpu.append(float(body["cpu_ms"]))
                wall.append(float(body["worker_wall_ms"]))
        measured = len(cpu) >= max(1, s.calibration_requests // 2)
        if not measured and (s.work_ms is None or s.member_cores is None):
            raise TargetError(
                f"calibration failed ({len(cpu)} of {s.calibration_requests} answers had "
                "cpu_ms and worker_wall_ms): pass --work-ms and --member-cores"
            )
        work = s.work_ms or statistics.median(cpu)
        cores = s.member_cores or vcpus * min(1.0, statistics.median(cpu) / statistics.median(wall))
        given = s.work_ms is not None or s.member_cores is not None
        source = f"{len(cpu)} requests" + (", overridden by flags" if given else "")
        return Calibration(work_ms=work, member_cores=cores, samples=len(cpu), source=source)

    def _lab_vcpus(self) -> int:
        lab = self.deployment.lab or {}
        with contextlib.suppress(KeyError, TypeError):
            return int(instance_type_by_name(str(lab["instance_type"])).cpus)
        return 1

    def _calibrated(self) -> Calibration:
        if self.calibration is None:
            raise TargetError("prepare() the probe before the run")
        return self.calibration

    # -- the probe ------------------------------------------------------------------------

    def load_plan(self) -> LoadPlan:
        s = self.settings
        return LoadPlan.in_members(
            self.deployment.app_url,
            s.profile,
            duration=s.duration,
            speed=s.speed,
            base_members=s.base_members,
            peak_members=s.peak_members,
            member_rps=self._calibrated().member_rps_at_line,
        )

    def settle_plan(self) -> SettlePlan:
        s = self.settings
        low, high = int(self.status["min"]), int(self.status["max"])
        tick = float(self.status.get("interval") or s.lab(DEFAULT_TICK))
        bound = s.lab(s.settle) if s.settle is not None else (high - low + 1) * tick + s.lab(190)
        return SettlePlan(min_size=low, hold=tick, bound=bound)

    def check(self) -> None:
        """A deployment has no children of ours to watch; the API answering is observe's."""

    def observe(self, t: float) -> Observation:
        try:
            pool_size = self.client.get_pool(self.pool_id).size
            health = self.client.pool_health(self.lb_id, self.pool_id)
            self._list_members()
        except ExoApiError as exc:
            raise TargetError(f"the API stopped answering: {exc}") from None
        if self.decisions_source == DECISIONS_FROM_STATUS:
            self._poll_status()
        return Observation(
            t=t,
            pool_size=pool_size,
            supply=sum(health.values()),
            avg_cpu=query_scalar(self.http.get, self.prometheus_url, self.cpu_expr),
        )

    def _list_members(self) -> None:
        now = time.time()
        for member in self.client.list_members(self.pool_id):
            seen = self.listed.get(member.id)
            if seen is None:
                created = member.created_at.timestamp() if member.created_at else now
                self.listed[member.id] = [min(created, now), now]
            else:
                seen[1] = now

    def member_lives(self, clock: RunClock) -> list[MemberLife]:
        """Members from their created-at to the last time they were listed (a second's
        resolution: a member gone between two samples is billed to the earlier one)."""
        last_poll = max((seen for _, seen in self.listed.values()), default=0.0)
        return [
            MemberLife(
                member=member,
                created=created - clock.wall,
                deleted=None if seen >= last_poll else seen - clock.wall,
            )
            for member, (created, seen) in self.listed.items()
        ]

    def latest_decision(self) -> DecisionRecord | None:
        return max(self.decisions_seen.values(), key=lambda d: d.wall_time, default=None)

    def decisions(self, load_start_wall: float) -> list[DecisionRecord]:
        if self.decisions_source == DECISIONS_FROM_ENDPOINT:
            # A little before the load: a decision taken as the load started is the report's.
            since = load_start_wall - 1.0
            body = self._get_json(urljoin(self.scaler_url, "decisions"), {"since": f"{since:.3f}"})
            try:
                for item in body.get("decisions", []):
                    self._keep(DecisionRecord.from_json(item))
            except DecisionLogError as exc:
                raise TargetError(f"/decisions answered a record that is not one: {exc}") from None
        # /status's last decision can predate the load (a poll sees it again): not this run's.
        since = load_start_wall - 1.0
        return sorted((d for d in self.decisions_seen.values() if d.wall_time >= since),
                      key=lambda d: d.wall_time)  # fmt: skip

    def demand_for(self, rps: float) -> int:
        c = self._calibrated()
        return oracle_demand(rps, c.work_ms, c.member_cores, minimum=int(self.status["min"]))

    def config(self) -> dict[str, Any]:
        s, c = self.settings, self._calibrated()
        lab = self.deployment.lab
        return {
            "profile": s.profile,
            "speed": s.speed,
            "duration_s": s.duration,
            "min_size": int(self.status["min"]),
            "max_size": int(self.status["max"]),
            "work_ms": round(c.work_ms, 2),
            "member_cores": round(c.member_cores, 3),
            "member_rps_at_80": round(c.member_rps_at_line, 2),
            "peak_members": s.peak_members,
            "cpu_cap": lab.get("cpu_cap", "lab") if lab else "a VM",
            "tick_seconds": float(self.status.get("interval") or s.lab(DEFAULT_TICK)) * s.speed,
            # NLB health check (every 10 s, 1 retry) plus the scaler's drain, as in the lab
            "scale_in_window_s": 30.0,
            "target": {
                "app_url": self.deployment.app_url,
                "instance_pool_id": self.pool_id,
                "prometheus_url": self.prometheus_url,
                "scaler_url": self.scaler_url,
                "lab": lab is not None,
            },
            "calibration": {
                "source": c.source,
                "requests": c.samples,
                "work_ms": c.work_ms,
                "member_cores": c.member_cores,
            },
            "cpu_expression": self.cpu_expr,
            "decisions_source": self.decisions_source,
            "cost_estimate_eur_per_hour": self.deployment.get("cost_estimate_eur_per_hour") or {},
        }

    # -- the scaler's API -----------------------------------------------------------------

    def _poll_status(self) -> None:
        with contextlib.suppress(httpx.HTTPError, ValueError, DecisionLogError, TargetError):
            last = self._get_json(urljoin(self.scaler_url, "status")).get("last_decision")
            if last:
                self._keep(DecisionRecord.from_json(last))

    def _keep(self, record: DecisionRecord) -> None:
        self.decisions_seen[(record.tick, record.wall_time)] = record

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _get_json(self, url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            response = self.http.get(url, params=params, headers=self._auth())
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise TargetError(f"{url}: {exc}") from None
        if not isinstance(body, dict):
            raise TargetError(f"{url}: expected a JSON object")
        return body
