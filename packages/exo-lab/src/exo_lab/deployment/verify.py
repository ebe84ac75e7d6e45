"""`exo-lab verify`: is a fresh deployment what Terraform said it is? One line per check.

Every check is read-only: GETs to the NLB, Prometheus, Grafana (or the lab's stand-ins),
exo-scaler's /status and the zone API. Each service's key is probed with the read calls its role
allows and the reads it must not have (keys.py, `mutating=False, thorough=True`: never a scale,
never an evict; `exo-lab check-keys` sends those two no-op calls too).

Against a lab (`exo-lab up`, whose outputs carry a `lab` entry) Grafana does not exist: its
checks become the stand-ins the lab runs instead (Prometheus alert rules derived from the same
provisioning, Alertmanager's receiver to the same webhook), and each such line says so.

Grafana's HTTP API: alert rules `GET /api/v1/provisioning/alert-rules` and contact points
`GET /api/v1/provisioning/contact-points` (https://grafana.com/docs/grafana/latest/developers/
http_api/alerting_provisioning/), dashboards `GET /api/search?query=<title>`
(https://grafana.com/docs/grafana/latest/developers/http_api/folder_dashboard_search/), with
basic auth as the admin user.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import yaml

from exo_client import pool_health_from

from ..stack.grafana import ScalingRule, load_rules, load_webhook_route, prometheus_rule_file
from .access import Answer, SignedApi, http_get
from .keys import KeyReport, check_keys
from .outputs import Deployment, OutputsError

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    #: what the lab checked instead of the real component (empty: the real thing was checked)
    stand_in: str = ""

    def line(self) -> str:
        tag = f" [lab stand-in: {self.stand_in}]" if self.stand_in else ""
        return f"{self.status.upper():4}  {self.name}: {self.detail}{tag}"


@dataclass(frozen=True)
class Provisioned:
    """What grafana-provisioning/ says Grafana must have loaded."""

    rules: list[ScalingRule]
    contact_points: list[str]
    webhook_path: str
    dashboards: list[dict[str, str]]  # uid, title

    @classmethod
    def load(cls, provisioning: Path) -> Provisioned:
        rules = load_rules(provisioning)
        route = load_webhook_route(provisioning)
        points = yaml.safe_load((provisioning / "alerting" / "contact-points.yaml").read_text())
        dashboards = []
        for path in sorted((provisioning / "dashboards").glob("*.json")):
            body = json.loads(path.read_text())
            dashboards.append({"uid": str(body.get("uid", "")), "title": str(body["title"])})
        return cls(
            rules=rules,
            contact_points=[p["name"] for p in points.get("contactPoints", [])],
            webhook_path=urlsplit(route.url).path,
            dashboards=dashboards,
        )


@dataclass
class Target:
    """A deployment as verify reaches it: outputs + flags, the admin key, the provisioning."""

    deployment: Deployment
    provisioned: Provisioned
    admin: SignedApi | None  # the operator's key (list-load-balancers is no service's)
    #: the pool's members from the API, filled by the first check that lists them
    members: list[dict[str, Any]] | None = field(default=None)
    #: both keys' probes, run once for the two key checks
    key_report: KeyReport | None = field(default=None)

    @property
    def is_lab(self) -> bool:
        return self.deployment.lab is not None

    def pool_members(self) -> tuple[list[dict[str, Any]] | None, str]:
        if self.members is not None:
            return self.members, ""
        if self.admin is None:
            return None, "no operator key: set EXOSCALE_API_KEY and EXOSCALE_API_SECRET"
        answer = self.admin.list_pool_instances(self.deployment.text("instance_pool_id"))
        if not answer.ok:
            return None, f"list-instances answered {answer.describe()}"
        self.members = list(answer.body.get("instances", []))
        return self.members, ""


def _ip(member: dict[str, Any]) -> str:
    return str(member.get("public-ip") or "")


def _label(member: dict[str, Any]) -> str:
    return f"{member.get('name', member.get('id'))} ({_ip(member) or 'no address'})"


# -- the checks ---------------------------------------------------------------------------------


def check_nlb_health(t: Target) -> Check:
    name = "NLB answers /health with OK"
    url = urljoin(t.deployment.app_url, "health")
    answer = http_get(url)
    body = answer.body.strip() if isinstance(answer.body, str) else answer.body
    if answer.status == 200 and body == "OK":
        return Check(name, PASS, f"{url} → 200 OK")
    return Check(name, FAIL, f"{url} → {answer.describe()} {str(body)[:60]!r}")


def check_members_behind_nlb(t: Target) -> Check:
    name = "every pool member is behind the NLB and healthy"
    members, why = t.pool_members()
    if members is None or t.admin is None:
        return Check(name, FAIL, why)
    pool_id = t.deployment.text("instance_pool_id")
    listed = t.admin.list_load_balancers()
    if not listed.ok:
        return Check(name, FAIL, f"list-load-balancers answered {listed.describe()}")
    health, nlb = None, ""
    for lb in listed.body.get("load-balancers", []):
        detail = t.admin.get_load_balancer(str(lb["id"]))
        if not detail.ok:
            return Check(name, FAIL, f"get-load-balancer {lb['id']} answered {detail.describe()}")
        found = pool_health_from(detail.body, pool_id)
        if found is not None:
            health, nlb = found, str(detail.body.get("name", lb["id"]))
    if health is None:
        return Check(name, FAIL, f"no NLB service sends traffic to pool {pool_id}")
    problems = []
    for m in members:
        if m.get("state") != "running":
            problems.append(f"{_label(m)} is {m.get('state')}")
        elif not health.get(_ip(m)):
            answer = {None: "absent", False: "failure"}[health.get(_ip(m))]
            problems.append(f"{_label(m)} health check {answer}")
    if not members:
        problems.append("the pool has no member")
    if problems:
        return Check(name, FAIL, "; ".join(problems))
    return Check(name, PASS, f"{len(members)} running, all 'success' on NLB {nlb}")


def _active_targets(t: Target) -> tuple[list[dict[str, Any]] | None, str]:
    url = urljoin(_slash(t.deployment.text("prometheus_url")), "api/v1/targets")
    answer = http_get(url, params={"state": "active"})
    if not answer.ok:
        return None, f"{url} → {answer.describe()}"
    return list(answer.body["data"]["activeTargets"]), ""


def check_prometheus_targets(t: Target) -> Check:
    name = "Prometheus's targets equal the pool's members"
    members, why = t.pool_members()
    if members is None:
        return Check(name, FAIL, why)
    targets, why = _active_targets(t)
    if targets is None:
        return Check(name, FAIL, why)
    pool = [x for x in targets if x["labels"].get("job") == "pool"]
    scraped = {x["labels"].get("instance", "").rsplit(":", 1)[0]: x for x in pool}
    expected = {_ip(m) for m in members}
    problems = []
    if missing := sorted(expected - scraped.keys()):
        problems.append(f"members not scraped: {', '.join(missing)}")
    if extra := sorted(scraped.keys() - expected):
        problems.append(f"targets that are not members: {', '.join(extra)}")
    down = [f"{a} ({x.get('lastError') or x['health']})" for a, x in sorted(scraped.items())
            if x["health"] != "up" and a in expected]  # fmt: skip
    if down:
        problems.append(f"down: {', '.join(down)}")
    if problems:
        return Check(name, FAIL, "; ".join(problems))
    return Check(name, PASS, f"{len(expected)} members = {len(scraped)} targets of job pool, up")


def check_monitor_services(t: Target) -> Check:
    name = "Prometheus scrapes exo-sd and exo-scaler"
    targets, why = _active_targets(t)
    if targets is None:
        return Check(name, FAIL, why)
    problems = []
    for job in ("exo-sd", "exo-scaler"):
        found = [x for x in targets if x["labels"].get("job") == job]
        if not found:
            problems.append(f"{job}: no target")
        for x in found:
            if x["health"] != "up":
                problems.append(f"{job}: {x['health']} ({x.get('lastError') or 'no error'})")
    if problems:
        return Check(name, FAIL, "; ".join(problems))
    return Check(name, PASS, "both up")


def check_grafana_rules(t: Target) -> Check:
    name = "Grafana has loaded the alert rules"
    wanted = {r.uid: r.title for r in t.provisioned.rules}
    if t.is_lab:
        stand_in = "Prometheus rules derived from grafana-provisioning, loaded"
        url = urljoin(_slash(t.deployment.text("prometheus_url")), "api/v1/rules")
        answer = http_get(url)
        if not answer.ok:
            return Check(name, FAIL, f"{url} → {answer.describe()}", stand_in)
        loaded = {r["name"] for g in answer.body["data"]["groups"] for r in g["rules"]}
        # The names the lab gives Grafana's rules, from the same function that wrote them.
        derived = prometheus_rule_file(t.provisioned.rules)["groups"][0]["rules"]
        missing = [r["alert"] for r in derived if r["alert"] not in loaded]
        if missing:
            return Check(name, FAIL, f"rules not loaded: {', '.join(missing)}", stand_in)
        return Check(name, PASS, f"{len(wanted)} rules loaded", stand_in)
    answer = _grafana(t, "api/v1/provisioning/alert-rules")
    if not answer.ok:
        return Check(name, FAIL, f"alert-rules → {answer.describe()}")
    loaded = {r.get("uid") for r in answer.body} if isinstance(answer.body, list) else set()
    missing = [f"{uid} ({title})" for uid, title in wanted.items() if uid not in loaded]
    if missing:
        return Check(name, FAIL, f"rules not loaded: {', '.join(missing)}")
    return Check(name, PASS, f"{', '.join(wanted)}")


def check_grafana_contact_point(t: Target) -> Check:
    name = "Grafana has loaded the contact point"
    wanted = t.provisioned.contact_points
    if t.is_lab:
        stand_in = "Alertmanager receiver with the contact point's webhook"
        lab = t.deployment.lab or {}
        url = urljoin(_slash(str(lab.get("alertmanager_url", ""))), "api/v2/status")
        answer = http_get(url)
        if not answer.ok:
            return Check(name, FAIL, f"{url} → {answer.describe()}", stand_in)
        config = yaml.safe_load(answer.body["config"]["original"])
        scaler = urlsplit(t.deployment.text("scaler_internal_url")).netloc
        hooks = [
            w["url"] for r in config.get("receivers", []) for w in r.get("webhook_configs", [])
        ]
        good = [u for u in hooks if urlsplit(u).netloc == scaler
                and urlsplit(u).path == t.provisioned.webhook_path]  # fmt: skip
        if not good:
            return Check(name, FAIL, f"no receiver posts to {scaler}"
                         f"{t.provisioned.webhook_path} (has {hooks})", stand_in)  # fmt: skip
        return Check(name, PASS, f"receiver → {good[0]}", stand_in)
    answer = _grafana(t, "api/v1/provisioning/contact-points")
    if not answer.ok:
        return Check(name, FAIL, f"contact-points → {answer.describe()}")
    loaded = {p.get("name") for p in answer.body} if isinstance(answer.body, list) else set()
    missing = [n for n in wanted if n not in loaded]
    if missing:
        return Check(name, FAIL, f"contact points missing: {', '.join(missing)}")
    return Check(name, PASS, ", ".join(wanted))


def check_grafana_dashboard(t: Target) -> Check:
    name = "Grafana has loaded the dashboard"
    if t.is_lab:
        return Check(name, SKIP, "the lab runs no Grafana, so no dashboard",
                     "none (a dashboard needs Grafana)")  # fmt: skip
    missing = []
    for dash in t.provisioned.dashboards:
        answer = _grafana(t, "api/search", {"query": dash["title"]})
        if not answer.ok:
            return Check(name, FAIL, f"search → {answer.describe()}")
        found = answer.body if isinstance(answer.body, list) else []
        if not any(d.get("uid") == dash["uid"] or d.get("title") == dash["title"] for d in found):
            missing.append(dash["title"])
    if missing:
        return Check(name, FAIL, f"dashboards missing: {', '.join(missing)}")
    return Check(name, PASS, ", ".join(d["title"] for d in t.provisioned.dashboards))


def check_scaler_status(t: Target) -> Check:
    name = "exo-scaler's /status shows the pool and the bounds"
    url = urljoin(_slash(t.deployment.text("scaler_internal_url")), "status")
    token = t.deployment.text("scaler_token")
    answer = http_get(url, headers={"Authorization": f"Bearer {token}"} if token else None)
    if not answer.ok or not isinstance(answer.body, dict):
        return Check(name, FAIL, f"{url} → {answer.describe()}")
    s = answer.body
    pool_id = t.deployment.text("instance_pool_id")
    problems = []
    if (s.get("pool") or {}).get("id") != pool_id:
        problems.append(f"pool {(s.get('pool') or {}).get('id')} is not {pool_id}")
    low, high, size = s.get("min"), s.get("max"), s.get("size")
    if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high):
        problems.append(f"bounds {low}–{high} are not valid")
    elif not isinstance(size, int) or not low <= size <= high:
        problems.append(f"size {size} outside {low}–{high}")
    lab = t.deployment.lab or {}
    if lab and (low, high) != (lab.get("min_size"), lab.get("max_size")):
        problems.append(f"bounds {low}–{high}, the lab was started with "
                        f"{lab.get('min_size')}–{lab.get('max_size')}")  # fmt: skip
    if s.get("paused"):
        problems.append("scaling is paused (POST /resume)")
    if problems:
        return Check(name, FAIL, "; ".join(problems))
    return Check(name, PASS, f"pool {pool_id} size {size}, bounds {low}–{high}, "
                 f"{s.get('state')}, tick {s.get('interval')} s")  # fmt: skip


def _check_key(t: Target, service: str) -> Check:
    """What the service's key must do and one thing it must not (keys.py, read calls only)."""
    name = f"{service}'s key can do what it needs and nothing more"
    if t.key_report is None:
        t.key_report = check_keys(t.deployment, t.admin, mutating=False, thorough=True)
    report = t.key_report
    mine = [r for r in report.results if r.probe.service == service]
    failed = [r for r in mine if not r.ok]
    if failed:
        advice = report.advice()
        details = "; ".join(f"{r.probe.operation} {r.detail}" for r in failed)
        return Check(name, FAIL, details + (f" — {advice[0]}" if advice else ""))
    needed = [r.probe.operation for r in mine if r.probe.expect == "allowed"]
    refused = [r.probe.operation for r in mine if r.probe.expect == "refused"]
    return Check(name, PASS, f"{', '.join(needed)} allowed; {', '.join(refused)} refused")


def check_exo_sd_key(t: Target) -> Check:
    return _check_key(t, "exo-sd")


def check_exo_scaler_key(t: Target) -> Check:
    return _check_key(t, "exo-scaler")


CHECKS: tuple[Callable[[Target], Check], ...] = (
    check_nlb_health,
    check_members_behind_nlb,
    check_prometheus_targets,
    check_monitor_services,
    check_grafana_rules,
    check_grafana_contact_point,
    check_grafana_dashboard,
    check_scaler_status,
    check_exo_sd_key,
    check_exo_scaler_key,
)


def run_checks(target: Target, checks: Iterable[Callable[[Target], Check]] = CHECKS) -> list[Check]:
    results = []
    for check in checks:
        try:
            results.append(check(target))
        except (KeyError, TypeError, ValueError, AttributeError, yaml.YAMLError) as exc:
            # An answer of the wrong shape is a failed check, named, not a crash of verify.
            name = check.__name__.removeprefix("check_").replace("_", " ")
            results.append(Check(name, FAIL, f"unexpected answer ({type(exc).__name__}: {exc})"))
    return results


def build_target(
    deployment: Deployment,
    provisioning: Path,
    admin_key: tuple[str, str] | None,
) -> Target:
    """Outputs → Target. The operator's key reads the NLB; in a lab, the zone's own key does."""
    deployment.require(
        ("app_url", "instance_pool_id", "prometheus_url", "scaler_internal_url"),
        hint={
            "app_url": "--app-url",
            "instance_pool_id": "--pool-id",
            "prometheus_url": "--prometheus-url",
            "scaler_internal_url": "--scaler-url",
        },
    )
    if deployment.lab is None:
        deployment.require(("grafana_url",), hint={"grafana_url": "--grafana-url"})
    try:
        provisioned = Provisioned.load(provisioning)
    except (OSError, ValueError, KeyError) as exc:
        raise OutputsError(
            f"cannot read the Grafana provisioning at {provisioning}: {exc}"
        ) from None
    if admin_key is None:
        admin_key = deployment.lab_operator_key
    admin = SignedApi(deployment.api_endpoint, *admin_key) if admin_key else None
    return Target(deployment, provisioned, admin)


def _grafana(t: Target, path: str, params: dict[str, str] | None = None) -> Answer:
    password = t.deployment.text("grafana_admin_password")
    return http_get(
        urljoin(_slash(t.deployment.text("grafana_url")), path),
        params=params,
        auth=("admin", password) if password else None,
    )


def _slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
