"""`exo-lab run --target`: the lab's load test and report against a deployment.

The same profiles, generator and report as `exo-lab run`, fed from what a deployment offers:
offered/served load and latency from the generator (a child process, as in the lab); pool size
from the API (exo-client's get-instance-pool) and members serving from the NLB's
healthcheck-status; average CPU from the monitor's Prometheus with the alert's own expression
(read from grafana-provisioning/, as the lab does); decisions from exo-scaler's authenticated
`GET /decisions?since=`, or, where that answers 404, its `/status` `last_decision` polled every
second (the report says which); the oracle from a short calibration (slow-web reports the CPU
and wall time of each request); the cost from the outputs' `cost_estimate_eur_per_hour`, which
Terraform computes from infra/terraform/prices.json.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from exo_client import ExoClient
from exo_client.errors import ExoApiError
from exo_client.settings import ClientSettings
from exo_scaler import DecisionLogError, DecisionRecord, action_label
from exo_zone import instance_type_by_name

from ..files import write_atomically
from ..load.generator import RequestResult
from ..load.profiles import LoadProfile, make_profile
from ..report.quality import oracle_demand
from ..report.run_report import Observation, RunReport, samples_from, since_load_start
from ..stack.grafana import load_rules, scale_expression
from .cost import run_cost
from .outputs import Deployment, OutputsError

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
        return self.member_cores * 0.8 * 1000 / self.work_ms


@dataclass
class TargetRun:
    deployment: Deployment
    settings: TargetSettings
    admin_key: tuple[str, str]
    token: str = ""
    observations: list[Observation] = field(default_factory=list)
    decisions: dict[tuple[int, float], DecisionRecord] = field(default_factory=dict)
    decisions_source: str = DECISIONS_FROM_ENDPOINT
    load_start_wall: float | None = None

    def __post_init__(self) -> None:
        d = self.deployment
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
        self.cpu_expr = scale_expression(rules[0].expr, s.speed)
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
        calibration = self.calibrate()
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

    # -- observing ------------------------------------------------------------------------

    def observe(self, t: float) -> Observation:
        try:
            pool_size = self.client.get_pool(self.pool_id).size
            lb = self.client.get_load_balancer(self.lb_id)
        except ExoApiError as exc:
            raise TargetError(f"the API stopped answering: {exc}") from None
        supply = sum(
            1
            for svc in lb.get("services", [])
            if (svc.get("instance-pool") or {}).get("id") == self.pool_id
            for h in svc.get("healthcheck-status", [])
            if h.get("status") == "success"
        )
        if self.decisions_source == DECISIONS_FROM_STATUS:
            self._poll_status()
        sample = Observation(t=t, pool_size=pool_size, supply=supply, avg_cpu=self._query_cpu())
        self.observations.append(sample)
        return sample

    def _query_cpu(self) -> float | None:
        try:
            body = self.http.get(
                urljoin(self.prometheus_url, "api/v1/query"), params={"query": self.cpu_expr}
            ).json()
            result = body["data"]["result"]
            return float(result[0]["value"][1]) if result else None
        except (httpx.HTTPError, KeyError, ValueError, IndexError):
            return None

    def _poll_status(self) -> None:
        with contextlib.suppress(httpx.HTTPError, ValueError, DecisionLogError, TargetError):
            last = self._get_json(urljoin(self.scaler_url, "status")).get("last_decision")
            if last:
                self._keep(DecisionRecord.from_json(last))

    def _keep(self, record: DecisionRecord) -> None:
        self.decisions[(record.tick, record.wall_time)] = record

    def fetch_decisions(self) -> None:
        if self.decisions_source != DECISIONS_FROM_ENDPOINT or self.load_start_wall is None:
            return
        # A little before the load: a decision taken as the load started is the report's too.
        since = self.load_start_wall - 1.0
        body = self._get_json(urljoin(self.scaler_url, "decisions"), {"since": f"{since:.3f}"})
        try:
            for item in body.get("decisions", []):
                self._keep(DecisionRecord.from_json(item))
        except DecisionLogError as exc:
            raise TargetError(f"/decisions answered a record that is not one: {exc}") from None

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

    # -- the load -------------------------------------------------------------------------

    def profile(self, calibration: Calibration) -> LoadProfile:
        s = self.settings
        line = calibration.member_rps_at_line
        return make_profile(
            s.profile,
            base_rps=s.base_members * line,
            peak_rps=s.peak_members * line,
            duration=s.duration,
        ).scaled(s.speed)

    def run_load(self, calibration: Calibration) -> list[RequestResult]:
        s = self.settings
        s.out.mkdir(parents=True, exist_ok=True)
        progress_file, results_file = s.out / "load-progress.jsonl", s.out / "load-results.jsonl"
        for path in (progress_file, results_file):
            path.unlink(missing_ok=True)
        line = calibration.member_rps_at_line
        command = [
            sys.executable, "-m", "exo_lab", "load", "--target", self.deployment.app_url,
            "--profile", s.profile, "--duration", f"{s.duration:g}", "--speed", f"{s.speed:g}",
            "--base-rps", f"{s.base_members * line:g}", "--peak-rps", f"{s.peak_members * line:g}",
            "--progress", str(progress_file), "--results", str(results_file),
        ]  # fmt: skip
        profile = self.profile(calibration)
        self.say(
            f"load: profile {s.profile}, {profile.duration:.0f} s (speed ×{s.speed:g}), peak "
            f"{s.peak_members:g} members' worth ({s.peak_members * line:.1f} rps)"
        )
        log = (s.out / "load.log").open("wb")
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        start = time.monotonic()
        self.load_start_wall = time.time()
        hard_stop = start + profile.duration + 60
        try:
            next_sample, last_print = start, -1e9
            while child.poll() is None and time.monotonic() < hard_stop:
                t = time.monotonic() - start
                sample = self.observe(round(t))
                if t - last_print >= max(1.0, profile.duration / 40):
                    last_print = t
                    self.say(self._progress_line(t, sample, progress_file))
                next_sample += 1.0
                time.sleep(max(0.0, next_sample - time.monotonic()))
        finally:
            if child.poll() is None:
                child.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(10)
                if child.poll() is None:
                    child.kill()
                    child.wait(5)
            log.close()
        if child.returncode != 0:
            raise TargetError(f"the load generator failed (code {child.returncode}); see load.log")
        self._settle(start)
        return [RequestResult(**json.loads(x)) for x in results_file.read_text().splitlines()]

    def _settle(self, start: float) -> None:
        s = self.settings
        low, high = int(self.status["min"]), int(self.status["max"])
        tick = float(self.status.get("interval") or s.lab(DEFAULT_TICK))
        bound = s.lab(s.settle) if s.settle is not None else (high - low + 1) * tick + s.lab(190)
        if bound <= 0:
            return
        self.say(f"load finished; watching scale-in to {low} (at most {bound:.0f} s)")
        deadline = time.monotonic() + bound
        at_min_since: float | None = None
        while time.monotonic() < deadline:
            sample = self.observe(round(time.monotonic() - start))
            if sample.pool_size == low and sample.supply == low:
                at_min_since = at_min_since or time.monotonic()
                if time.monotonic() - at_min_since >= tick:
                    return
            else:
                at_min_since = None
            time.sleep(1.0)

    def _progress_line(self, t: float, sample: Observation, progress_file: Path) -> str:
        last: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError, IndexError):
            last = json.loads(progress_file.read_text().splitlines()[-1])
        p95, cpu = last.get("p95"), sample.avg_cpu
        latest = max(self.decisions.values(), key=lambda d: d.wall_time, default=None)
        decided = f"{action_label(latest.action)} {latest.reason}" if latest else "—"
        return (
            f"t={t:5.0f}s  offered {last.get('offered_rps', 0):5.1f} rps  "
            f"p95 {'—' if p95 is None else f'{p95 * 1000:5.0f} ms'}  "
            f"cpu {'—' if cpu is None else f'{cpu:5.1f} %'}  "
            f"pool {sample.pool_size} (serving {sample.supply})  last decision: {decided}"
        )

    # -- the report -----------------------------------------------------------------------

    def report(self, results: list[RequestResult], calibration: Calibration) -> TargetReport:
        s = self.settings
        assert self.load_start_wall is not None
        self.fetch_decisions()
        # /status's last decision can predate the load (a poll sees it again): not this run's.
        since = self.load_start_wall - 1.0
        records = sorted((d for d in self.decisions.values() if d.wall_time >= since),
                         key=lambda d: d.wall_time)  # fmt: skip
        profile = self.profile(calibration)
        low = int(self.status["min"])
        samples = samples_from(
            self.observations,
            results,
            offered_at=profile.rate_at,
            demand_for=lambda rps: oracle_demand(
                rps, calibration.work_ms, calibration.member_cores, minimum=low
            ),
        )
        tick = float(self.status.get("interval") or s.lab(DEFAULT_TICK)) * s.speed
        dt = samples[1].t - samples[0].t if len(samples) > 1 else 1.0
        instance_seconds = sum(x.pool_size for x in samples) * dt * s.speed
        run_seconds = len(samples) * dt * s.speed
        estimate = self.deployment.get("cost_estimate_eur_per_hour") or {}
        lab = self.deployment.lab
        config = {
            "profile": s.profile,
            "speed": s.speed,
            "duration_s": s.duration,
            "min_size": low,
            "max_size": int(self.status["max"]),
            "work_ms": round(calibration.work_ms, 2),
            "member_cores": round(calibration.member_cores, 3),
            "member_rps_at_80": round(calibration.member_rps_at_line, 2),
            "peak_members": s.peak_members,
            "cpu_cap": lab.get("cpu_cap", "lab") if lab else "a VM",
            "tick_seconds": tick,
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
                "source": calibration.source,
                "requests": calibration.samples,
                "work_ms": calibration.work_ms,
                "member_cores": calibration.member_cores,
            },
            "cpu_expression": self.cpu_expr,
            "decisions_source": self.decisions_source,
            "cost": run_cost(estimate, instance_seconds, run_seconds),
            "started": datetime.fromtimestamp(self.load_start_wall, UTC).isoformat(
                timespec="seconds"
            ),
        }
        return TargetReport(
            config=config,
            samples=samples,
            decisions=since_load_start(records, self.load_start_wall),
            results=results,
        )


class TargetReport(RunReport):
    """The lab's report, plus where each series came from and what the run cost."""

    def markdown(self, figures: dict[str, Any]) -> str:
        c = self.config
        cost = c.get("cost", {})
        target = c.get("target", {})

        def eur(value: Any) -> str:
            return "—" if value is None else f"{value:.4f} EUR"

        extra = [
            "## The deployment under test",
            "",
            f"{'A lab started with `exo-lab up`' if target.get('lab') else 'A deployment'} "
            f"at {target.get('app_url')} (pool `{target.get('instance_pool_id')}`).",
            "",
            "| series | from |",
            "| --- | --- |",
            "| offered / served load, latency | the open-loop generator (this machine) |",
            "| pool size | the API: get-instance-pool, every second |",
            "| members serving | the API: the NLB's healthcheck-status, every second |",
            f"| average CPU | the monitor's Prometheus: `{c.get('cpu_expression')}` |",
            f"| decisions | {c.get('decisions_source')} |",
            f"| oracle | calibration ({c.get('calibration', {}).get('source')}): "
            f"{c.get('work_ms')} ms CPU per request, {c.get('member_cores')} cores per member |",
            "",
            "## What the run cost",
            "",
            "Production-equivalent seconds (seconds × speed), at the prices of "
            "`cost_estimate_eur_per_hour` (Terraform, from infra/terraform/prices.json).",
            "",
            "| item | amount | EUR/h | EUR |",
            "| --- | --- | --- | --- |",
            f"| pool members | {cost.get('instance_seconds', 0):.0f} instance-seconds | "
            f"{cost.get('pool_member_eur_per_hour')} | {eur(cost.get('members_eur'))} |",
            f"| monitor + NLB | {cost.get('run_seconds', 0):.0f} s | "
            f"{cost.get('monitor_and_nlb_eur_per_hour')} | {eur(cost.get('fixed_eur'))} |",
            f"| **total** | | | **{eur(cost.get('total_eur'))}** |",
            "",
        ]
        text = super().markdown(figures)
        head, sep, rest = text.partition("## Capacity against demand")
        return head + "\n".join(extra) + "\n" + sep + rest


def run_target(
    deployment: Deployment, settings: TargetSettings, admin_key: tuple[str, str]
) -> tuple[TargetReport, dict[str, Path]]:
    deployment.require(
        ("app_url", "instance_pool_id", "prometheus_url", "scaler_internal_url"),
        hint={"prometheus_url": "--prometheus-url", "scaler_internal_url": "--scaler-url"},
    )
    run = TargetRun(deployment, settings, admin_key)
    try:
        calibration = run.prepare()
        results = run.run_load(calibration)
        report = run.report(results, calibration)
        paths = report.write(settings.out)
        write_atomically(
            settings.out / "decisions.jsonl",
            "".join(json.dumps(d.to_json()) + "\n" for d in report.decisions),
        )
    except (OSError, ValueError) as exc:
        if isinstance(exc, OutputsError):
            raise
        raise TargetError(str(exc)) from exc
    finally:
        run.close()
    return report, paths
