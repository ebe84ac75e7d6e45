"""`exo-lab run`: the whole autoscaling loop on one machine, measured.

zone API + member processes + NLB (in this process), the real Prometheus and Alertmanager,
exo-sd and exo-scaler (child processes), and the open-loop load generator (a child process
too, so its work never competes with the balancer for this interpreter). Every production
duration is divided by `speed`.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from .alerting import (
    alertmanager_config,
    format_duration,
    load_rules,
    load_webhook_route,
    prometheus_rule_file,
    scale_expression,
)
from .catalog import instance_type_by_name
from .dataplane import DataPlane
from .files import write_atomically
from .load import RequestResult
from .members import MemberSettings, lab_prefix_for
from .processes import ChildProcesses, find_binary, free_port, wait_for
from .profiles import LoadProfile, make_profile
from .quality import oracle_demand
from .report import Decision, RunReport, Sample
from .serving import serve_in_thread
from .zone import HealthCheck, Zone, ZoneTimings
from .zone_api import ZoneApi, create_zone_app

log = logging.getLogger("exo_lab.stack")


SCALERS = ("exo-scaler", "naive")


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
    timings: ProductionTimings = field(default_factory=ProductionTimings)
    use_cgroups: bool = True
    progress: Callable[[str], None] | None = None
    #: "exo-scaler" (the product) or "naive" (exo_lab.naive_scaler, the benchmark's baseline)
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


def _console_script(name: str) -> str:
    """The installed CLI next to this interpreter (a venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else find_binary(name)
    if not found:
        raise LabError(f"{name} is not installed: pip install {name} (or run `make demo`)")
    return found


class LabRun:
    """One run of the stack; use as a context manager so everything stops on exit."""

    def __init__(self, settings: LabSettings) -> None:
        self.s = settings
        # Absolute: Prometheus resolves file paths against its config file's folder.
        self.out = settings.out.resolve()
        self.children = ChildProcesses(self.out / "logs")
        self.plane: DataPlane | None = None
        self.zone: Zone | None = None
        self._zone_server: Any = None
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
        s = self.s
        prometheus = find_binary("prometheus")
        alertmanager = find_binary("prometheus-alertmanager", "alertmanager")
        missing = [
            n for n, p in (("prometheus", prometheus), ("alertmanager", alertmanager)) if not p
        ]
        if missing:
            raise LabError(
                f"missing {' and '.join(missing)}: install the Debian packages "
                "(sudo apt-get install prometheus prometheus-alertmanager) or run `make demo`, "
                "which does it for you"
            )
        assert prometheus and alertmanager
        if not (s.provisioning / "alerting" / "rules.yaml").is_file():
            raise LabError(
                f"no Grafana provisioning at {s.provisioning}: run from the repository root "
                "or pass --provisioning"
            )
        rules = load_rules(s.provisioning)
        route = load_webhook_route(s.provisioning)
        self.cpu_expr = scale_expression(rules[0].expr, s.speed)
        self.out.mkdir(parents=True, exist_ok=True)
        t = s.timings

        # Zone, members and NLB, in this process.
        self.say("starting the zone, its members and the NLB")
        key, secret = "EXO" + secrets.token_hex(12), secrets.token_urlsafe(30)
        member_settings = MemberSettings(
            lab_prefix=lab_prefix_for(s.member_network),
            cpu_per_vcpu=s.cpu_per_vcpu,
            work_ms=s.work_ms,
            stop_timeout=max(1.0, s.lab(t.drain) + 1.0),
            use_cgroups=s.use_cgroups,
        )
        self.plane = DataPlane(member_settings)
        self.zone = Zone(
            timings=ZoneTimings(
                boot_delay=s.lab(t.boot_delay),
                operation_delay=s.lab(t.operation_delay),
                tick_interval=0.05,
            ),
            runtime=self.plane.runtime,
            member_network=s.member_network,
        )
        pool = self.zone.create_pool("web", s.initial_size, s.instance_type)
        self.pool_id = pool.id
        lb = self.zone.create_load_balancer(
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
        nlb = self.plane.attach(self.zone)
        self.nlb_url = f"http://{next(iter(nlb.addresses().values()))}/"
        zone_app = create_zone_app(self.zone, {key: secret})
        self.zone_api = zone_app.state.api
        self._zone_server = serve_in_thread(zone_app)
        self.endpoint = self._zone_server.__enter__() + "/v2"
        api_env = {
            "EXOSCALE_API_KEY": key,
            "EXOSCALE_API_SECRET": secret,
            "EXOSCALE_API_ENDPOINT": self.endpoint,
            "EXOSCALE_ZONE": self.zone.name,
        }
        self.api_env = api_env
        zone_info = {"endpoint": self.endpoint, "pool_id": pool.id, "nlb": self.nlb_url}
        write_atomically(self.out / "zone.json", json.dumps(zone_info, indent=2))

        # Secrets for the scaler's webhook and the members' drain endpoint: files, 0600.
        secrets_dir = self.out / "secrets"
        secrets_dir.mkdir(mode=0o700, exist_ok=True)
        token_file = secrets_dir / "scaler-token"
        write_atomically(token_file, self.scaler_token, mode=0o600)
        drain_token_file = secrets_dir / "member-admin-token"
        write_atomically(drain_token_file, self.plane.runtime.admin_token, mode=0o600)

        # Alertmanager (Grafana's notifier in the lab) and Prometheus.
        am_port, prom_port, scaler_port, sd_metrics_port = (free_port() for _ in range(4))
        self.scaler_url = f"http://127.0.0.1:{scaler_port}"
        self.prometheus_url = f"http://127.0.0.1:{prom_port}"
        am_config = alertmanager_config(
            route,
            scaler_base_url=self.scaler_url,
            credentials_file=token_file,
            speed=s.speed,
            copies=s.notification_copies,
        )
        write_atomically(self.out / "alertmanager.yml", yaml.safe_dump(am_config, sort_keys=False))
        rule_file = prometheus_rule_file(rules, s.speed)
        write_atomically(self.out / "rules.yml", yaml.safe_dump(rule_file, sort_keys=False))
        targets = self.out / "targets.json"
        write_atomically(self.out / "prometheus.yml", yaml.safe_dump(self._prometheus_config(
            targets, am_port, scaler_port, sd_metrics_port, rules[0].evaluation_interval
        ), sort_keys=False))  # fmt: skip
        self.say("starting Alertmanager, Prometheus, exo-sd and exo-scaler")
        self.children.start(
            "alertmanager",
            [
                alertmanager,
                f"--config.file={self.out / 'alertmanager.yml'}",
                f"--storage.path={self.out / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
        )
        self.children.start(
            "prometheus",
            [
                prometheus,
                f"--config.file={self.out / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.out / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                f"--rules.alert.resend-delay={format_duration(s.lab(60))}",
                "--storage.tsdb.retention.time=1d",
            ],
        )
        self.children.start(
            "exo-sd",
            [
                _console_script("exo-sd"),
                "--pool",
                pool.id,
                "--port",
                "9100",
                "--out",
                str(targets),
                "--interval",
                f"{s.lab(t.sd_interval):g}",
                "--metrics-port",
                str(sd_metrics_port),
            ],
            env=api_env,
        )
        self.children.start(
            "exo-scaler",
            self._naive_scaler_command(pool.id, scaler_port, token_file)
            if s.scaler == "naive"
            else [
                _console_script("exo-scaler"),
                "serve",
                "--pool",
                pool.id,
                "--min",
                str(s.min_size),
                "--max",
                str(s.max_size),
                "--interval",
                f"{s.lab(t.tick):g}",
                "--host",
                "127.0.0.1",
                "--port",
                str(scaler_port),
                "--token-file",
                str(token_file),
                "--drain-token-file",
                str(drain_token_file),
                "--drain-seconds",
                f"{s.lab(t.drain):g}",
                "--operation-timeout",
                f"{max(10.0, s.lab(600)):g}",
            ],
            env=api_env,
        )
        self._wait_ready()

    def _naive_scaler_command(self, pool_id: str, port: int, token_file: Path) -> list[str]:
        s = self.s
        return [
            sys.executable, "-m", "exo_lab.naive_scaler", "--pool", pool_id,
            "--min", str(s.min_size), "--max", str(s.max_size),
            "--host", "127.0.0.1", "--port", str(port), "--token-file", str(token_file),
        ]  # fmt: skip

    def _prometheus_config(
        self, targets: Path, am_port: int, scaler_port: int, sd_port: int, evaluation: float
    ) -> dict[str, Any]:
        s = self.s
        scrape = format_duration(s.lab(s.timings.scrape_interval))
        return {
            "global": {
                "scrape_interval": scrape,
                "scrape_timeout": format_duration(min(s.lab(10), s.lab(s.timings.scrape_interval))),
                "evaluation_interval": format_duration(s.lab(evaluation)),
            },
            "rule_files": [str(self.out / "rules.yml")],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
            },
            "scrape_configs": [
                {
                    "job_name": "pool",
                    "file_sd_configs": [{"files": [str(targets)], "refresh_interval": scrape}],
                },
                {
                    "job_name": "slow-web",
                    "file_sd_configs": [{"files": [str(targets)], "refresh_interval": scrape}],
                    "relabel_configs": [
                        {
                            "source_labels": ["__address__"],
                            "regex": "(.+):[0-9]+",
                            "target_label": "__address__",
                            "replacement": "$1:8080",
                        }
                    ],
                },
                {
                    "job_name": "exo-scaler",
                    "static_configs": [{"targets": [f"127.0.0.1:{scaler_port}"]}],
                },
                {"job_name": "exo-sd", "static_configs": [{"targets": [f"127.0.0.1:{sd_port}"]}]},
            ],
        }

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

    def logged_decisions(self) -> list[dict[str, Any]]:
        """Every decision line of the scaler's structured log, as written (wall-clock times)."""
        path = self.out / "logs" / "exo-scaler.log"
        if not path.exists():
            return []
        entries = []
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == "decision" and isinstance(entry.get("time"), int | float):
                entries.append(entry)
        return entries

    def decisions_from_log(self) -> list[Decision]:
        """Every decision, in lab seconds since the load started.

        Exact where polling /status is not: a loaded machine can stretch a sampling pass past
        a sped-up tick.
        """
        if self.load_start_wall is None:
            return []
        return [
            Decision(
                t=round(float(entry["time"]) - self.load_start_wall, 3),
                action=str(entry.get("action")),
                from_size=int(entry.get("from") or 0),
                to_size=int(entry.get("to") or 0),
                reason=str(entry.get("reason")),
            )
            for entry in self.logged_decisions()
        ]

    # -- running --------------------------------------------------------------------------

    def run_load(self) -> list[RequestResult]:
        s = self.s
        profile = self.s.load_profile()
        progress_file = self.out / "load-progress.jsonl"
        results_file = self.out / "load-results.jsonl"
        for path in (progress_file, results_file):
            path.unlink(missing_ok=True)
        self.say(
            f"load: profile {s.profile}, {profile.duration:.0f} lab s "
            f"({s.duration:.0f} s at speed 1), peak {s.peak_members:g} members' worth "
            f"({s.peak_members * s.member_rps_at_line:.1f} rps of {s.work_ms} ms CPU)"
        )
        child = self.children.start(
            "load",
            [
                sys.executable,
                "-m",
                "exo_lab",
                "load",
                "--target",
                self.nlb_url,
                "--profile",
                s.profile,
                "--duration",
                f"{s.duration:g}",
                "--speed",
                f"{s.speed:g}",
                "--base-rps",
                f"{s.base_members * s.member_rps_at_line:g}",
                "--peak-rps",
                f"{s.peak_members * s.member_rps_at_line:g}",
                "--progress",
                str(progress_file),
                "--results",
                str(results_file),
            ],
        )
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
        decision = decisions[-1] if decisions else None
        return (
            f"t={t:5.0f}s  offered {last.get('offered_rps', 0):5.1f} rps  "
            f"p95 {'—' if p95 is None else f'{p95 * 1000:5.0f} ms'}  "
            f"cpu {'—' if cpu is None else f'{cpu:5.1f} %'}  "
            f"pool {sample['pool_size']} (serving {sample['supply']})  "
            f"last decision: {'—' if decision is None else f'{decision.action} {decision.reason}'}"
        )

    def report(self, results: list[RequestResult]) -> RunReport:
        s = self.s
        profile = s.load_profile()
        samples = []
        load_by_second: dict[int, list[RequestResult]] = {}
        for r in results:
            load_by_second.setdefault(int(r.scheduled), []).append(r)
        from .load import percentile

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
        t = self.s.timings
        rules = load_rules(self.s.provisioning)
        route = load_webhook_route(self.s.provisioning)
        up = next(r for r in rules if r.operator == ">")
        floor = {
            "scrape (half an interval on average)": t.scrape_interval / 2,
            "rate window filling past the line (about half the window)": 30.0,
            "rule evaluation (half an interval)": up.evaluation_interval / 2,
            "pending period": up.pending,
            "notification (group_wait)": route.group_wait,
            "scaler tick (half on average)": t.tick / 2,
            "API operation": t.operation_delay,
            "boot": t.boot_delay,
            "first health check": t.health_interval,
        }
        floor["total"] = math.fsum(floor.values())
        return floor

    def stop(self) -> None:
        self.children.stop_all()
        if self._zone_server is not None:
            self._zone_server.__exit__(None, None, None)
            self._zone_server = None
        elif self.zone is not None:
            self.zone.close()
        if self.plane is not None:
            self.plane.close()
            self.plane = None


def run_lab(settings: LabSettings) -> tuple[RunReport, dict[str, Path]]:
    with LabRun(settings) as lab:
        lab.start()
        results = lab.run_load()
        report = lab.report(results)
        paths = report.write(settings.out)
    return report, paths
