"""The converter refuses what grafana-server refuses, with Grafana's own message.

Each case breaks one thing in a copy of grafana-provisioning/ (in tmp_path) and expects the
message the cited Grafana source returns (see exo_lab/stack/grafana_checks.py).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from exo_lab.stack import grafana_checks as checks
from exo_lab.stack.grafana import ProvisioningError, load_rules, load_webhook_route

PROVISIONING = Path(__file__).resolve().parents[3] / "grafana-provisioning"

Mutation = Callable[[dict[str, Any]], None]


def broken_copy(tmp_path: Path, relative: str, mutate: Mutation) -> Path:
    copy = tmp_path / "provisioning"
    shutil.copytree(PROVISIONING, copy)
    path = copy / relative
    body = yaml.safe_load(path.read_text())
    mutate(body)
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return copy


def rule(body: dict[str, Any], i: int = 0) -> dict[str, Any]:
    found: dict[str, Any] = body["groups"][0]["rules"][i]
    return found


def group(body: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = body["groups"][0]
    return found


def set_in(getter: Callable[[dict[str, Any]], dict[str, Any]], key: str, value: Any) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        getter(body)[key] = value

    return mutate


def drop(getter: Callable[[dict[str, Any]], dict[str, Any]], key: str) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        getter(body).pop(key)

    return mutate


def receiver(body: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = body["contactPoints"][0]["receivers"][0]
    return found


def point(body: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = body["contactPoints"][0]
    return found


def policy(body: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = body["policies"][0]
    return found


RULES = "alerting/rules.yaml"
POINTS = "alerting/contact-points.yaml"
POLICIES = "alerting/policies.yaml"
TITLE = "Pool CPU above 80 %"

# (file, mutation, Grafana's message) — the source of each message is cited in grafana_checks.
REFUSALS = {
    "interval 15s": (
        RULES,
        set_in(group, "interval", "15s"),
        "invalid alert rule: interval (15s) should be non-zero and divided exactly by "
        "scheduler interval: 10",
    ),
    "interval 1m5s": (
        RULES,
        set_in(group, "interval", "1m5s"),
        "interval (1m5s) should be non-zero",
    ),
    "interval 0s": (RULES, set_in(group, "interval", "0s"), "interval (0s) should be non-zero"),
    "interval not a duration": (
        RULES,
        set_in(group, "interval", "10 s"),
        'not a valid duration string: "10 s"',
    ),
    "interval fractional": (
        RULES,
        set_in(group, "interval", "1.5m"),
        'not a valid duration string: "1.5m"',
    ),
    "group without name": (RULES, set_in(group, "name", " "), "rule group has no name set"),
    "group without folder": (RULES, drop(group, "folder"), "rule group has no folder set"),
    "rule without title": (RULES, drop(rule, "title"), "rule has no title set"),
    "rule without uid": (
        RULES,
        set_in(rule, "uid", ""),
        f"rule '{TITLE}' failed to parse: no UID set",
    ),
    "uid too long": (
        RULES,
        set_in(rule, "uid", "x" * 41),
        "UID is longer than 40 symbols",
    ),
    "uid with a dot": (
        RULES,
        set_in(rule, "uid", "exo.pool"),
        "invalid format of UID. Only letters, numbers, '-' and '_' are allowed",
    ),
    "for not a duration": (
        RULES,
        set_in(rule, "for", "1 minute"),
        f"rule '{TITLE}' failed to parse 'for' field: not a valid duration string: \"1 minute\"",
    ),
    "noDataState unknown": (
        RULES,
        set_in(rule, "noDataState", "Ok"),
        f"rule '{TITLE}' failed to parse: unknown NoData state option Ok",
    ),
    "execErrState unknown": (
        RULES,
        set_in(rule, "execErrState", "NoData"),
        f"rule '{TITLE}' failed to parse: unknown Error state option NoData",
    ),
    "rule without data": (
        RULES,
        set_in(rule, "data", []),
        f"rule '{TITLE}' failed to parse: no data set",
    ),
    "rule without condition": (
        RULES,
        drop(rule, "condition"),
        f"rule '{TITLE}' failed to parse: no condition set",
    ),
    "condition names no query": (
        RULES,
        set_in(rule, "condition", "B"),
        "condition B does not exist, must be one of [cpu threshold arrivals cpu_per_request "
        "serving evaluated_at]",
    ),
    "refId repeated": (
        RULES,
        lambda b: rule(b)["data"][2].update(refId="cpu"),
        "refID 'cpu' is already used by query/expression at index 0",
    ),
    "refId empty": (
        RULES,
        lambda b: rule(b)["data"][3].update(refId=""),
        "refID is not specified for data query/expression at index 3",
    ),
    "threshold on a query that does not exist": (
        RULES,
        lambda b: rule(b)["data"][1]["model"].update(expression="load"),
        "unable to find dependent node 'load'",
    ),
    "threshold on itself": (
        RULES,
        lambda b: rule(b)["data"][1]["model"].update(expression="threshold"),
        "can not add self referencing node for var 'threshold'",
    ),
    "contact point without name": (POINTS, set_in(point, "name", ""), "no name is set"),
    "receiver without uid": (POINTS, set_in(receiver, "uid", " "), "exo-scaler: no uid is set"),
    "receiver without type": (POINTS, drop(receiver, "type"), "exo-scaler: no type is set"),
    "receiver without settings": (
        POINTS,
        set_in(receiver, "settings", {}),
        "exo-scaler: no settings are set",
    ),
    "webhook without url": (
        POINTS,
        lambda b: receiver(b)["settings"].pop("url"),
        "required field 'url' is not specified",
    ),
    "webhook url from an unset variable": (
        POINTS,
        lambda b: receiver(b)["settings"].update(url="${EXO_SCALER_URL}"),
        "required field 'url' is not specified",
    ),
    "basic auth and bearer": (
        POINTS,
        lambda b: receiver(b)["settings"].update(username="u", password="p"),
        "both HTTP Basic Authentication and Authorization Header are set, only 1 is permitted",
    ),
    "policy without receiver": (
        POLICIES,
        drop(policy, "receiver"),
        "root route must specify a default receiver",
    ),
    "policy with matchers": (
        POLICIES,
        set_in(policy, "matchers", ["action=scale_up"]),
        "root route must not have any matchers",
    ),
    "policy group_by twice": (
        POLICIES,
        set_in(policy, "group_by", ["alertname", "action", "action"]),
        'duplicated label "action" in group_by, exo-scaler [alertname action action]',
    ),
    "group_interval zero": (
        POLICIES,
        set_in(policy, "group_interval", "0s"),
        "group_interval cannot be zero",
    ),
    "repeat_interval zero": (
        POLICIES,
        set_in(policy, "repeat_interval", "0s"),
        "repeat_interval cannot be zero",
    ),
    "unknown receiver": (
        POLICIES,
        set_in(policy, "receiver", "scaler"),
        "receiver 'scaler' does not exist",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_the_converter_refuses_what_grafana_refuses(tmp_path: Path, case: str) -> None:
    relative, mutate, message = REFUSALS[case]
    broken = broken_copy(tmp_path, relative, mutate)
    load = load_rules if relative == RULES else load_webhook_route
    with pytest.raises(ProvisioningError) as refused:
        load(broken)
    assert message in str(refused.value)
    assert relative in str(refused.value)  # which file
    assert "Grafana refuses this" in str(refused.value)


def test_the_provisioning_passes_every_check() -> None:
    """The repository's own files: nothing Grafana refuses, no project rule broken."""
    prov = checks.load(PROVISIONING, checks.deployment_environment())
    assert checks.findings(prov) == []


@pytest.mark.parametrize(
    ("relative", "mutate", "message"),
    [
        (RULES, set_in(rule, "for", "5s"), "`for` (5s) is shorter than the group interval"),
        (POLICIES, set_in(policy, "repeat_interval", "5s"), "repeat_interval (5s) is below"),
        (
            RULES,
            lambda b: rule(b)["data"][0].update(datasourceUid="other"),
            "queries data source(s) ['other']",
        ),
        (
            RULES,
            lambda b: rule(b)["data"][2]["model"].update(instant=False, range=True),
            "query arrivals is not instant",
        ),
        (
            RULES,
            lambda b: rule(b, 2)["data"][4]["model"].update(expr='count(up{job="slow-web"} == 1)'),
            "query serving can return no data (add `or vector(0)`)",
        ),
    ],
)
def test_project_rules_are_findings_the_converter_lets_through(
    tmp_path: Path, relative: str, mutate: Mutation, message: str
) -> None:
    """Grafana accepts these (so the converter does too), but the loop breaks: the infra tests
    fail on them through the same validator."""
    broken = broken_copy(tmp_path, relative, mutate)
    load_rules(broken)
    load_webhook_route(broken)
    found = checks.findings(checks.load(broken, checks.deployment_environment()))
    assert [f.kind for f in found] == ["project"]
    assert message in found[0].message


def test_value_queries_are_the_demand_signals() -> None:
    """What travels beside the condition's input: the demand signals, in every rule; the
    shedding rule, whose condition reads the shed rate, carries the CPU value too."""
    prov = checks.load(PROVISIONING, checks.deployment_environment())
    demand = ["arrivals", "cpu_per_request", "serving", "evaluated_at"]
    found = {
        each["uid"]: [q["refId"] for q in checks.value_queries(each)]
        for each in prov.rules["groups"][0]["rules"]
    }
    assert found == {
        "exo-pool-cpu-high": demand,
        "exo-pool-shedding": ["cpu", *demand],
        "exo-pool-cpu-low": demand,
    }


def test_dashboard_on_another_datasource_is_a_finding(tmp_path: Path) -> None:
    copy = tmp_path / "provisioning"
    shutil.copytree(PROVISIONING, copy)
    dashboard = copy / checks.DASHBOARD_FILE
    dashboard.write_text(
        dashboard.read_text().replace('"exo-prometheus"', '"grafanacloud-prom"', 1)
    )
    found = checks.findings(checks.load(copy, checks.deployment_environment()))
    assert [(f.kind, f.file) for f in found] == [("project", checks.DASHBOARD_FILE)]


def test_checks_see_values_after_expansion(tmp_path: Path) -> None:
    """Grafana expands ${VAR} before it checks: an interval from a variable is checked as
    expanded, and an unset one is an empty duration."""
    broken = broken_copy(tmp_path, RULES, set_in(group, "interval", "${EVAL_EVERY}"))
    assert load_rules(broken, {"EVAL_EVERY": "20s"})[0].evaluation_interval == 20
    with pytest.raises(ProvisioningError, match="interval \\(15s\\)"):
        load_rules(broken, {"EVAL_EVERY": "15s"})
    with pytest.raises(ProvisioningError, match="empty duration string"):
        load_rules(broken, {})


def test_query_models_and_annotations_are_not_expanded(tmp_path: Path) -> None:
    """rules_types.go keeps each query's model raw and annotations are a plain map:
    `$__rate_interval` and `{{ $value }}` reach the rule untouched."""

    def mutate(body: dict[str, Any]) -> None:
        rule(body)["data"][0]["model"]["expr"] = "rate(x[$__rate_interval])"
        rule(body)["annotations"]["summary"] = "CPU at {{ $value }}"
        rule(body)["labels"]["team"] = "${TEAM}"

    broken = broken_copy(tmp_path, RULES, mutate)
    prov = checks.load(broken, {"TEAM": "ops"})
    loaded = rule(prov.rules)
    assert loaded["data"][0]["model"]["expr"] == "rate(x[$__rate_interval])"
    assert loaded["annotations"]["summary"] == "CPU at {{ $value }}"
    assert loaded["labels"]["team"] == "ops"  # labels are values.StringMapValue: expanded


@pytest.mark.parametrize(
    ("text", "env", "expanded"),
    [
        ("${TOKEN}", {"TOKEN": "t0k"}, "t0k"),
        ("${TOKEN}", {}, ""),  # unset → empty, never an error
        ("$TOKEN", {"TOKEN": "t0k"}, "t0k"),  # os.ExpandEnv also takes the bare form
        ("$__env{TOKEN}", {"TOKEN": "t0k"}, "t0k"),
        ("pa$$word", {}, "pa$word"),  # "$$" is a literal "$"
        ("$${TOKEN}", {"TOKEN": "t0k"}, "${TOKEN}"),
        ("a$", {}, "a$"),  # a trailing "$" stays
        ("${}x", {}, "x"),  # os.Expand eats the bad syntax
        ("$1x", {}, "x"),  # a special variable ($1) is looked up, and unset
        ("x-$TOKEN.y", {"TOKEN": "t"}, "x-t.y"),  # names end at a non-alphanumeric
        # The value of ${A} goes through os.ExpandEnv again (expanders first, then ExpandEnv):
        ("${A}", {"A": "p$B", "B": "q"}, "pq"),
    ],
)
def test_expansion_is_grafanas(text: str, env: dict[str, str], expanded: str) -> None:
    assert checks.expand(text, env) == expanded


def test_file_expander_reads_and_trims(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("  s3cret\n")
    assert checks.expand(f"$__file{{{secret}}}", {}) == "s3cret"
    with pytest.raises(ProvisioningError, match="expander file"):
        checks.expand(f"$__file{{{tmp_path / 'missing'}}}", {})


def test_deployment_environment_names_what_the_provisioning_uses() -> None:
    """Every variable grafana-provisioning/ refers to is one Grafana gets on the monitor."""
    text = "".join(p.read_text() for p in (PROVISIONING / "alerting").glob("*.yaml"))
    assert "${EXO_SCALER_TOKEN}" in text
    assert set(checks.deployment_environment()) == set(checks.GRAFANA_ENVIRONMENT_NAMES)
