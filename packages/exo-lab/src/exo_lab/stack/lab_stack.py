"""The lab stack, up: the zone with its members and NLB in this process, the real Prometheus
and Alertmanager, exo-sd and exo-scaler as children, all wired as `render` says.

`LabStack` is the bring-up and the tear-down, and what the lab's probe (`lab_probe.py`) and the
benchmark read from it; the measured run (`measure/loop.py`) samples it through `LabProbe`.
Every production duration is divided by the settings' `speed`.
"""

from __future__ import annotations

import json
import logging
import secrets
import sys
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
import yaml

from exo_scaler import DecisionRecord, read_decision_log
from exo_zone import LocalZone, Zone, ZoneApi

from ..dataplane import DataPlane
from ..dataplane.members import MemberSettings, lab_prefix_for
from ..files import write_atomically
from . import render
from .grafana import (
    ScalingRule,
    WebhookRoute,
    alertmanager_config,
    cpu_rule,
    grafana_environment,
    load_rules,
    load_webhook_route,
    notifier_credentials,
    prometheus_rule_file,
    scale_expression,
)
from .iam_role import RolePolicyError, render_role_policy
from .outage import OutageDriver
from .processes import ChildProcesses, find_binary, free_port, wait_for
from .settings import TICKING_SCALERS, LabError, LabSettings
from .tick_phase import TickAlignment, align_to_tick

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


#: An id for rendering the role policy once before the zone exists (to refuse a bad file early).
_NO_ID = "00000000-0000-0000-0000-000000000000"


class LabStack:
    """The stack, up: zone, members, NLB and the children; a context manager stops it all."""

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
        #: service (exo-sd, exo-scaler) -> the credentials and endpoint it runs with: a key
        #: per service, each with its own role (Terraform's policy files)
        self.service_env: dict[str, dict[str, str]] = {}
        self.endpoint = ""
        self.nlb_url = ""
        self.prometheus_url = ""
        self.scaler_url = ""
        self.alertmanager_url = ""
        self.scaler_token = secrets.token_urlsafe(24)
        self.pool_id = ""
        self.nlb_id = ""
        self.service_id = ""
        self.cpu_expr = ""
        self.rules: list[ScalingRule] = []
        self.route: WebhookRoute | None = None
        #: where the load was put against the scaler's tick (settings' tick_phase), or None
        self.tick_alignment: TickAlignment | None = None
        #: lab seconds from the tick seen to the load's start (set as the load starts)
        self.load_after_tick: float | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Self:
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
        # The initial members provision before the monitoring starts, as in a deployment
        # where the monitor's own provisioning (Grafana, Prometheus) outlasts the pool's: the
        # alerts start from a steady pool, not from its boot CPU.
        self._wait_members_serving()
        self._write_secrets()
        ports = render.StackPorts(*(free_port() for _ in range(4)))
        self._write_configs(ports)
        self.say("starting Alertmanager, Prometheus, exo-sd and exo-scaler")
        self._start_children(prometheus, alertmanager, ports)
        self._wait_ready()

    def align_to_tick(self) -> TickAlignment | None:
        """Return at the settings' phase of the scaler's tick; call just before the load."""
        s = self.s
        if s.tick_phase is None or s.scaler not in TICKING_SCALERS:
            return None
        self.tick_alignment = align_to_tick(
            f"{self.scaler_url}/status", s.lab(s.timings.tick), s.tick_phase
        )
        return self.tick_alignment

    def _load_provisioning(self) -> None:
        s = self.s
        if not (s.provisioning / "alerting" / "rules.yaml").is_file():
            raise LabError(
                f"no Grafana provisioning at {s.provisioning}: run from the repository root "
                "or pass --provisioning"
            )
        self.rules = load_rules(s.provisioning)
        self.route = load_webhook_route(s.provisioning)
        # Refused before any process starts; rendered for the real pool once it exists.
        self._role_policies(_NO_ID, _NO_ID)
        self.cpu_expr = scale_expression(cpu_rule(self.rules).expr, s.speed)

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
                lifecycle=t.member.scaled(s.speed),
                compensate_start_at_speed=s.speed,
            )
        )
        local = self.local_zone = LocalZone(
            timings=t.zone_timings(s.speed),
            runtime=self.plane.runtime,
            member_network=s.member_network,
            iam_binds_url_parameters=s.iam_binds_url_parameters,
        )
        self.zone, self.zone_api = local.zone, local.api
        pool = local.zone.create_pool("web", s.initial_size, s.instance_type)
        self.pool_id = pool.id
        lb = local.zone.create_load_balancer(
            "web-nlb",
            pool.id,
            port=free_port(),
            healthcheck=t.health_check(s.speed),
        )
        self.service_id = lb.services[0].id
        self.nlb_id = lb.id
        nlb = self.plane.attach(local.zone)
        self.nlb_url = f"http://{next(iter(nlb.addresses().values()))}/"
        try:
            self.endpoint = local.start()
        except RuntimeError as exc:
            raise LabError(f"the zone API did not start: {exc}") from exc
        # exo-sd and exo-scaler each get a key whose role is the one Terraform creates for
        # it: a call it does not grant answers 403 here as on Exoscale.
        for service, policy in self._role_policies(pool.id, lb.id).items():
            key, _ = local.add_key(policy)
            self.service_env[service] = local.env_for(key)
        zone_info = {"endpoint": self.endpoint, "pool_id": pool.id, "nlb": self.nlb_url}
        write_atomically(self.out / "zone.json", json.dumps(zone_info, indent=2))

    def _role_policies(self, pool_id: str, nlb_id: str) -> dict[str, dict[str, object]]:
        s = self.s
        try:
            return {
                service: render_role_policy(
                    path, pool_id=pool_id, nlb_id=nlb_id, scope_by_id=s.iam_scope_by_id
                )
                for service, path in s.role_policy_files.items()
            }
        except RolePolicyError as exc:
            raise LabError(str(exc)) from None

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
        # What "Grafana" sends: the contact point's credentials expanded as Grafana would with
        # the environment cloud-init gives it; an unset variable is said loudly (Grafana is mute).
        credentials, warning = notifier_credentials(
            self.route,
            grafana_environment(self.scaler_token),
            files.out / "secrets" / "grafana-credentials",
        )
        if warning:
            self.say(warning)
        self.alertmanager_url = f"http://127.0.0.1:{ports.alertmanager}"
        am_config = alertmanager_config(
            self.route,
            scaler_base_url=self.scaler_url,
            credentials_file=credentials,
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
            env=self.service_env["exo-sd"],
        )
        if s.scaler == "naive":
            scaler = render.naive_scaler_command(s, files, self.pool_id, ports.scaler)
        elif s.scaler == "limit":
            scaler = render.limit_scaler_command(s, files, self.pool_id, ports.scaler)
        else:
            scaler = render.exo_scaler_command(
                _console_script("exo-scaler"), s, files, self.pool_id, self.nlb_id, ports.scaler
            )
        self.children.start("exo-scaler", scaler, env=self.service_env["exo-scaler"])

    def _wait_members_serving(self) -> None:
        s = self.s
        # VM boot and the longest provisioning the model draws, twice, for a loaded machine.
        budget = 30 + s.lab(s.timings.boot_delay + s.timings.member.provisioning_most) * 2

        def members_serving() -> bool:
            self.children.check_alive()
            return sum(self.serving().values()) >= s.initial_size

        wait_for(members_serving, "pool members behind the NLB", budget)

    def _wait_ready(self) -> None:
        assert self.zone is not None
        s = self.s

        def children_up() -> bool:
            self.children.check_alive()
            return True

        self._wait_members_serving()
        wait_for(lambda: children_up() and httpx.get(f"{self.scaler_url}/healthz", timeout=2)
                 .is_success, "exo-scaler", 30)  # fmt: skip
        wait_for(lambda: children_up() and self._prometheus_targets_up() >= s.initial_size,
                 "Prometheus scraping the pool", 60)  # fmt: skip
        self.say(f"stack ready: NLB {self.nlb_url}, Prometheus {self.prometheus_url}")

    def serving(self) -> dict[str, bool]:
        """{member address: in the NLB's rotation}, as the balancer's health checks see it."""
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

    # -- what a run reads from the stack --------------------------------------------------

    def scaler_log(self) -> Path:
        return self.out / "logs" / "exo-scaler.log"

    def logged_decisions(self) -> list[DecisionRecord]:
        """Every decision the scaler logged, as written (wall-clock times).

        Read from the log, not by polling /status: a loaded machine can stretch a sampling pass
        past a sped-up tick.
        """
        path = self.scaler_log()
        return read_decision_log(path) if path.exists() else []

    def reaction_floor(self) -> dict[str, float]:
        """The least time the configured timers allow from a load step to new capacity."""
        rules = self.rules or load_rules(self.s.provisioning)
        route = self.route or load_webhook_route(self.s.provisioning)
        return render.reaction_floor(self.s.timings, rules, route)

    def outage_driver(self) -> OutageDriver | None:
        """`--monitoring-outage` on this stack's Prometheus (stack/outage.py), or None."""
        outage = self.s.monitoring_outage
        if outage is None:
            return None
        files = self.files
        port = urlsplit(self.prometheus_url).port
        binary = find_binary("prometheus")
        assert port is not None and binary is not None

        def child() -> list[Any]:
            return [c for c in self.children.children if c.name == "prometheus"]

        def stop() -> None:
            for found in child():
                self.children.stop(found)
                self.children.children.remove(found)

        def start() -> None:
            command = render.prometheus_command(binary, self.s, files, port)
            self.children.start("prometheus", command)

        def write(config: dict[str, Any]) -> None:
            write_atomically(files.prometheus_config, yaml.safe_dump(config, sort_keys=False))

        return OutageDriver(
            outage,
            self.s.speed,
            config=yaml.safe_load(files.prometheus_config.read_text()),
            write_config=write,
            prometheus_pid=lambda: next((c.process.pid for c in child() if c.alive()), None),
            stop_prometheus=stop,
            start_prometheus=start,
            say=self.say,
        )

    def stop(self) -> None:
        self.children.stop_all()
        if self.local_zone is not None:
            self.local_zone.stop()
            self.local_zone = None
        if self.plane is not None:
            self.plane.close()
            self.plane = None
