"""The stack's configuration and command lines, rendered from settings alone.

Pure functions: no process, socket or file is touched here, so every config and command line a
run will use can be checked in a unit test (and by `promtool`) without starting anything.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .grafana import ScalingRule, WebhookRoute, cpu_rule, format_duration
from .settings import LabSettings, ProductionTimings

#: exo-scaler's `--signal NAME=REFID`: each signal at the refId of the same name in
#: grafana-provisioning's rules, whose values the converter carries as `value_<refId>`
SIGNALS = ("cpu", "arrivals", "cpu_per_request", "serving", "evaluated_at")


@dataclass(frozen=True)
class StackPorts:
    """Loopback ports of the stack's services (chosen free at start)."""

    alertmanager: int
    prometheus: int
    scaler: int
    sd_metrics: int


@dataclass(frozen=True)
class StackFiles:
    """Where a run keeps what its children read: all under the run's (absolute) folder."""

    out: Path

    @property
    def targets(self) -> Path:
        return self.out / "targets.json"

    @property
    def rules(self) -> Path:
        return self.out / "rules.yml"

    @property
    def prometheus_config(self) -> Path:
        return self.out / "prometheus.yml"

    @property
    def alertmanager_config(self) -> Path:
        return self.out / "alertmanager.yml"

    @property
    def scaler_token(self) -> Path:
        return self.out / "secrets" / "scaler-token"

    @property
    def member_admin_token(self) -> Path:
        return self.out / "secrets" / "member-admin-token"

    @property
    def oracle_schedule(self) -> Path:
        """The oracle's size over the run, for the reactive limit (written as the load starts)."""
        return self.out / "oracle-schedule.json"

    @property
    def load_progress(self) -> Path:
        return self.out / "load-progress.jsonl"

    @property
    def load_results(self) -> Path:
        return self.out / "load-results.jsonl"


def prometheus_config(
    settings: LabSettings, files: StackFiles, ports: StackPorts, evaluation: float
) -> dict[str, Any]:
    s = settings
    scrape = format_duration(s.lab(s.timings.scrape_interval))
    return {
        "global": {
            "scrape_interval": scrape,
            "scrape_timeout": format_duration(min(s.lab(10), s.lab(s.timings.scrape_interval))),
            "evaluation_interval": format_duration(s.lab(evaluation)),
        },
        "rule_files": [str(files.rules)],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [f"127.0.0.1:{ports.alertmanager}"]}]}
            ]
        },
        "scrape_configs": [
            {
                "job_name": "pool",
                "file_sd_configs": [{"files": [str(files.targets)], "refresh_interval": scrape}],
            },
            {
                "job_name": "slow-web",
                "file_sd_configs": [{"files": [str(files.targets)], "refresh_interval": scrape}],
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
                "static_configs": [{"targets": [f"127.0.0.1:{ports.scaler}"]}],
            },
            {
                "job_name": "exo-sd",
                "static_configs": [{"targets": [f"127.0.0.1:{ports.sd_metrics}"]}],
            },
            # Prometheus itself: its failed rule evaluations stand in for Grafana's failed
            # queries (execErrState, see grafana.prometheus_rule_file).
            {
                "job_name": "prometheus",
                "static_configs": [{"targets": [f"127.0.0.1:{ports.prometheus}"]}],
            },
        ],
    }


def alertmanager_command(binary: str, files: StackFiles, port: int) -> list[str]:
    return [
        binary,
        f"--config.file={files.alertmanager_config}",
        f"--storage.path={files.out / 'alertmanager-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]


def prometheus_command(
    binary: str, settings: LabSettings, files: StackFiles, port: int
) -> list[str]:
    return [
        binary,
        f"--config.file={files.prometheus_config}",
        f"--storage.tsdb.path={files.out / 'prometheus-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        # Grafana and Prometheus both re-send a firing alert every minute at production speed.
        f"--rules.alert.resend-delay={format_duration(settings.lab(60))}",
        "--storage.tsdb.retention.time=1d",
    ]


def exo_sd_command(
    executable: str, settings: LabSettings, files: StackFiles, pool_id: str, metrics_port: int
) -> list[str]:
    return [
        executable,
        "--pool",
        pool_id,
        "--port",
        "9100",
        "--out",
        str(files.targets),
        "--interval",
        f"{settings.lab(settings.timings.sd_interval):g}",
        "--metrics-port",
        str(metrics_port),
    ]


def exo_scaler_command(
    executable: str, settings: LabSettings, files: StackFiles, pool_id: str, nlb_id: str, port: int
) -> list[str]:
    """exo-scaler as Terraform runs it — the demand policy sized in members (`--member-cores`:
    the lab's member CPU cap, as the instance type's vCPUs on Exoscale), the rule's values by
    `--signal`, who serves from the NLB's health checks (--nlb) — or `--policy step` for the
    "seed" contestant."""
    s, t = settings, settings.timings
    policy = (
        ["--policy", "step"]
        if s.scaler == "seed"
        else ["--policy", "demand", "--member-cores", f"{s.member_cores:g}"]
    )
    signals = [arg for name in SIGNALS for arg in ("--signal", f"{name}={name}")]
    return [
        executable,
        "serve",
        "--pool",
        pool_id,
        "--nlb",
        nlb_id,
        "--min",
        str(s.min_size),
        "--max",
        str(s.max_size),
        "--interval",
        f"{s.lab(t.tick):g}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--token-file",
        str(files.scaler_token),
        "--drain-token-file",
        str(files.member_admin_token),
        "--drain-seconds",
        f"{s.lab(t.drain):g}",
        "--operation-timeout",
        f"{max(10.0, s.lab(600)):g}",
        # exo-scaler's own timers are production seconds: divided like every other duration,
        # or a 120 s warm-up would last 40 ticks at speed 20.
        "--warm-up",
        f"{s.lab(t.warm_up):g}",
        "--warm-up-limit",
        f"{s.lab(t.warm_up_limit):g}",
        "--unhealthy-after",
        f"{s.lab(t.unhealthy_after):g}",
        *policy,
        *signals,
    ]


def naive_scaler_command(
    settings: LabSettings, files: StackFiles, pool_id: str, port: int
) -> list[str]:
    s = settings
    return [
        sys.executable, "-m", "exo_lab.bench.naive", "--pool", pool_id,
        "--min", str(s.min_size), "--max", str(s.max_size),
        "--host", "127.0.0.1", "--port", str(port), "--token-file", str(files.scaler_token),
    ]  # fmt: skip


def limit_scaler_command(
    settings: LabSettings, files: StackFiles, pool_id: str, port: int
) -> list[str]:
    """The reactive limit (bench/limit.py), ticking as exo-scaler does."""
    s = settings
    return [
        sys.executable, "-m", "exo_lab.bench.limit", "--pool", pool_id,
        "--schedule", str(files.oracle_schedule),
        "--min", str(s.min_size), "--max", str(s.max_size),
        "--interval", f"{s.lab(s.timings.tick):g}",
        "--host", "127.0.0.1", "--port", str(port), "--token-file", str(files.scaler_token),
    ]  # fmt: skip


def reaction_floor(
    timings: ProductionTimings, rules: list[ScalingRule], route: WebhookRoute
) -> dict[str, float]:
    """The least time the configured timers allow from a load step to new capacity.

    Two-stage members: the VM boots to `running`, then the guest boots and provisions
    (packages, at whose end the exporter is up, then Python) before slow-web starts; each
    stage counts at its least (no jitter). The pool operation is not on the path: new members
    appear `create_delay` after the scale call whatever the operation does. slow-web's own
    start is real in the lab and not counted here.
    """
    t, m = timings, timings.member
    up = cpu_rule(rules)
    floor = {
        "scrape (half an interval on average)": t.scrape_interval / 2,
        "rate window filling past the line (about half the window)": 30.0,
        "rule evaluation (half an interval)": up.evaluation_interval / 2,
        "pending period": up.pending,
        "notification (group_wait)": route.group_wait,
        "scaler tick (half on average)": t.tick / 2,
        "new members appear (instances lag size)": t.create_delay,
        "VM boot (starting → running)": t.boot_delay,
        "guest boot": m.guest_boot.base,
        "packages (apt; node_exporter up at their end)": m.packages.base,
        "Python wheels (pip), then slow-web starts": m.python.base,
        "first health check": t.health_interval,
    }
    floor["total"] = math.fsum(floor.values())
    return floor
