"""The lab's alerting is derived from grafana-provisioning/, and the real tools accept it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from exo_lab.stack.grafana import (
    ProvisioningError,
    alertmanager_config,
    format_duration,
    interpolate_credentials,
    load_rules,
    load_webhook_route,
    parse_duration,
    prometheus_rule_file,
    scale_expression,
)

PROVISIONING = Path(__file__).resolve().parents[3] / "grafana-provisioning"


@pytest.mark.parametrize(
    ("text", "seconds"), [("1m", 60), ("15s", 15), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1x", "m1", "1m 2s", "-1s"])
def test_bad_duration_is_refused(text: str) -> None:
    with pytest.raises(ProvisioningError):
        parse_duration(text)


def test_format_duration() -> None:
    assert format_duration(60) == "60s"
    assert format_duration(1.5) == "1500ms"
    assert format_duration(0) == "1ms"


def test_expression_windows_scale_with_speed() -> None:
    expr = 'avg(rate(x{mode="idle"}[1m])) + rate(y[30s])'
    assert scale_expression(expr, 10) == 'avg(rate(x{mode="idle"}[6s])) + rate(y[3s])'
    assert scale_expression(expr, 1) == 'avg(rate(x{mode="idle"}[60s])) + rate(y[30s])'


def test_rules_come_from_grafana_provisioning() -> None:
    rules = {r.uid: r for r in load_rules(PROVISIONING)}
    grafana = yaml.safe_load((PROVISIONING / "alerting" / "rules.yaml").read_text())
    by_uid = {r["uid"]: r for r in grafana["groups"][0]["rules"]}
    assert set(rules) == {"exo-pool-cpu-high", "exo-pool-shedding", "exo-pool-cpu-low"}
    for uid, rule in rules.items():
        source = by_uid[uid]
        assert rule.expr == source["data"][0]["model"]["expr"]
        assert rule.pending == parse_duration(source["for"])
        assert rule.action == source["labels"]["action"]
        assert dict(rule.labels) == source["labels"]
    high, shedding = rules["exo-pool-cpu-high"], rules["exo-pool-shedding"]
    assert (high.operator, high.threshold) == (">", 80)
    assert (shedding.operator, shedding.threshold, shedding.pending) == (">", 0, 30)
    assert shedding.labels["trigger"] == "shedding"
    low = rules["exo-pool-cpu-low"]
    assert (low.operator, low.threshold) == ("<", 20)


LABELS = {
    "exo-pool-cpu-high": {"action": "scale_up"},
    "exo-pool-shedding": {"action": "scale_up", "trigger": "shedding"},
    "exo-pool-cpu-low": {"action": "scale_down"},
}


def test_prometheus_rules_at_speed(tmp_path: Path) -> None:
    rules = load_rules(PROVISIONING)
    body = prometheus_rule_file(rules, speed=10)
    group = body["groups"][0]
    assert group["interval"] == format_duration(rules[0].evaluation_interval / 10)
    for rule, source in zip(group["rules"], rules, strict=True):
        assert rule["for"] == format_duration(source.pending / 10)
        query = scale_expression(source.expr, 10)
        assert rule["expr"].startswith(f"(({query}) {source.operator} {source.threshold:g})")
        assert rule["labels"] == LABELS[source.uid]
        # What Grafana's `values` carry, as Alertmanager can: exo-scaler's policy reads it
        # (the condition's input under its refId: `cpu`, or the shedding rule's `shed`).
        assert rule["annotations"]["value"] == "{{ $value }}"
        condition = f"value_{source.ref_id}"
        assert rule["annotations"][condition] == '{{ printf "%f" $value }}'
        assert rule["annotations"]["summary"] == source.annotations["summary"]
        # Every value query of the Grafana rule, derived from it and at speed: [1m] → [6s].
        carried = ["cpu"] if source.ref_id != "cpu" else []
        assert [v.ref_id for v in source.value_queries] == [
            *carried, "arrivals", "cpu_per_request", "serving", "evaluated_at",
        ]  # fmt: skip
        for value in source.value_queries:
            template = rule["annotations"][f"value_{value.ref_id}"]
            assert f"query `({scale_expression(value.expr, 10)})`" in template
            assert "[1m]" not in template
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(body))
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is required"
    check = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_alertmanager_config_follows_policy_and_contact_point(tmp_path: Path) -> None:
    route = load_webhook_route(PROVISIONING)
    token_file = tmp_path / "token"
    token_file.write_text("s3cret")
    body = alertmanager_config(
        route, scaler_base_url="http://127.0.0.1:18090", credentials_file=token_file, speed=10
    )
    assert body["route"]["repeat_interval"] == format_duration(route.repeat_interval / 10)
    assert body["route"]["group_by"] == list(route.group_by)
    webhook = body["receivers"][0]["webhook_configs"][0]
    assert webhook["url"] == "http://127.0.0.1:18090/webhook"
    assert webhook["send_resolved"] is False
    assert webhook["http_config"]["authorization"]["credentials_file"] == str(token_file)
    text = yaml.safe_dump(body)
    assert "s3cret" not in text
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    amtool = shutil.which("amtool")
    assert amtool, "amtool (Debian package prometheus-alertmanager) is required"
    check = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_credentials_interpolate_like_grafana() -> None:
    route = load_webhook_route(PROVISIONING)
    assert interpolate_credentials(route, {"EXO_SCALER_TOKEN": "abc"}) == "abc"
    # Grafana (values.go → os.ExpandEnv) turns an unset variable into "", never an error.
    assert interpolate_credentials(route, {}) == ""


def test_malformed_provisioning_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "alerting").mkdir()
    # Grafana accepts a group without rules; the lab cannot use it.
    (tmp_path / "alerting" / "rules.yaml").write_text(
        "groups:\n  - name: x\n    folder: f\n    interval: 10s\n"
    )
    with pytest.raises(ProvisioningError, match="no rule"):
        load_rules(tmp_path)
    (tmp_path / "alerting" / "rules.yaml").write_text(": not yaml : [")
    with pytest.raises(ProvisioningError, match="cannot read"):
        load_rules(tmp_path)


def test_duplicate_notifications_like_unclustered_grafana_replicas(tmp_path: Path) -> None:
    route = load_webhook_route(PROVISIONING)
    token_file = tmp_path / "token"
    token_file.write_text("t")
    body = alertmanager_config(
        route, scaler_base_url="http://127.0.0.1:1", credentials_file=token_file, copies=3
    )
    hooks = body["receivers"][0]["webhook_configs"]
    assert len(hooks) == 3
    assert all(h == hooks[0] for h in hooks)
    path = tmp_path / "am.yml"
    path.write_text(yaml.safe_dump(body))
    check = subprocess.run(["amtool", "check-config", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    with pytest.raises(ProvisioningError, match="copies"):
        alertmanager_config(
            route, scaler_base_url="http://127.0.0.1:1", credentials_file=token_file, copies=0
        )
