"""grafana-provisioning/ against the checks Grafana itself runs when it provisions files.

Grafana cannot run here. The checks are exo-lab's grafana_checks module — the same file the lab's
converter uses to refuse what Grafana refuses — each citing the Grafana 11 source it restates
(the major the monitor installs). A file that breaks one of them makes grafana-server fail at
start on the monitor: no alerts, no webhooks, no scaling. The cadence checks below are the
project's own (Alertmanager's timing rule against the scaler's tick).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_support import MODULE_DIR, PROVISIONING_DIR, load_grafana_checks

checks = load_grafana_checks()


def seconds(text: str) -> float:
    """A Prometheus-style duration (`1m`, `45s`, `1m30s`) in seconds, parsed as Grafana does."""
    return float(checks.prom_duration(text))


def _yaml(relative: str) -> Any:
    return yaml.safe_load((PROVISIONING_DIR / relative).read_text())


@pytest.fixture(scope="module")
def provisioning() -> Any:
    """The files as Grafana reads them on the monitor (every variable of grafana.env set)."""
    return checks.load(PROVISIONING_DIR, checks.deployment_environment())


def test_grafana_accepts_the_provisioning(provisioning: Any) -> None:
    """Rule groups, rules, contact points and the policy pass every check Grafana runs at start
    (see grafana_checks: ValidateRuleGroupInterval, NoData/Error states, uid/title/condition/
    data, `for`, root route receiver/matchers/group_by/timers, webhook url, ...)."""
    refused = [str(f) for f in checks.findings(provisioning) if f.kind == "grafana"]
    assert refused == []


def test_no_project_rule_is_broken(provisioning: Any) -> None:
    """What Grafana accepts but the loop cannot live with: a `for` shorter than the interval,
    repeat_interval below group_interval, a rule query or a dashboard panel on a data source
    uid other than the provisioned one."""
    broken = [str(f) for f in checks.findings(provisioning) if f.kind == "project"]
    assert broken == []


@pytest.mark.parametrize("interval", ["15s", "5s", "1m5s"])
def test_the_interval_check_refuses_what_grafana_refuses(interval: str) -> None:
    body = _yaml("alerting/rules.yaml")
    body["groups"][0]["interval"] = interval
    (finding,) = checks.rule_findings(body)
    assert finding.kind == "grafana"
    assert "should be non-zero and divided exactly by scheduler interval: 10" in finding.message


def test_grafana_environment_sets_every_variable_the_provisioning_uses() -> None:
    """An unset variable expands to "" on Grafana: a renamed token variable would send no
    Authorization header and every webhook would get a silent 401. The names the lab gives its
    "Grafana" and the ones the provisioning refers to are all in cloud-init's grafana.env."""
    template = (MODULE_DIR / "templates" / "grafana.env.tftpl").read_text()
    names = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", template, re.M))
    assert set(checks.GRAFANA_ENVIRONMENT_NAMES) <= names
    used: set[str] = set()
    for path in (PROVISIONING_DIR / "alerting").glob("*.yaml"):
        text = path.read_text().replace("$$", "")
        for braced, bare in re.findall(r"\$(?:__env)?\{([^}]+)\}|\$([A-Za-z_]\w*)", text):
            used.add(braced or bare)
    used.discard("__file")
    assert used and used <= set(checks.GRAFANA_ENVIRONMENT_NAMES), used


def test_contact_point_is_a_webhook() -> None:
    """The lab derives Alertmanager's webhook from it; exo-scaler is the only receiver."""
    for point in _yaml("alerting/contact-points.yaml")["contactPoints"]:
        for receiver in point["receivers"]:
            assert receiver["type"] == "webhook"
            assert receiver["settings"]["url"].startswith("http")


# --- notification cadence (the project's own rule) -------------------------------------------


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    (root,) = _yaml("alerting/policies.yaml")["policies"]
    return dict(root)


def effective_repeat(group_interval: float, repeat_interval: float) -> float:
    """The longest time between two re-sends of a notification that keeps firing.

    dispatch/dispatch.go (prometheus/alertmanager; Grafana's notifier is built on it): an
    aggregation group flushes every group_interval. notify/notify.go, DedupStage.needsUpdate:
    a flush re-sends only if the last send is older than repeat_interval. So the re-send comes
    at the first flush at or past repeat_interval — and when repeat_interval is an exact
    multiple of group_interval, timestamps a few milliseconds apart decide between that flush
    and the next one (1m/10s: measured 60.1 s here, 60-70 s on Grafana). Worst case: the first
    flush strictly past repeat_interval.
    """
    return (math.floor(repeat_interval / group_interval) + 1) * group_interval


def earliest_repeat(group_interval: float, repeat_interval: float) -> float:
    """The shortest time between two re-sends: the first flush at or past repeat_interval."""
    return math.ceil(repeat_interval / group_interval) * group_interval


def test_every_scaler_tick_sees_a_resent_notification(policy: dict[str, Any]) -> None:
    """The cadence computed with Alertmanager's rule stays under exo-scaler's 60 s tick, with
    room for jitter. (1m repeat with 10s groups re-sent every 70 s: some ticks saw nothing.)"""
    tick = 60
    cadence = effective_repeat(
        seconds(policy["group_interval"]), seconds(policy["repeat_interval"])
    )
    assert cadence <= tick - 5, cadence


def test_effective_repeat_matches_the_measured_rule() -> None:
    assert (earliest_repeat(10, 60), effective_repeat(10, 60)) == (60, 70)  # the old policy
    assert (earliest_repeat(10, 45), effective_repeat(10, 45)) == (50, 50)
    assert effective_repeat(10, 50) == 60


def test_grafana_is_pinned_to_the_major_tested_here() -> None:
    """The checks above are Grafana 11's: the monitor must not get another major from apt."""
    templates = MODULE_DIR / "templates"
    pin = (templates / "grafana-apt-pin.tftpl").read_text()
    assert re.search(r"^Package: grafana$", pin, re.M)
    assert re.search(r"^Pin: version 11\.\*$", pin, re.M)
    assert re.search(r"^Pin-Priority: 1001$", pin, re.M)


def test_docs_state_the_same_timings() -> None:
    readme = (PROVISIONING_DIR / "README.md").read_text()
    (group,) = _yaml("alerting/rules.yaml")["groups"]
    assert f"(`{group['interval']}`;" in readme
    architecture = (Path(__file__).resolve().parents[2] / "docs/architecture.md").read_text()
    assert f"every {int(seconds(group['interval']))} s" in architecture
    assert "every 15 s; above" not in architecture
