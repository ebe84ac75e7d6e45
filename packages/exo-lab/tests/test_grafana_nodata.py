"""noDataState / execErrState reproduced in the Prometheus rules, checked with `promtool test
rules` (Prometheus's own rule unit tester: synthetic series, exact alert labels and annotations).

What Grafana does is in pkg/services/ngalert/state/state.go (resultNoData, resultError) and
compat.go (noDataAlert, errorAlert); exo_lab.stack.grafana.prometheus_rule_file says how each
state is reproduced and what is approximated.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from exo_lab.stack.grafana import ScalingRule, load_rules, prometheus_rule_file

PROVISIONING = Path(__file__).resolve().parents[3] / "grafana-provisioning"
IDLE = 'node_cpu_seconds_total{mode="idle",job="pool",instance="127.0.1.1:9100"}'
FAILURES = 'prometheus_rule_evaluation_failures_total{rule_group="/run/rules.yml;autoscaling"}'


def rules_with(**states: str) -> list[ScalingRule]:
    """The two CPU rules with other states: the shedding rule is derived the same way, and
    all of its queries are guarded, so it has no NoData of its own to show."""
    cpu_rules = [r for r in load_rules(PROVISIONING) if "trigger" not in r.labels]
    return [dataclasses.replace(rule, **states) for rule in cpu_rules]


def by_action(rules: list[ScalingRule]) -> dict[str, ScalingRule]:
    return {rule.action: rule for rule in rules}


def promtool_test(
    tmp_path: Path, rules: list[ScalingRule], series: list[dict[str, str]], checks: list[Any]
) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is required"
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(prometheus_rule_file(rules)))
    test = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "10s",
        "tests": [{"interval": "10s", "input_series": series, "alert_rule_test": checks}],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test, sort_keys=False))
    run = subprocess.run(
        [promtool, "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def no_data_labels(rule: ScalingRule) -> dict[str, str]:
    """compat.go noDataAlert + eval.go's NoData result labels + the rule's labels."""
    return {
        "action": rule.action,
        "rulename": rule.title,
        "datasource_uid": "exo-prometheus",
        "ref_id": "cpu",
        "grafana_folder": "Autoscaling",
    }


def test_ok_emits_nothing_when_the_data_goes(tmp_path: Path) -> None:
    """grafana-provisioning/ says OK: no sample, no alert (and no rule beyond the three)."""
    rules = load_rules(PROVISIONING)
    assert {(r.no_data_state, r.exec_err_state) for r in rules} == {("OK", "OK")}
    assert [len(g["rules"]) for g in prometheus_rule_file(rules)["groups"]] == [3]
    series = [{"series": IDLE, "values": "0+5x12 _x40"}]  # 50 % CPU for 2 min, then nothing
    checks = [
        {"eval_time": "5m", "alertname": name, "exp_alerts": []}
        for name in (
            "DatasourceNoData", "exo_pool_cpu_high", "exo_pool_shedding", "exo_pool_cpu_low"
        )
    ]  # fmt: skip
    promtool_test(tmp_path, rules, series, checks)


def test_nodata_emits_datasource_nodata_with_the_rules_labels(tmp_path: Path) -> None:
    """NoData → DatasourceNoData at once (no pending period), carrying `action`: the alert that
    looks like a scale signal and must not be one."""
    rules = rules_with(no_data_state="NoData")
    up, down = by_action(rules)["scale_up"], by_action(rules)["scale_down"]
    series = [{"series": IDLE, "values": "0+5x12 _x40"}]
    checks = [
        # While the data is there: no DatasourceNoData.
        {"eval_time": "1m", "alertname": "DatasourceNoData", "exp_alerts": []},
        # rate([1m]) has nothing from 3m on; one evaluation later the alert fires (no `for`).
        {
            "eval_time": "3m20s",
            "alertname": "DatasourceNoData",
            "exp_alerts": [
                {
                    "exp_labels": no_data_labels(rule),
                    # SetNoData("") in state.go: no grafana_state_reason for this state.
                    "exp_annotations": dict(rule.annotations),
                }
                for rule in (up, down)
            ],
        },
    ]
    promtool_test(tmp_path, rules, series, checks)


def test_nodata_alerting_fires_the_rule_itself_after_its_pending_period(tmp_path: Path) -> None:
    rules = rules_with(no_data_state="Alerting")
    up = by_action(rules)["scale_up"]
    series = [{"series": IDLE, "values": "0+5x12 _x40"}]
    labels = {"action": "scale_up", "datasource_uid": "exo-prometheus", "ref_id": "cpu"}
    annotations = {"summary": up.title, "grafana_state_reason": "NoData"}
    checks = [
        {"eval_time": "3m30s", "alertname": "exo_pool_cpu_high", "exp_alerts": []},  # pending
        {
            "eval_time": "4m30s",
            "alertname": "exo_pool_cpu_high",
            "exp_alerts": [{"exp_labels": labels, "exp_annotations": annotations}],
        },
    ]
    promtool_test(tmp_path, rules, series, checks)


def test_keeplast_keeps_a_firing_rule_firing_without_data(tmp_path: Path) -> None:
    """APPROXIMATION: the last value of the query (looked back an hour) stands in for Grafana's
    last state. At 100 % CPU then no data, the scale-up alert keeps firing; with OK it stops."""
    series = [{"series": IDLE, "values": "0+0x18 _x40"}]  # idle never grows: 100 % CPU for 3 min
    firing = [
        {
            "exp_labels": {"action": "scale_up"},
            # The rule's own annotations, and the last value the KeepLast expression kept
            # (the scaler's proportional policy reads it).
            "exp_annotations": {
                **by_action(rules_with())["scale_up"].annotations,
                "value": "100",
                "value_cpu": "100.000000",
                # No slow-web series in this test: the guarded demand queries answer 0.
                **dict.fromkeys(
                    ("value_arrivals", "value_cpu_per_request", "value_serving"), "0.000000"
                ),
                "value_evaluated_at": "360.000000",
            },
        }
    ]
    at = "6m"
    promtool_test(
        tmp_path,
        rules_with(no_data_state="KeepLast"),
        series,
        [{"eval_time": at, "alertname": "exo_pool_cpu_high", "exp_alerts": firing}],
    )
    promtool_test(
        tmp_path,
        load_rules(PROVISIONING),
        series,
        [{"eval_time": at, "alertname": "exo_pool_cpu_high", "exp_alerts": []}],
    )


def test_error_emits_datasource_error_when_prometheus_fails_the_group(tmp_path: Path) -> None:
    """Error → DatasourceError with the rule's labels and grafana_state_reason=Error. The stand-in
    for a failed query is Prometheus's failed evaluations of the scaling group."""
    rules = rules_with(exec_err_state="Error")
    series = [
        {"series": IDLE, "values": "0+5x40"},
        {"series": FAILURES, "values": "0x12 1+1x6 7x20"},  # failures during 2m..3m only
    ]
    expected = [
        {
            "exp_labels": no_data_labels(rule),
            "exp_annotations": {
                **rule.annotations,
                "grafana_state_reason": "Error",
                "Error": "Prometheus failed to evaluate the rule "
                "(prometheus_rule_evaluation_failures_total)",
            },
        }
        for rule in rules
    ]
    checks = [
        {"eval_time": "1m", "alertname": "DatasourceError", "exp_alerts": []},
        {"eval_time": "2m30s", "alertname": "DatasourceError", "exp_alerts": expected},
        {"eval_time": "5m", "alertname": "DatasourceError", "exp_alerts": []},  # recovered
    ]
    promtool_test(tmp_path, rules, series, checks)


@pytest.mark.parametrize("state", ["OK", "KeepLast"])
def test_error_ok_and_keeplast_add_no_rule(state: str) -> None:
    """OK is Normal; KeepLast is Prometheus's own behaviour on a failed evaluation (the alert's
    state is left as it was), so neither needs a rule."""
    body = prometheus_rule_file(rules_with(exec_err_state=state))
    assert [g["name"] for g in body["groups"]] == ["autoscaling"]


def test_error_alerting_fires_the_rule_itself(tmp_path: Path) -> None:
    rules = rules_with(exec_err_state="Alerting")
    body = prometheus_rule_file(rules)
    errors = body["groups"][1]["rules"]
    assert {r["alert"] for r in errors} == {"exo_pool_cpu_high", "exo_pool_cpu_low"}
    assert all(r["annotations"]["grafana_state_reason"] == "Error" for r in errors)
    assert all(r["for"] == "60s" for r in errors)  # the rule's pending period applies


def test_the_lab_prometheus_scrapes_itself_for_the_error_stand_in(tmp_path: Path) -> None:
    """The DatasourceError rule reads prometheus_rule_evaluation_failures_total: Prometheus must
    scrape its own /metrics in the lab."""
    from exo_lab.stack import render
    from exo_lab.stack.settings import LabSettings

    ports = render.StackPorts(alertmanager=1, prometheus=19090, scaler=3, sd_metrics=4)
    settings = LabSettings(out=tmp_path)
    config = render.prometheus_config(settings, render.StackFiles(tmp_path), ports, 10)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["127.0.0.1:19090"]}]
