"""grafana-provisioning/: formats, wiring, and the facts exo-lab derives its rules from."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_support import PROVISIONING_DIR, RUNTIME

DATASOURCE_UID = "exo-prometheus"
#: the demand signals' refIds (issue 21's contract with exo-scaler's --signal NAME=REFID)
DEMAND_REF_IDS = ("arrivals", "cpu_per_request", "serving", "evaluated_at")
CPU_EXPR = '100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle",job="pool"}[1m])))'


def _yaml(relative: str) -> Any:
    return yaml.safe_load((PROVISIONING_DIR / relative).read_text())


@pytest.fixture(scope="module")
def rules() -> list[dict[str, Any]]:
    document = _yaml("alerting/rules.yaml")
    assert document["apiVersion"] == 1
    (group,) = document["groups"]
    assert group["folder"] and group["interval"]
    return list(group["rules"])


def test_every_file_parses() -> None:
    files = sorted(p for p in PROVISIONING_DIR.rglob("*") if p.suffix in {".yaml", ".yml", ".json"})
    assert len(files) == 6
    for path in files:
        loaded = (
            json.loads(path.read_text())
            if path.suffix == ".json"
            else yaml.safe_load(path.read_text())
        )
        assert loaded, path


def test_datasource_has_the_fixed_uid() -> None:
    (source,) = _yaml("datasources/prometheus.yaml")["datasources"]
    assert source["uid"] == DATASOURCE_UID
    assert source["type"] == "prometheus"


def test_dashboard_shows_the_loop() -> None:
    # Its data source references are checked by the project rules the lab shares
    # (test_grafana_constraints: grafana_checks' data source rule), not again here.
    dashboard = json.loads((PROVISIONING_DIR / "dashboards/autoscaling.json").read_text())
    assert dashboard["title"] == "Autoscaling"
    panels = dashboard["panels"]
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for metric in [
        "exo_scaler_decisions_total",
        "exo_scaler_pool_size",
        "slow_web_requests_total",
        "slow_web_request_duration_seconds_bucket",
        'up{job="pool"}',
    ]:
        assert metric in exprs
    cpu_panel = panels[0]
    assert cpu_panel["targets"][0]["expr"] == CPU_EXPR
    steps = cpu_panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps if s["value"] is not None] == [20, 80]
    provider = _yaml("dashboards/provider.yaml")["providers"][0]
    assert provider["options"]["path"] == "/etc/grafana/provisioning/dashboards"


@pytest.mark.parametrize(
    ("action", "op", "threshold"), [("scale_up", "gt", 80), ("scale_down", "lt", 20)]
)
def test_rules_have_the_documented_shape(
    rules: list[dict[str, Any]], action: str, op: str, threshold: int
) -> None:
    (rule,) = [
        r for r in rules if r["labels"].get("action") == action and "trigger" not in r["labels"]
    ]
    assert rule["uid"] and rule["title"]
    by_ref = {q["refId"]: q for q in rule["data"]}
    assert list(by_ref) == ["cpu", "threshold", *DEMAND_REF_IDS]
    query, condition = by_ref["cpu"], by_ref["threshold"]
    assert query["datasourceUid"] == DATASOURCE_UID
    assert query["model"]["expr"] == CPU_EXPR
    assert "relativeTimeRange" in query
    assert rule["condition"] == condition["refId"]
    assert condition["datasourceUid"] == "__expr__"
    assert condition["model"]["type"] == "threshold"
    assert condition["model"]["expression"] == query["refId"]
    (evaluator,) = [c["evaluator"] for c in condition["model"]["conditions"]]
    assert evaluator == {"type": op, "params": [threshold]}
    assert rule["for"] == "1m"
    assert rule["noDataState"] == "OK"
    assert rule["execErrState"] == "OK"


def test_demand_queries_are_instant_guarded_and_alike_in_every_rule(
    rules: list[dict[str, Any]],
) -> None:
    """Values only: instant (a range result never reaches `values`), never empty (one query
    without data turns the whole rule into NoData in Grafana's eval.go), the same in every rule
    (the scaler reads them from whichever rule fires)."""
    demand = [[q for q in r["data"] if q["refId"] in DEMAND_REF_IDS] for r in rules]
    assert len(rules) == 3
    assert all(d == demand[0] for d in demand)
    for query in demand[0]:
        model = query["model"]
        assert query["datasourceUid"] == DATASOURCE_UID
        assert model["refId"] == query["refId"]
        assert (model["instant"], model["range"]) == (True, False)
        # the guard; that it works is test_prometheus_rules' (a real Prometheus, no data)
        assert "or vector(0)" in model["expr"] or model["expr"] == "vector(time())"
    for rule in rules:  # the CPU rules' condition still reads `cpu` alone
        (condition,) = [q for q in rule["data"] if q["refId"] == rule["condition"]]
        expected = "shed" if rule["labels"].get("trigger") == "shedding" else "cpu"
        assert condition["model"]["expression"] == expected


def test_the_shedding_rule_is_a_faster_up_trigger_the_cpu_policies_can_tell_apart(
    rules: list[dict[str, Any]],
) -> None:
    """Issue 21's stretch: an up trigger on shed requests, without the CPU rule's minute of
    pending, labelled so that the seed's CPU policies skip it; it carries the CPU value
    (guarded) and the same demand signals, so the demand policy sizes from it alone."""
    (rule,) = [r for r in rules if r["labels"].get("trigger") == "shedding"]
    assert rule["labels"] == {"action": "scale_up", "trigger": "shedding"}
    by_ref = {q["refId"]: q for q in rule["data"]}
    assert list(by_ref) == ["shed", "threshold", "cpu", *DEMAND_REF_IDS]
    assert "slow_web_shed_total" in by_ref["shed"]["model"]["expr"]
    assert "or vector(0)" in by_ref["shed"]["model"]["expr"]
    for ref in ("shed", "cpu"):  # one number each, as every query of a rule
        assert (by_ref[ref]["model"]["instant"], by_ref[ref]["model"]["range"]) == (True, False)
    (evaluator,) = [c["evaluator"] for c in by_ref["threshold"]["model"]["conditions"]]
    assert evaluator == {"type": "gt", "params": [0]}
    assert by_ref["threshold"]["model"]["expression"] == "shed"
    assert CPU_EXPR in by_ref["cpu"]["model"]["expr"]
    assert "or vector(0)" in by_ref["cpu"]["model"]["expr"]
    assert rule["for"] == "30s"
    assert (rule["noDataState"], rule["execErrState"]) == ("OK", "OK")


def test_contact_point_uses_env_interpolation(rules: list[dict[str, Any]]) -> None:
    text = (PROVISIONING_DIR / "alerting/contact-points.yaml").read_text()
    (point,) = yaml.safe_load(text)["contactPoints"]
    (receiver,) = point["receivers"]
    assert receiver["type"] == "webhook"
    assert receiver["disableResolveMessage"] is True
    settings = receiver["settings"]
    assert settings["url"] == "http://127.0.0.1:8090/webhook"
    assert settings["authorization_scheme"] == "Bearer"
    assert re.fullmatch(r"\$\{?EXO_SCALER_TOKEN\}?", settings["authorization_credentials"])
    assert "password" not in settings and "username" not in settings


def test_no_literal_secret_in_provisioning() -> None:
    for path in PROVISIONING_DIR.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not any(value in text for value in RUNTIME.values()), path
            for match in re.finditer(
                r"(?i)(token|password|credentials|secret)\"?\s*[:=]\s*\"?([^\s\"]+)", text
            ):
                assert match.group(2).startswith("$"), f"{path}: literal {match.group(1)}"


def test_policy_resends_within_a_tick() -> None:
    """The cadence itself is test_grafana_constraints' and test_alertmanager_cadence's."""
    (policy,) = _yaml("alerting/policies.yaml")["policies"]
    assert policy["receiver"] == "exo-scaler"
    assert policy["repeat_interval"] == "45s"
    assert "action" in policy["group_by"]
    for key in ("group_wait", "group_interval"):
        assert re.fullmatch(r"\d+s", policy[key]) and int(policy[key][:-1]) <= 30


def test_readme_documents_where_the_facts_live() -> None:
    readme = (PROVISIONING_DIR / "README.md").read_text()
    for fact in ["expr", "params", "for", "action", "url", "repeat_interval", "EXO_SCALER_TOKEN"]:
        assert fact in readme


def test_provisioning_dir_matches_cloud_init_list() -> None:
    main = (
        Path(__file__).resolve().parents[1] / "terraform/modules/cloud-init/main.tf"
    ).read_text()
    for path in PROVISIONING_DIR.rglob("*"):
        if path.is_file() and path.name != "README.md":
            assert str(path.relative_to(PROVISIONING_DIR)) in main, path
