"""Grafana's alerting provisioning, translated for Prometheus + Alertmanager.

Grafana cannot run offline, so in the lab Alertmanager plays its notifier. Everything is read
from grafana-provisioning/ — expression, threshold, pending period, evaluation interval,
action label, webhook path, credentials, resolve policy, grouping and repeat interval, and the
value queries that travel beside the condition (the demand signals) — so a change there changes
the lab too. `speed` divides every duration, including the range windows inside every PromQL
expression. The module is one concept (Grafana's alerting as Prometheus + Alertmanager see it),
which is why it is one module of about 480 lines.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..files import write_atomically
from . import grafana_checks as checks
from .grafana_checks import ProvisioningError as ProvisioningError  # callers catch it from here

log = logging.getLogger(__name__)

_OPERATORS = {"gt": ">", "lt": "<"}
_RANGE = re.compile(r"\[(\d+(?:ms|s|m|h|d))\]")
#: the alert's value as Alertmanager templates it into an annotation
VALUE_ANNOTATION = {"value": "{{ $value }}"}
#: a value as a decimal string (Go's %v would print 1764870000 as 1.76487e+09)
_DECIMAL = 'printf "%f"'


def value_annotation(ref_id: str) -> str:
    """The annotation that carries the value Grafana's webhook puts in `values[ref_id]`."""
    return f"value_{ref_id}"


def query_template(expr: str) -> str:
    """A Prometheus annotation template that evaluates `expr` when the rule is evaluated (the
    `query` template function runs at the evaluation's timestamp) and prints its first
    sample's value; nothing when it has none. A raw string (backquotes), so the expression's
    double quotes need no escaping."""
    if "`" in expr:
        raise ProvisioningError(f"a value query with a backquote cannot be templated: {expr!r}")
    return f"{{{{ with query `{expr}` }}}}{{{{ . | first | value | {_DECIMAL} }}}}{{{{ end }}}}"


#: Seconds in a Prometheus/Grafana duration (`1m`, `15s`, `1m30s`, `500ms`): model.ParseDuration,
#: as Grafana parses `interval`, `for` and the policy's timers (grafana_checks.py).
parse_duration = checks.prom_duration


def format_duration(seconds: float) -> str:
    """A duration Prometheus and Alertmanager accept, to the millisecond (never below 1 ms)."""
    ms = max(1, round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def scale_expression(expr: str, speed: float) -> str:
    """Divide every range window (`[1m]`) in a PromQL expression by `speed`."""
    return _RANGE.sub(lambda m: f"[{format_duration(parse_duration(m.group(1)) / speed)}]", expr)


@dataclass(frozen=True)
class ValueQuery:
    """A data source query of the rule that only carries a value (grafana_checks.value_queries):
    Grafana puts its result in the webhook's `values[ref_id]`."""

    ref_id: str
    expr: str
    datasource_uid: str


@dataclass(frozen=True)
class ScalingRule:
    uid: str
    title: str
    expr: str
    operator: str  # ">" or "<"
    threshold: float
    pending: float  # seconds
    action: str
    evaluation_interval: float  # seconds
    # What Grafana does when the query has no data / fails (see prometheus_rule_file).
    no_data_state: str = checks.DEFAULT_NO_DATA_STATE
    exec_err_state: str = checks.DEFAULT_EXEC_ERR_STATE
    folder: str = ""
    datasource_uid: str = ""
    ref_id: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    value_queries: tuple[ValueQuery, ...] = ()


@dataclass(frozen=True)
class WebhookRoute:
    url: str
    scheme: str  # "Bearer" or "" (none)
    credentials: (
        str  # as written in the file, e.g. ${EXO_SCALER_TOKEN}: see interpolate_credentials
    )
    send_resolved: bool
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float


def _load(path: Path) -> dict[str, Any]:
    body = checks.read_yaml(path)
    if not isinstance(body, dict):
        raise ProvisioningError(f"{path} is not a YAML mapping")
    return body


def _checked(provisioning: Path, environment: Mapping[str, str] | None) -> checks.Provisioning:
    """The provisioning expanded as Grafana reads it, refused where Grafana refuses it.

    `environment` is Grafana's process environment (default: the monitor's, every variable set).
    """
    env = checks.deployment_environment() if environment is None else environment
    prov = checks.load(provisioning, env)
    checks.refuse_like_grafana(prov)
    return prov


def load_rules(
    provisioning: Path, environment: Mapping[str, str] | None = None
) -> list[ScalingRule]:
    _load(provisioning / "alerting" / "rules.yaml")  # a clear error if absent or not a mapping
    body = _checked(provisioning, environment).rules
    rules = []
    try:
        for group in body["groups"]:
            interval = parse_duration(group["interval"])
            for rule in group["rules"]:
                queries = {d["refId"]: d for d in rule["data"]}
                condition = queries[rule["condition"]]["model"]
                if condition.get("type") != "threshold":
                    raise ProvisioningError(f"rule {rule['uid']}: condition is not a threshold")
                evaluator = condition["conditions"][0]["evaluator"]
                query = queries[condition["expression"]]
                rules.append(
                    ScalingRule(
                        uid=rule["uid"],
                        title=rule["title"],
                        expr=query["model"]["expr"],
                        operator=_OPERATORS[evaluator["type"]],
                        threshold=float(evaluator["params"][0]),
                        pending=parse_duration(rule.get("for") or "0s"),
                        action=rule["labels"]["action"],
                        evaluation_interval=interval,
                        no_data_state=str(rule.get("noDataState") or "").strip()
                        or checks.DEFAULT_NO_DATA_STATE,
                        exec_err_state=str(rule.get("execErrState") or "").strip()
                        or checks.DEFAULT_EXEC_ERR_STATE,
                        folder=str(group.get("folder", "")),
                        datasource_uid=str(query.get("datasourceUid", "")),
                        ref_id=str(query["refId"]),
                        labels={str(k): str(v) for k, v in rule["labels"].items()},
                        annotations={
                            str(k): str(v) for k, v in (rule.get("annotations") or {}).items()
                        },
                        value_queries=tuple(
                            ValueQuery(
                                ref_id=str(q["refId"]),
                                expr=str(q["model"]["expr"]),
                                datasource_uid=str(q.get("datasourceUid", "")),
                            )
                            for q in checks.value_queries(rule)
                        ),
                    )
                )
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ProvisioningError(f"rules.yaml: missing or malformed field {exc}") from exc
    if not rules:
        raise ProvisioningError("rules.yaml defines no rule")
    return rules


def cpu_rule(rules: list[ScalingRule], operator: str = ">") -> ScalingRule:
    """The CPU rule of a direction (`>`: the scale-up one), not the shedding rule beside it:
    the one whose condition reads the `cpu` query and that carries no `trigger` label."""
    for rule in rules:
        if rule.operator == operator and rule.ref_id == "cpu" and "trigger" not in rule.labels:
            return rule
    raise ProvisioningError(f"rules.yaml has no CPU rule with {operator!r}")


def load_webhook_route(
    provisioning: Path, environment: Mapping[str, str] | None = None
) -> WebhookRoute:
    alerting = provisioning / "alerting"
    raw_points = _load(alerting / "contact-points.yaml")
    _load(alerting / "policies.yaml")
    prov = _checked(provisioning, environment)
    points, policies = prov.contact_points, prov.policies
    try:
        policy = policies["policies"][0]
        receiver_name = policy["receiver"]
        index = next(i for i, p in enumerate(points["contactPoints"]) if p["name"] == receiver_name)
        receiver = points["contactPoints"][index]["receivers"][0]
        raw_receiver = raw_points["contactPoints"][index]["receivers"][0]
        if receiver["type"] != "webhook":
            raise ProvisioningError(f"contact point {receiver_name} is not a webhook")
        settings = receiver["settings"]
        credentials = raw_receiver["settings"].get("authorization_credentials", "")
        return WebhookRoute(
            url=settings["url"],
            # receivers/webhook/config.go: credentials without a scheme mean Bearer.
            scheme=settings.get("authorization_scheme", "") or ("Bearer" if credentials else ""),
            # Kept as written: the lab expands it with the environment it gives "Grafana".
            credentials=credentials,
            send_resolved=not receiver.get("disableResolveMessage", False),
            group_by=tuple(policy.get("group_by", ())),
            group_wait=parse_duration(policy.get("group_wait", "30s")),
            group_interval=parse_duration(policy.get("group_interval", "5m")),
            repeat_interval=parse_duration(policy.get("repeat_interval", "4h")),
        )
    except (KeyError, IndexError, TypeError, StopIteration) as exc:
        raise ProvisioningError(
            f"contact point / policy: missing or malformed field {exc}"
        ) from exc


def _alert_name(rule: ScalingRule) -> str:
    return re.sub(r"\W+", "_", rule.uid).strip("_")


# pkg/services/ngalert/state/compat.go: the alert names Grafana gives NoData / Error states.
NO_DATA_ALERT = "DatasourceNoData"
ERROR_ALERT = "DatasourceError"
#: a separate group: it must still evaluate when the scaling group fails (see _error_rules)
ERROR_GROUP = "autoscaling-datasource-errors"
#: KeepLast looks back this far (production seconds) for the last value; Grafana has no bound
KEEP_LAST_LOOKBACK = 3600.0


def prometheus_rule_file(rules: list[ScalingRule], speed: float = 1.0) -> dict[str, Any]:
    """A Prometheus rule file with the same alerts as Grafana's rules, at `speed`.

    Besides each rule's threshold alert, the file reproduces what Grafana does when the query
    has no data (noDataState) or fails (execErrState) — pkg/services/ngalert/state/state.go
    (resultNoData, resultError) and compat.go (noDataAlert, errorAlert):

    Grafana's NoData is the rule's, not the condition's: any data source query of the rule
    (a value query too) that answers nothing makes the whole evaluation NoData (eval.go,
    queryDataResponseToExecutionResults + evaluateExecutionResult). So the threshold alert holds
    only while every value query answers (`unless on() absent(...)`), and the NoData reactions
    below look at every query.

    - NoData → a `DatasourceNoData` alert at once (SetNoData, no pending period) with the rule's
      labels (`action` included), `rulename` (the rule's title), `datasource_uid` and `ref_id`
      (eval.go: the labels of a NoData result) and `grafana_folder`; the rule's annotations.
      In PromQL: `absent(<query>)` per query, labelled with its refId (APPROXIMATION: Grafana
      joins the refIds of one data source without data into one alert, "arrivals,cpu"; here
      each query without data is its own alert).
    - Error → a `DatasourceError` alert with the rule's labels, `rulename`, `datasource_uid`,
      `ref_id` (AddErrorInformation puts them in labels for this state) and the annotation
      `grafana_state_reason: Error` (SetError). Stand-in for "the query failed": Prometheus's
      own count of failed evaluations of the scaling group (scraped from itself).
    - Alerting → the rule's own alert fires (after its pending period) as another instance with
      `datasource_uid`/`ref_id`, annotated `grafana_state_reason` NoData / Error.
    - OK → nothing (Normal): what grafana-provisioning/ uses.
    - KeepLast → approximated: with no data the rule compares the query's last value (looked
      back KEEP_LAST_LOOKBACK) instead; on errors Prometheus itself keeps the alert's state.
      A value query without data does not stop it (Grafana would keep the last state).

    Values: Grafana's webhook carries every query's value in `values` by refId (state.go
    SetNextValues → compat.go's `__values__` annotation → grafana/alerting's ExtendedData);
    Alertmanager's carries only annotations, so each value travels as `value_<refId>`, a
    decimal string computed when the rule is evaluated: the condition's input from the alert's
    own value, every value query by a template `query` over the same expression at `speed`.
    `value` (the condition's input as Prometheus prints it) stays for older readers.
    """
    interval = min(r.evaluation_interval for r in rules)
    scaling: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for rule in rules:
        query = f"({scale_expression(rule.expr, speed)})"
        values = [(v, f"({scale_expression(v.expr, speed)})") for v in rule.value_queries]
        labels = {**rule.labels, "action": rule.action}
        condition = f"{query} {rule.operator} {rule.threshold:g}"
        if rule.no_data_state == "KeepLast":
            window = format_duration(KEEP_LAST_LOOKBACK / speed)
            step = format_duration(rule.evaluation_interval / speed)
            last = f"last_over_time({query}[{window}:{step}])"
            kept = f"({last} {rule.operator} {rule.threshold:g}) unless on() {query}"
            condition = f"({condition}) or ({kept})"
        elif values:
            silent = " or ".join(f"absent({expr})" for _, expr in values)
            condition = f"({condition}) unless on() ({silent})"
        scaling.append(
            {
                "alert": _alert_name(rule),
                "expr": condition,
                "for": format_duration(rule.pending / speed),
                "labels": labels,
                "annotations": {
                    "summary": rule.title,
                    **rule.annotations,
                    **VALUE_ANNOTATION,
                    value_annotation(rule.ref_id): f"{{{{ {_DECIMAL} $value }}}}",
                    **{value_annotation(v.ref_id): query_template(e) for v, e in values},
                },
            }
        )
        source = {"datasource_uid": rule.datasource_uid, "ref_id": rule.ref_id}
        grafana = {"rulename": rule.title, "grafana_folder": rule.folder, **source}
        every_query = [(rule.ref_id, rule.datasource_uid, query)] + [
            (v.ref_id, v.datasource_uid, expr) for v, expr in values
        ]
        no_data = " or ".join(_absent_as_grafana(*each) for each in every_query)
        without_source = {k: v for k, v in grafana.items() if k not in source}
        if rule.no_data_state == "NoData":
            scaling.append(
                {
                    "alert": NO_DATA_ALERT,
                    "expr": no_data,
                    "labels": {**labels, **without_source},
                    "annotations": dict(rule.annotations),
                }
            )
        elif rule.no_data_state == "Alerting":
            scaling.append(
                {
                    "alert": _alert_name(rule),
                    "expr": no_data,
                    "for": format_duration(rule.pending / speed),
                    "labels": labels,
                    "annotations": {"summary": rule.title, "grafana_state_reason": "NoData"},
                }
            )
        errors.extend(_error_rules(rule, labels, grafana, interval, speed))
    groups: list[dict[str, Any]] = [
        {"name": "autoscaling", "interval": format_duration(interval / speed), "rules": scaling}
    ]
    if errors:
        groups.append(
            {"name": ERROR_GROUP, "interval": format_duration(interval / speed), "rules": errors}
        )
    return {"groups": groups}


def _absent_as_grafana(ref_id: str, datasource_uid: str, expr: str) -> str:
    """1 while `expr` has no sample, labelled as eval.go labels a NoData result."""
    absent = f'label_replace(absent({expr}), "ref_id", "{ref_id}", "", "")'
    return f'label_replace({absent}, "datasource_uid", "{datasource_uid}", "", "")'


def _error_rules(
    rule: ScalingRule,
    labels: dict[str, str],
    grafana: dict[str, str],
    interval: float,
    speed: float,
) -> list[dict[str, Any]]:
    """execErrState, with Prometheus's failed evaluations of the scaling group standing in for
    Grafana's failed query (APPROXIMATION: a Prometheus that is down evaluates nothing, so the
    lab cannot raise DatasourceError for that case, where Grafana on the monitor would)."""
    # rules/group.go: rule_group is "<rule file>;<group name>"; the counter exists (at 0) from
    # the group's first load, so increase() sees the first failure.
    window = format_duration(2 * interval / speed)
    failed = (  # sum(): the alert carries the rule's labels, not the counter's
        f'sum(increase(prometheus_rule_evaluation_failures_total{{rule_group=~".*;autoscaling"}}'
        f"[{window}])) > 0"
    )
    why = "Prometheus failed to evaluate the rule (prometheus_rule_evaluation_failures_total)"
    if rule.exec_err_state == "Error":
        return [
            {
                "alert": ERROR_ALERT,
                "expr": failed,
                "labels": {**labels, **grafana},
                "annotations": {**rule.annotations, "grafana_state_reason": "Error", "Error": why},
            }
        ]
    if rule.exec_err_state == "Alerting":
        return [
            {
                "alert": _alert_name(rule),
                "expr": failed,
                "for": format_duration(rule.pending / speed),
                "labels": {**labels, "datasource_uid": rule.datasource_uid, "ref_id": rule.ref_id},
                "annotations": {
                    "summary": rule.title,
                    "grafana_state_reason": "Error",
                    "Error": why,
                },
            }
        ]
    # OK: Normal, nothing. KeepLast: rules/group.go leaves an alert's state untouched when its
    # evaluation fails — Grafana's KeepLast, except that Prometheus stops re-sending meanwhile.
    return []


def alertmanager_config(
    route: WebhookRoute,
    *,
    scaler_base_url: str,
    credentials_file: Path | None,
    speed: float = 1.0,
    copies: int = 1,
) -> dict[str, Any]:
    """Alertmanager routing equal to Grafana's policy and contact point.

    The webhook keeps the contact point's path and goes to the lab's scaler address; the
    credentials stay in a file (`credentials_file`), never in the config. `copies` > 1 sends
    every notification that many times, as Grafana replicas without HA clustering do.
    """
    if not 1 <= copies <= 10:
        raise ProvisioningError("copies must be within [1, 10]")
    target = urlsplit(scaler_base_url)
    path = urlsplit(route.url).path
    webhook: dict[str, Any] = {
        "url": urlunsplit((target.scheme, target.netloc, path, "", "")),
        "send_resolved": route.send_resolved,
    }
    # receivers/webhook/webhook.go (grafana/alerting): the Authorization header is sent only when
    # both scheme and credentials are non-empty; no credentials file stands for empty ones.
    if route.scheme and credentials_file is not None:
        webhook["http_config"] = {
            "authorization": {"type": route.scheme, "credentials_file": str(credentials_file)}
        }
    return {
        "route": {
            "receiver": "exo-scaler",
            "group_by": list(route.group_by),
            "group_wait": format_duration(route.group_wait / speed),
            "group_interval": format_duration(route.group_interval / speed),
            "repeat_interval": format_duration(route.repeat_interval / speed),
        },
        "receivers": [{"name": "exo-scaler", "webhook_configs": [webhook] * copies}],
    }


def grafana_environment(scaler_token: str) -> dict[str, str]:
    """The environment the lab gives "Grafana": what cloud-init's grafana.env gives it on the
    monitor (infra/terraform/modules/cloud-init/templates/grafana.env.tftpl)."""
    return {"EXO_SCALER_TOKEN": scaler_token}


def interpolate_credentials(route: WebhookRoute, environment: Mapping[str, str]) -> str:
    """What Grafana would send: the contact point's credentials expanded the way Grafana expands
    provisioning files (grafana_checks.expand: an unset variable is an empty string, `$$` is a
    literal `$`). Never raises: on Grafana an unset token is silent."""
    return checks.expand(route.credentials, environment)


def unset_variables(text: str, environment: Mapping[str, str]) -> list[str]:
    """The variables `text` refers to (`$NAME`, `${NAME}`, `$__env{NAME}`) that are unset."""
    names = re.findall(r"\$(?:__env)?\{([^}]+)\}|\$([A-Za-z_]\w*)", text.replace("$$", ""))
    return sorted({a or b for a, b in names} - {k for k, v in environment.items() if v})


def notifier_credentials(
    route: WebhookRoute, environment: Mapping[str, str], path: Path
) -> tuple[Path | None, str]:
    """Write what Grafana would send as credentials to `path` (0600); (path, "") or, when they
    expand to nothing, (None, a warning): Grafana then sends no Authorization header at all, so
    exo-scaler answers 401 to every notification and nothing scales, with no error anywhere."""
    if not route.scheme:
        return None, ""
    credentials = interpolate_credentials(route, environment)
    if not credentials:
        unset = ", ".join(unset_variables(route.credentials, environment)) or "(none)"
        warning = (
            f"WARNING: the contact point's authorization_credentials {route.credentials!r} expand "
            f"to an empty string (unset: {unset}). Grafana then sends no Authorization header: "
            "exo-scaler answers 401 to every notification and the pool never scales — silently, "
            "as on a real Grafana. Fix the variable name in grafana-provisioning/."
        )
        log.warning("%s", warning)
        return None, warning
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomically(path, credentials, mode=0o600)
    return path, ""
