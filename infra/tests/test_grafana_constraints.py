"""grafana-provisioning/ against the checks Grafana itself runs when it provisions files.

Grafana cannot run here, so each check restates one rule of Grafana's source (Grafana 11, the
major the monitor installs; paths are in github.com/grafana/grafana). A file that breaks one of
them makes grafana-server fail at start on the monitor: no alerts, no webhooks, no scaling.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_support import MODULE_DIR, PROVISIONING_DIR

# pkg/setting/setting_unified_alerting.go: SchedulerBaseInterval = 10 * time.Second (the
# default of [unified_alerting] scheduler_tick_interval; changing it needs a feature toggle).
SCHEDULER_BASE_INTERVAL = 10

# pkg/services/ngalert/models/alert_rule.go: NoDataStateFromString and ErrStateFromString
# (Grafana 11 adds KeepLast to both).
NO_DATA_STATES = {"Alerting", "NoData", "OK", "KeepLast"}
EXEC_ERR_STATES = {"Alerting", "Error", "OK", "KeepLast"}

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def seconds(text: str) -> float:
    """A Prometheus-style duration (`1m`, `45s`, `1m30s`) in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a duration: {text!r}"
    return sum(float(n) * _UNITS[u] for n, u in parts)


def _yaml(relative: str) -> Any:
    return yaml.safe_load((PROVISIONING_DIR / relative).read_text())


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


# --- alert rules ---------------------------------------------------------------------------


def test_rule_group_interval_is_a_multiple_of_the_scheduler_base_interval() -> None:
    """pkg/services/ngalert/models/alert_rule.go, ValidateRuleGroupInterval: the interval must be
    non-zero and divided exactly by the scheduler's base interval (15s is refused)."""
    for group in _yaml("alerting/rules.yaml")["groups"]:
        interval = seconds(group["interval"])
        assert interval > 0 and interval % SCHEDULER_BASE_INTERVAL == 0, group["interval"]


@pytest.mark.parametrize("interval", ["15s", "5s", "1m5s"])
def test_the_interval_check_refuses_what_grafana_refuses(interval: str) -> None:
    assert seconds(interval) % SCHEDULER_BASE_INTERVAL != 0


def test_rule_states_and_fields_are_valid() -> None:
    """NoDataStateFromString / ErrStateFromString (alert_rule.go); the provisioning file's rule
    mapping (pkg/services/provisioning/alerting/rules_types.go) requires uid, title, condition
    and data, and `for` must parse as a duration."""
    (group,) = _yaml("alerting/rules.yaml")["groups"]
    assert group["name"] and group["folder"]
    for rule in group["rules"]:
        assert rule["noDataState"] in NO_DATA_STATES, rule["uid"]
        assert rule["execErrState"] in EXEC_ERR_STATES, rule["uid"]
        assert rule["uid"] and rule["title"] and rule["data"], rule
        # A uid is at most 40 characters of [a-zA-Z0-9-_] (pkg/util: ValidateUID).
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", rule["uid"]), rule["uid"]
        ref_ids = {query["refId"] for query in rule["data"]}
        assert rule["condition"] in ref_ids, rule["uid"]
        assert seconds(rule["for"]) >= 0
        # `for` shorter than the evaluation interval would fire on a single evaluation.
        assert seconds(rule["for"]) >= seconds(group["interval"])


# --- notification policy and contact point -------------------------------------------------


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    (root,) = _yaml("alerting/policies.yaml")["policies"]
    return dict(root)


def test_policy_is_a_valid_root_route(policy: dict[str, Any]) -> None:
    """pkg/services/ngalert/api/tooling/definitions/alertmanager_validation.go: a root route
    names a receiver that exists and has no matchers; group_interval and repeat_interval are
    non-zero; no label twice in group_by."""
    points = _yaml("alerting/contact-points.yaml")["contactPoints"]
    assert policy["receiver"] in {point["name"] for point in points}
    assert not {"matchers", "object_matchers", "match", "match_re"} & set(policy)
    assert len(set(policy["group_by"])) == len(policy["group_by"])
    for key in ("group_wait", "group_interval", "repeat_interval"):
        assert seconds(policy[key]) > 0, key


def test_repeat_interval_is_not_below_group_interval(policy: dict[str, Any]) -> None:
    """A repeat can only happen at a group_interval flush (effective_repeat): a shorter
    repeat_interval means nothing and hides the real cadence."""
    assert seconds(policy["repeat_interval"]) >= seconds(policy["group_interval"])


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


def test_contact_point_fields() -> None:
    """pkg/services/provisioning/alerting/contact_point_types.go: a name, and per receiver a
    uid, a type and non-empty settings; the webhook notifier requires `url`
    (grafana/alerting receivers/webhook config)."""
    for point in _yaml("alerting/contact-points.yaml")["contactPoints"]:
        assert point["name"].strip()
        for receiver in point["receivers"]:
            assert str(receiver["uid"]).strip()
            assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", receiver["uid"])
            assert receiver["type"] == "webhook"
            assert receiver["settings"] and receiver["settings"]["url"].startswith("http")


# --- dashboard and data source ---------------------------------------------------------------


def _datasource_uids(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        source = node.get("datasource")
        if isinstance(source, dict) and "uid" in source:
            found.add(source["uid"])
        for value in node.values():
            found |= _datasource_uids(value)
    elif isinstance(node, list):
        for item in node:
            found |= _datasource_uids(item)
    return found


def test_every_datasource_reference_is_the_provisioned_uid() -> None:
    """A dashboard panel, or a rule query, that names another uid shows "data source not found"
    (dashboards) or fails every evaluation (rules: DatasourceError)."""
    (source,) = _yaml("datasources/prometheus.yaml")["datasources"]
    dashboard = json.loads((PROVISIONING_DIR / "dashboards/autoscaling.json").read_text())
    assert _datasource_uids(dashboard) == {source["uid"]}
    (group,) = _yaml("alerting/rules.yaml")["groups"]
    for rule in group["rules"]:
        uids = {q["datasourceUid"] for q in rule["data"]} - {"__expr__"}
        assert uids == {source["uid"]}, rule["uid"]


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
