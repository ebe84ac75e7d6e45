"""`exo-lab run`: the whole autoscaling loop on one machine, measured.

zone API + member processes + NLB (in this process), the real Prometheus and Alertmanager,
exo-sd and exo-scaler (child processes), and the open-loop load generator (a child process
too, so its work never competes with the balancer for this interpreter). Every production
duration is divided by `speed`. What the children run with is rendered in render.py; this
module starts, watches and stops them.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from exo_scaler import DecisionRecord, action_label, read_decision_log
from exo_zone import HealthCheck, LocalZone, ZoneTimings
from exo_zone.api import ZoneApi
from exo_zone.zone import Zone

from ..dataplane import DataPlane
from ..dataplane.lock import LabBusyError
from ..dataplane.members import MemberSettings, lab_prefix_for
from ..files import write_atomically
from ..load.generator import RequestResult, percentile
from ..report.quality import oracle_demand
from ..report.run_report import RunReport, Sample, since_load_start
from . import render
from .grafana import (
    ProvisioningError,
    ScalingRule,
    WebhookRoute,
    alertmanager_config,
    load_rules,
    load_webhook_route,
    prometheus_rule_file,
    scale_expression,
)
from .processes import ChildExited, ChildProcesses, find_binary, free_port, wait_for
from .settings import LabError, LabSettings

log = logging.getLogger(__name__)


def _console_script(name: str) -> str:
    """The installed CLI next to this interpreter (a venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else find_binary(name)
    if not found:
        raise LabError(f"{name} is not installed: pip install {name} (or run `make demo`)")
    return found


def _required_binaries() -> tuple[str, str]:
    prometheus = find_binary("prometheus")
    alertmanager = find_binary("prometheus-alertmanager", "alertmanager")
    missing = [n for n, p in (("prometheus", prometheus), ("alertmanager", alertmanager)) if not p]
    if missing:
        raise LabError(
            f"missing {' and '.join(missing)}: install the Debian packages "
            "(sudo apt-get install prometheus prometheus-alertmanager) or run `make demo`, "
            "which does it for you"
        )
    assert prometheus and alertmanager
    return prometheus, alertmanager


class LabRun:
    """One run of the stack; use as a context manager so everything stops on exit."""

    def __init__(self, settings: LabSettings) -> None:
        self.s = settings
        # Absolute: Prometheus resolves file paths against its config file's folder.
        self.out = settings.out.resolve()
        self.files = render.StackFiles(self.out)
        self.children = ChildProcesses(self.out / "logs")
        self.plane: DataPlane | None = None
        self.local_zone: LocalZone | None = None
        self.zone: Zone | None = None
        #: the zone API object (its `faults` plan is what `PUT /v2/_lab/faults` sets)
        self.zone_api: ZoneApi | None = None
        #: the API credentials and endpoint the stack's children run with
        self.api_env: dict[str, str] = {}
        self.endpoint = ""
        self.nlb_url = ""
        self.prometheus_url = ""
        self.scaler_url = ""
        self.scaler_token = secrets.token_urlsafe(24)
        self.pool_id = ""
        self.service_id = ""
        self.cpu_expr = ""
        self.rules: list[ScalingRule] = []
        self.route: WebhookRoute | None = None
        self.observations: list[dict[str, Any]] = []
        #: when the load started: wall clock (the scaler's log) and monotonic (the zone's)
        self.load_start_wall: float | None = None
        self.load_start_mono: float | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> LabRun:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def say(self, text: str) -> None:
        if self.s.progress:
            self.s.progress(text)

    def start(self) -> None:
        prometheus, alertmanager = _required_binaries()
        self._load_provisioning()
        self.out.mkdir(parents=True, exist_ok=True)
        self.say("starting the zone, its members and the NLB")
        self._start_zone()
        self._write_secrets()
        ports = render.StackPorts(*(free_port() for _ in range(4)))
        self._write_configs(ports)
        self.say("starting Alertmanager, Prometheus, exo-sd and exo-scaler")
        self._start_children(prometheus, alertmanager, ports)
        self._wait_ready()

    def _load_provisioning(self) -> None:
        s = self.s
        if not (s.provisioning / "alerting" / "rules.yaml").is_file():
            raise LabError(
                f"no Grafana provisioning at {s.provisioning}: run from the repository root "
                "or pass --provisioning"
            )
        self.rules = load_rules(s.provisioning)
        self.route = load_webhook_route(s.provisioning)
        self.cpu_expr = scale_expression(self.rules[0].expr, s.speed)

    def _start_zone(self) -> None:
        """Zone, members and NLB, in this process."""
        s, t = self.s, self.s.timings
        self.plane = DataPlane(
            MemberSettings(
                lab_prefix=lab_prefix_for(s.member_network),
                cpu_per_vcpu=s.cpu_per_vcpu,
                work_ms=s.work_ms,
                stop_timeout=max(1.0, s.lab(t.drain) + 1.0),
                use_cgroups=s.use_cgroups,
            )
        )
        local = self.local_zone = LocalZone(
            timings=ZoneTimings(
                boot_delay=s.lab(t.boot_delay),
                operation_delay=s.lab(t.operation_delay),
                tick_interval=0.05,
            ),
            runtime=self.plane.runtime,
            member_network=s.member_network,
        )
        self.zone, self.zone_api = local.zone, local.api
        pool = local.zone.create_pool("web", s.initial_size, s.instance_type)
        self.pool_id = pool.id
        lb = local.zone.create_load_balancer(
            "web-nlb",
            pool.id,
            port=free_port(),
            healthcheck=HealthCheck(
                interval=s.lab(t.health_interval),
                timeout=s.lab(t.health_timeout),
                retries=t.health_retries,
            ),
        )
        self.service_id = lb.services[0].id
        nlb = self.plane.attach(local.zone)
        self.nlb_url = f"http://{next(iter(nlb.addresses().values()))}/"
        try:
            self.endpoint = local.start()
        except RuntimeError as exc:
            raise LabError(f"the zone API did not start: {exc}") from exc
        self.api_env = local.env
        zone_info = {"endpoint": self.endpoint, "pool_id": pool.id, "nlb": self.nlb_url}
        write_atomically(self.out / "zone.json", json.dumps(zone_info, indent=2))

    def _write_secrets(self) -> None:
        """The scaler's webhook token and the members' drain token: files, 0600 from creation."""
        assert self.plane is not None
        self.files.scaler_token.parent.mkdir(mode=0o700, exist_ok=True)
        write_atomically(self.files.scaler_token, self.scaler_token, mode=0o600)
        write_atomically(self.files.member_admin_token, self.plane.runtime.admin_token, mode=0o600)

    def _write_configs(self, ports: render.StackPorts) -> None:
        """Alertmanager (Grafana's notifier in the lab), the alert rules and Prometheus."""
        s, files = self.s, self.files
        assert self.route is not None
        self.scaler_url = f"http://127.0.0.1:{ports.scaler}"
        self.prometheus_url = f"http://127.0.0.1:{ports.prometheus}"
        am_config = alertmanager_config(
            self.route,
            scaler_base_url=self.scaler_url,
            credentials_file=files.scaler_token,
            speed=s.speed,
            copies=s.notification_copies,
        )
        write_atomically(files.alertmanager_config, yaml.safe_dump(am_config, sort_keys=False))
        rule_file = prometheus_rule_file(self.rules, s.speed)
        write_atomically(files.rules, yaml.safe_dump(rule_file, sort_keys=False))
        config = render.prometheus_config(s, files, ports, self.rules[0].evaluation_interval)
        write_atomically(files.prometheus_config, yaml.safe_dump(config, sort_keys=False))

    def _start_children(self, prometheus: str, alertmanager: str, ports: render.StackPorts) -> None:
        s, files = self.s, self.files
        self.children.start(
            "alertmanager", render.alertmanager_command(alertmanager, files, ports.alertmanager)
        )
        self.children.start(
            "prometheus", render.prometheus_command(prometheus, s, files, ports.prometheus)
        )
        self.children.start(
            "exo-sd",
            render.exo_sd_command(
                _console_script("exo-sd"), s, files, self.pool_id, ports.sd_metrics
            ),
            env=self.api_env,
        )
        scaler = (
            render.naive_scaler_command(s, files, self.pool_id, ports.scaler)
            if s.scaler == "naive"
            else render.exo_scaler_command(
                _console_script("exo-scaler"), s, files, self.pool_id, ports.scaler
            )
        )
        self.children.start("exo-scaler", scaler, env=self.api_env)

    def _wait_ready(self) -> None:
        assert self.zone is not None
        s = self.s
        budget = 30 + s.lab(s.timings.boot_delay) * 2

        def children_up() -> bool:
            self.children.check_alive()
            return True

        def members_serving() -> bool:
            children_up()
            return sum(self._serving().values()) >= s.initial_size

        wait_for(members_serving, "pool members behind the NLB", budget)
        wait_for(lambda: children_up() and httpx.get(f"{self.scaler_url}/healthz", timeout=2)
                 .is_success, "exo-scaler", 30)  # fmt: skip
        wait_for(lambda: children_up() and self._prometheus_targets_up() >= s.initial_size,
                 "Prometheus scraping the pool", 60)  # fmt: skip
        self.say(f"stack ready: NLB {self.nlb_url}, Prometheus {self.prometheus_url}")

    def _serving(self) -> dict[str, bool]:
        assert self.plane is not None and self.plane.nlb is not None
        health: dict[str, bool] = self.plane.nlb.health(self.service_id)
        return health

    def _prometheus_targets_up(self) -> int:
        body = httpx.get(f"{self.prometheus_url}/api/v1/targets", timeout=2).json()
        return sum(
            1
            for t in body["data"]["activeTargets"]
            if t["labels"].get("job") == "pool" and t["health"] == "up"
        )

    # -- observing ------------------------------------------------------------------------

    def observe(self, t: float) -> dict[str, Any]:
        """One sample of what the lab sees at lab time `t` (seconds since the load started)."""
        assert self.zone is not None
        with self.zone.lock:
            pool_size = self.zone.pools[self.pool_id].size
        sample: dict[str, Any] = {
            "t": t,
            "pool_size": pool_size,
            "supply": sum(self._serving().values()),
            "avg_cpu": self._query_cpu(),
        }
        self.observations.append(sample)
        return sample

    def _query_cpu(self) -> float | None:
        try:
            body = httpx.get(
                f"{self.prometheus_url}/api/v1/query", params={"query": self.cpu_expr}, timeout=2
            ).json()
            result = body["data"]["result"]
            return float(result[0]["value"][1]) if result else None
        except (httpx.HTTPError, KeyError, ValueError, IndexError):
            return None

    def scaler_log(self) -> Path:
        return self.out / "logs" / "exo-scaler.log"

    def logged_decisions(self) -> list[DecisionRecord]:
        """Every decision the scaler logged, as written (wall-clock times).

        Read from the log, not by polling /status: a loaded machine can stretch a sampling pass
        past a sped-up tick.
        """
        path = self.scaler_log()
        return read_decision_log(path) if path.exists() else []

    def decisions_from_log(self) -> list[DecisionRecord]:
        """Every decision, in lab seconds since the load started."""
        if self.load_start_wall is None:
            return []
        return since_load_start(self.logged_decisions(), self.load_start_wall)

    # -- running --------------------------------------------------------------------------

    def run_load(self) -> list[RequestResult]:
        s = self.s
        profile = self.s.load_profile()
        progress_file = self.files.load_progress
        results_file = self.files.load_results
        for path in (progress_file, results_file):
            path.unlink(missing_ok=True)
        self.say(
            f"load: profile {s.profile}, {profile.duration:.0f} lab s "
            f"({s.duration:.0f} s at speed 1), peak {s.peak_members:g} members' worth "
            f"({s.peak_members * s.member_rps_at_line:.1f} rps of {s.work_ms} ms CPU)"
        )
        child = self.children.start("load", render.load_command(s, self.files, self.nlb_url))
        start = self.load_start_mono = time.monotonic()
        self.load_start_wall = time.time()
        hard_stop = start + profile.duration + 60
        next_sample = start
        last_print = 0.0
        while child.alive() and time.monotonic() < hard_stop:
            self.children.check_alive(expected_to_exit=("load",))
            t = time.monotonic() - start
            sample = self.observe(round(t))
            if t - last_print >= max(1.0, profile.duration / 40):
                last_print = t
                self.say(self._progress_line(t, sample, progress_file))
            next_sample += 1.0
            time.sleep(max(0.0, next_sample - time.monotonic()))
        if child.alive():
            self.children.stop(child)
            raise LabError("the load generator overran its time bound and was stopped")
        self._settle(start)
        if child.process.returncode != 0:
            raise LabError(f"the load generator failed:\n{child.tail()}")
        return [RequestResult(**json.loads(line)) for line in results_file.read_text().splitlines()]

    def _settle(self, start: float) -> None:
        """After the load: watch the pool come back to its minimum (bounded)."""
        s = self.s
        t = s.timings
        steps = s.max_size - s.min_size + 1
        bound = s.lab(steps * t.tick + 2 * 60 + 4 * t.scrape_interval + t.drain) + 5
        deadline = time.monotonic() + bound
        at_min_since: float | None = None
        self.say(f"load finished; watching scale-in to {s.min_size} (at most {bound:.0f} lab s)")
        while time.monotonic() < deadline:
            self.children.check_alive(expected_to_exit=("load",))
            sample = self.observe(round(time.monotonic() - start))
            if sample["pool_size"] == s.min_size and sample["supply"] == s.min_size:
                at_min_since = at_min_since or time.monotonic()
                if time.monotonic() - at_min_since >= s.lab(t.tick):
                    return
            else:
                at_min_since = None
            time.sleep(1.0)

    def _progress_line(self, t: float, sample: dict[str, Any], progress_file: Path) -> str:
        last: dict[str, Any] = {}
        try:
            lines = progress_file.read_text().splitlines()
            last = json.loads(lines[-1]) if lines else {}
        except (OSError, ValueError):
            pass
        p95 = last.get("p95")
        cpu = sample["avg_cpu"]
        decisions = self.decisions_from_log()
        last_decision = (
            f"{action_label(decisions[-1].action)} {decisions[-1].reason}" if decisions else "—"
        )
        return (
            f"t={t:5.0f}s  offered {last.get('offered_rps', 0):5.1f} rps  "
            f"p95 {'—' if p95 is None else f'{p95 * 1000:5.0f} ms'}  "
            f"cpu {'—' if cpu is None else f'{cpu:5.1f} %'}  "
            f"pool {sample['pool_size']} (serving {sample['supply']})  "
            f"last decision: {last_decision}"
        )

    def report(self, results: list[RequestResult]) -> RunReport:
        s = self.s
        profile = s.load_profile()
        samples = []
        load_by_second: dict[int, list[RequestResult]] = {}
        for r in results:
            load_by_second.setdefault(int(r.scheduled), []).append(r)
        for obs in self.observations:
            t = obs["t"]
            second = load_by_second.get(int(t), [])
            ok = [r.latency for r in second if r.ok]
            offered = profile.rate_at(t + 0.5)
            samples.append(
                Sample(
                    t=t,
                    offered_rps=offered,
                    ok_rps=float(len(ok)),
                    failed=sum(not r.ok for r in second),
                    p50=percentile(ok, 50),
                    p95=percentile(ok, 95),
                    avg_cpu=obs["avg_cpu"],
                    pool_size=obs["pool_size"],
                    supply=obs["supply"],
                    demand=oracle_demand(offered, s.work_ms, s.member_cores, minimum=s.min_size),
                )
            )
        t = s.timings
        config = {
            "profile": s.profile,
            "speed": s.speed,
            "duration_s": s.duration,
            "min_size": s.min_size,
            "max_size": s.max_size,
            "work_ms": s.work_ms,
            "member_cores": s.member_cores,
            "member_rps_at_80": s.member_rps_at_line,
            "peak_members": s.peak_members,
            "cpu_cap": self.plane.runtime.cpu_cap if self.plane else "unknown",
            "tick_seconds": t.tick,
            "scale_in_window_s": t.health_interval * (t.health_retries + 1) + t.drain,
            "timings": asdict(t),
            "reaction_floor": self.reaction_floor(),
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        return RunReport(
            config=config, samples=samples, decisions=self.decisions_from_log(), results=results
        )

    def reaction_floor(self) -> dict[str, float]:
        """The least time the configured timers allow from a load step to new capacity."""
        rules = self.rules or load_rules(self.s.provisioning)
        route = self.route or load_webhook_route(self.s.provisioning)
        return render.reaction_floor(self.s.timings, rules, route)

    def stop(self) -> None:
        self.children.stop_all()
        if self.local_zone is not None:
            self.local_zone.stop()
            self.local_zone = None
        if self.plane is not None:
            self.plane.close()
            self.plane = None


def run_lab(settings: LabSettings) -> tuple[RunReport, dict[str, Path]]:
    """Run, report, stop everything. Failures come out as LabError, with nothing left running.

    A run that failed before starting any child (a held lab lock, a port taken) also removes
    the output folder it created; once a child ran, its logs are kept for the message to name.
    """
    created_out = not settings.out.exists()
    lab = LabRun(settings)
    try:
        with lab:
            lab.start()
            results = lab.run_load()
            report = lab.report(results)
            paths = report.write(settings.out)
    except BaseException as exc:
        if created_out and lab.children.started == 0:
            shutil.rmtree(settings.out, ignore_errors=True)
        if isinstance(exc, LabBusyError | ChildExited | ProvisioningError | TimeoutError | OSError):
            raise LabError(str(exc)) from exc
        raise
    return report, paths
