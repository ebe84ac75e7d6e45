"""Grafana's own provisioning rules, restated once: what grafana-server refuses at start.

One validator for the whole repository: the lab's converter (`grafana.py`) refuses what Grafana
refuses with Grafana's own message, and infra/tests/test_grafana_constraints.py runs the same
checks on grafana-provisioning/ (it loads this file by path, so keep it standard library + PyYAML
and free of package-relative imports).

Every check cites the Grafana 11 source it restates (paths in github.com/grafana/grafana unless
another repository is named). Grafana expands `${VAR}` while it reads the files, before any
check, so the checks see expanded values: `expand` reproduces that expansion.

Two kinds of finding:
- `grafana`: grafana-server refuses the file at start (no alerts, no webhooks, no scaling).
- `project`: Grafana accepts the file, but the autoscaling loop breaks (a dashboard panel on an
  unknown data source, a repeat interval that re-sends slower than the scaler's tick, ...). The
  infra tests fail on these; the lab's converter only refuses the `grafana` kind, as Grafana does.
"""

from __future__ import annotations

import json
import math
import re
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# pkg/setting/setting_unified_alerting.go: SchedulerBaseInterval = 10 * time.Second (the default
# of [unified_alerting] scheduler_tick_interval; changing it needs a feature toggle).
SCHEDULER_BASE_INTERVAL = 10

# pkg/services/ngalert/models/alert_rule.go: NoDataStateFromString and ErrStateFromString.
NO_DATA_STATES = ("Alerting", "NoData", "OK", "KeepLast")
EXEC_ERR_STATES = ("Alerting", "Error", "OK", "KeepLast")
# pkg/services/provisioning/alerting/rules_types.go (AlertRuleV1.mapToModel): an empty state
# defaults to NoData / Alerting.
DEFAULT_NO_DATA_STATE = "NoData"
DEFAULT_EXEC_ERR_STATE = "Alerting"

# pkg/util/shortid_generator.go: MaxUIDLength and the legacy UID pattern (ValidateUID).
MAX_UID_LENGTH = 40
_UID_PATTERN = re.compile(r"[a-zA-Z0-9\-_]*")

# What Grafana's process environment holds for the provisioning to expand on the monitor:
# infra/terraform/modules/cloud-init/templates/grafana.env.tftpl (the EnvironmentFile of
# grafana-server). GF_* variables configure Grafana itself and are left out; the infra tests
# check this list against the template, so a renamed variable cannot drift silently.
GRAFANA_ENVIRONMENT_NAMES = ("EXO_SCALER_TOKEN",)


class ProvisioningError(ValueError):
    """grafana-provisioning/ is refused (Grafana's message) or has a shape the lab cannot use."""


@dataclass(frozen=True)
class Finding:
    kind: str  # "grafana" (refused at start) or "project" (accepted, but the loop breaks)
    file: str  # relative to the provisioning folder
    message: str  # Grafana's own wording where kind == "grafana"
    source: str  # the upstream file (or project reason) the check restates
    when: str = "at start"  # when Grafana refuses it

    def __str__(self) -> str:
        what = f"Grafana refuses this {self.when}" if self.kind == "grafana" else "project rule"
        return f"{self.file}: {self.message} ({what}; {self.source})"


# --- ${VAR} expansion, as Grafana reads provisioning files ----------------------------------
#
# pkg/services/provisioning/values/values.go, interpolateValue: split the value on "$$" (a
# literal "$"), pass each part through setting.ExpandVar (pkg/setting/expanders.go: `${NAME}`
# and `$__env{NAME}` → os.Getenv, `$__file{path}` → the file's trimmed content), then through
# Go's os.ExpandEnv (src/os/env.go: `$NAME` and `${NAME}`; unset → ""), and join with "$".
# An unset variable is therefore an empty string, never an error.

_EXPANDER = re.compile(r"\$(|__\w+){([^}]+)}")  # pkg/setting/expanders.go `regex`
_SPECIAL = set("*#$@!?-0123456789")  # src/os/env.go isShellSpecialVar


def _is_alnum(c: str) -> bool:
    return c == "_" or (c.isascii() and c.isalnum())


def _shell_name(s: str) -> tuple[str, int]:
    """src/os/env.go getShellName: the name after a "$" and how many bytes it used."""
    if s[0] == "{":
        if len(s) > 2 and s[1] in _SPECIAL and s[2] == "}":
            return s[1:2], 3
        for i in range(1, len(s)):
            if s[i] == "}":
                return ("", 2) if i == 1 else (s[1:i], i + 1)  # "${}" is eaten
        return "", 1  # bad syntax: "${" is eaten
    if s[0] in _SPECIAL:
        return s[0:1], 1
    i = 0
    while i < len(s) and _is_alnum(s[i]):
        i += 1
    return s[:i], i


def go_expand(s: str, mapping: Callable[[str], str]) -> str:
    """src/os/env.go Expand, byte for byte."""
    out: list[str] = []
    i = j = 0
    while j < len(s):
        if s[j] == "$" and j + 1 < len(s):
            out.append(s[i:j])
            name, width = _shell_name(s[j + 1 :])
            if name:
                out.append(mapping(name))
            elif width == 0:
                out.append("$")  # "$" not followed by a name stays
            j += width
            i = j + 1
        j += 1
    return "".join(out) + s[i:] if out else s


def expand(value: str, environment: Mapping[str, str]) -> str:
    """A provisioning string as Grafana sees it, with `environment` as its process env."""

    def getenv(name: str) -> str:
        found = environment.get(name, "")
        # pkg/setting/expanders.go envExpander: an empty HOSTNAME falls back to os.Hostname().
        return found or (socket.gethostname() if name == "HOSTNAME" else "")

    def expand_var(part: str) -> str:
        # pkg/setting/expanders.go ExpandVar: env expander (priority -10), then file (-5).
        for prefix in ("env", "file"):
            for whole, kind, arg in [(m.group(0), m.group(1), m.group(2)) for m in
                                     _EXPANDER.finditer(part)]:  # fmt: skip
                if kind == f"__{prefix}" or (kind == "" and prefix == "env"):
                    part = part.replace(whole, _expander(prefix, arg, getenv), 1)
        return part

    return "$".join(go_expand(expand_var(part), getenv) for part in value.split("$$"))


def _expander(prefix: str, arg: str, getenv: Callable[[str], str]) -> str:
    if prefix == "env":
        return getenv(arg)
    try:  # fileExpander: a missing file is an error, the content is trimmed
        return Path(arg).read_text().strip()
    except OSError as exc:
        raise ProvisioningError(
            f"failed to interpolate value: got error while expanding expander file: {exc}"
        ) from exc


def expand_tree(node: Any, environment: Mapping[str, str]) -> Any:
    """values.go transformInterface: every string in maps and lists, other scalars as they are."""
    if isinstance(node, str):
        return expand(node, environment)
    if isinstance(node, dict):
        return {k: expand_tree(v, environment) for k, v in node.items() if isinstance(k, str)}
    if isinstance(node, list):
        return [expand_tree(v, environment) for v in node]
    return node


def expand_rules(body: Any, environment: Mapping[str, str]) -> Any:
    """rules.yaml as Grafana reads it (rules_types.go): every field is a values.* type and is
    expanded, except annotations (a plain map since grafana/grafana#54975, so `{{ $value }}`
    templates survive) and each query's `model` (mapToModel uses Model.Raw, so `$__interval`
    and friends survive)."""
    if not isinstance(body, dict):
        return body
    expanded = expand_tree({k: v for k, v in body.items() if k != "groups"}, environment)
    groups = []
    for group in body.get("groups") or []:
        if not isinstance(group, dict):
            groups.append(group)
            continue
        new_group = expand_tree({k: v for k, v in group.items() if k != "rules"}, environment)
        new_group["rules"] = [_expand_rule(rule, environment) for rule in group.get("rules") or []]
        groups.append(new_group)
    expanded["groups"] = groups
    return expanded


def _expand_rule(rule: Any, environment: Mapping[str, str]) -> Any:
    if not isinstance(rule, dict):
        return rule
    kept = {"annotations", "data"}
    new = expand_tree({k: v for k, v in rule.items() if k not in kept}, environment)
    if "annotations" in rule:
        new["annotations"] = rule["annotations"]
    if "data" in rule:
        data = rule["data"]
        new["data"] = [
            {**expand_tree({k: v for k, v in q.items() if k != "model"}, environment),
             **({"model": q["model"]} if "model" in q else {})}
            if isinstance(q, dict) else q
            for q in data
        ] if isinstance(data, list) else data  # fmt: skip
    return new


# --- durations, as Grafana parses them --------------------------------------------------------

# github.com/prometheus/common model/time.go, ParseDuration (Grafana uses it for `interval`,
# `for` and the policy's timers): units in decreasing order, each at most once, integers only.
_PROM_DURATION = re.compile(
    r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?"
)
_PROM_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def prom_duration(text: str) -> float:
    """Seconds in `text`, or ProvisioningError with model.ParseDuration's message."""
    if text == "0":
        return 0.0
    if text == "":
        raise ProvisioningError("empty duration string")
    match = _PROM_DURATION.fullmatch(text)
    if not match:
        raise ProvisioningError(f"not a valid duration string: {json.dumps(text)}")
    return math.fsum(int(n) * unit for n, unit in zip(match.groups(), _PROM_UNITS, strict=True)
                     if n is not None)  # fmt: skip


def go_duration(seconds: int) -> str:
    """Go's time.Duration String() for whole seconds: 15s, 1m5s, 1h0m0s, 0s."""
    if seconds == 0:
        return "0s"
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"


# --- the checks -------------------------------------------------------------------------------

RULES_FILE = "alerting/rules.yaml"
CONTACT_POINTS_FILE = "alerting/contact-points.yaml"
POLICIES_FILE = "alerting/policies.yaml"
DATASOURCES_FILE = "datasources/prometheus.yaml"
DASHBOARD_FILE = "dashboards/autoscaling.json"

_RULES_TYPES = "pkg/services/provisioning/alerting/rules_types.go (AlertRuleV1.mapToModel)"
_ALERT_RULE = "pkg/services/ngalert/models/alert_rule.go (ValidateAlertRule)"
_CONTACT_TYPES = "pkg/services/provisioning/alerting/contact_point_types.go (ReceiverV1.mapToModel)"
_RULER_VALIDATION = "pkg/services/ngalert/api/api_ruler_validation.go (ValidateCondition)"
_GRAPH = "pkg/expr/graph.go (buildGraphEdges)"
#: the data source uid of Grafana's server-side expressions (pkg/expr: DatasourceUID)
EXPRESSION_UID = "__expr__"
#: expression types whose `expression` field names one input refId (pkg/expr/commands.go)
_SINGLE_INPUT_TYPES = ("threshold", "reduce", "resample")
_ROUTE = "pkg/services/ngalert/api/tooling/definitions/alertmanager_validation.go (Route.Validate)"


@dataclass(frozen=True)
class Provisioning:
    """The provisioning files, expanded the way Grafana reads them."""

    rules: Any
    contact_points: Any
    policies: Any
    datasources: Any
    dashboard: Any


def read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ProvisioningError(f"cannot read {path}: {exc}") from exc


def load(provisioning: Path, environment: Mapping[str, str]) -> Provisioning:
    """Read and expand grafana-provisioning/ (files that are absent read as None)."""

    def optional(relative: str) -> Any:
        path = provisioning / relative
        if not path.exists():
            return None
        if path.suffix == ".json":
            try:
                return json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise ProvisioningError(f"cannot read {path}: {exc}") from exc
        return read_yaml(path)

    return Provisioning(
        rules=expand_rules(optional(RULES_FILE), environment),
        # contact_point_types.go: Settings is a values.JSONValue and mapToModel uses its Value()
        # (expanded) since grafana/grafana#55666; name, uid and type are values.StringValue.
        contact_points=expand_tree(optional(CONTACT_POINTS_FILE), environment),
        # notification_policy_types.go: the whole policy is a values.JSONValue.
        policies=expand_tree(optional(POLICIES_FILE), environment),
        # pkg/services/provisioning/datasources/types.go: values.* fields as well.
        datasources=expand_tree(optional(DATASOURCES_FILE), environment),
        # Dashboard JSON is not expanded (dashboards are not read through values.*).
        dashboard=optional(DASHBOARD_FILE),
    )


def _mapping(node: Any) -> dict[str, Any]:
    return node if isinstance(node, dict) else {}


def _items(node: Any) -> list[Any]:
    return node if isinstance(node, list) else []


def _text(value: Any) -> str:
    """A YAML scalar as the string Grafana's values.StringValue unmarshals it to."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def rule_findings(body: Any) -> Iterator[Finding]:
    f = RULES_FILE
    for group in _items(_mapping(body).get("groups")):
        group = _mapping(group)
        name = _text(group.get("name"))
        if not name.strip():
            yield Finding("grafana", f, "rule group has no name set", _RULES_TYPES)
            return
        try:
            interval = prom_duration(_text(group.get("interval")))
        except ProvisioningError as exc:
            yield Finding("grafana", f, str(exc), _RULES_TYPES + " → model.ParseDuration")
            return
        if not _text(group.get("folder")).strip():
            yield Finding("grafana", f, "rule group has no folder set", _RULES_TYPES)
            return
        for rule in _items(group.get("rules")):
            finding = _rule_finding(_mapping(rule), interval)
            if finding:
                yield finding
                return
        yield from _project_rule_findings(group, interval)


def _rule_finding(rule: dict[str, Any], interval: float) -> Finding | None:
    f = RULES_FILE
    title = _text(rule.get("title"))
    uid = _text(rule.get("uid"))
    if not title:
        return Finding("grafana", f, "rule has no title set", _RULES_TYPES)
    if not uid:
        return Finding("grafana", f, f"rule '{title}' failed to parse: no UID set", _RULES_TYPES)
    try:
        pending = prom_duration(_text(rule.get("for"))) if _text(rule.get("for")) else 0.0
    except ProvisioningError as exc:
        return Finding(
            "grafana", f, f"rule '{title}' failed to parse 'for' field: {exc}", _RULES_TYPES
        )
    exec_err = _text(rule.get("execErrState")).strip()
    if exec_err and exec_err not in EXEC_ERR_STATES:
        message = f"rule '{title}' failed to parse: unknown Error state option {exec_err}"
        return Finding("grafana", f, message, _RULES_TYPES + " → ErrStateFromString")
    no_data = _text(rule.get("noDataState")).strip()
    if no_data and no_data not in NO_DATA_STATES:
        message = f"rule '{title}' failed to parse: unknown NoData state option {no_data}"
        return Finding("grafana", f, message, _RULES_TYPES + " → NoDataStateFromString")
    data = _items(rule.get("data"))
    if not data:
        return Finding("grafana", f, f"rule '{title}' failed to parse: no data set", _RULES_TYPES)
    condition = _text(rule.get("condition"))
    if not condition:
        message = f"rule '{title}' failed to parse: no condition set"
        return Finding("grafana", f, message, _RULES_TYPES)
    # ValidateAlertRule (after mapping): util.ValidateUID, then the group interval.
    uid_error = (
        f"UID is longer than {MAX_UID_LENGTH} symbols"
        if len(uid) > MAX_UID_LENGTH
        else "invalid format of UID. Only letters, numbers, '-' and '_' are allowed"
        if not _UID_PATTERN.fullmatch(uid)
        else ""
    )
    if uid_error:
        message = f"invalid alert rule\ncannot create rule with UID '{uid}': {uid_error}"
        return Finding("grafana", f, message, _ALERT_RULE + " → pkg/util/shortid_generator.go")
    seconds = int(interval)  # rules_types.go: int64(time.Duration(interval).Seconds())
    if seconds % SCHEDULER_BASE_INTERVAL != 0 or seconds <= 0:
        message = (
            f"invalid alert rule: interval ({go_duration(seconds)}) should be non-zero and "
            f"divided exactly by scheduler interval: {SCHEDULER_BASE_INTERVAL}"
        )
        return Finding("grafana", f, message, _ALERT_RULE + " → ValidateRuleGroupInterval")
    if pending < 0:  # not reachable from YAML (ParseDuration has no sign), kept for parity
        message = "invalid alert rule: field `for` cannot be negative"
        return Finding("grafana", f, message, _ALERT_RULE)
    ref_ids = [_text(_mapping(q).get("refId")) for q in data]
    # ValidateCondition checks the refIds before the condition. It runs on save through the
    # ruler API; at evaluation a repeated refId silently shadows the other query (graph.go's
    # node registry keeps one node per refId), so the webhook's `values` would carry one of two.
    seen: dict[str, int] = {}
    for index, ref in enumerate(ref_ids):
        if not ref:
            message = f"refID is not specified for data query/expression at index {index}"
            return Finding("grafana", f, message, _RULER_VALIDATION, "on save through the API")
        if ref in seen:
            message = f"refID '{ref}' is already used by query/expression at index {seen[ref]}"
            return Finding("grafana", f, message, _RULER_VALIDATION, "on save through the API")
        seen[ref] = index
    if condition not in ref_ids:
        # pkg/services/ngalert/eval/eval.go (evaluatorImpl.create) refuses a condition that
        # names no query: on save through the API, and at every evaluation of a file-provisioned
        # rule (whether file provisioning checks it before saving is not established here).
        message = f"condition {condition} does not exist, must be one of [{' '.join(ref_ids)}]"
        source = "pkg/services/ngalert/eval/eval.go (create)"
        return Finding("grafana", f, message, source, "on save or at every evaluation")
    for query in data:
        query = _mapping(query)
        model = _mapping(query.get("model"))
        if _text(query.get("datasourceUid")) != EXPRESSION_UID:
            continue
        if _text(model.get("type")) not in _SINGLE_INPUT_TYPES:
            continue
        needed, ref = _text(model.get("expression")), _text(query.get("refId"))
        # BuildPipeline: run by eval.go's Validate on save, and at every evaluation.
        if needed not in ref_ids:
            message = f"unable to find dependent node '{needed}'"
            return Finding("grafana", f, message, _GRAPH, "on save or at every evaluation")
        if needed == ref:
            message = f"can not add self referencing node for var '{needed}' "
            return Finding("grafana", f, message, _GRAPH, "on save or at every evaluation")
    return None


def value_queries(rule: dict[str, Any]) -> list[dict[str, Any]]:
    """The rule's data source queries that only carry values: neither the condition nor an
    input of an expression (exo-scaler reads them from the webhook's `values` by refId)."""
    data = [_mapping(q) for q in _items(rule.get("data"))]
    inputs = {_text(rule.get("condition"))} | {
        _text(_mapping(q.get("model")).get("expression"))
        for q in data
        if _text(q.get("datasourceUid")) == EXPRESSION_UID
    }
    return [
        q
        for q in data
        if _text(q.get("datasourceUid")) != EXPRESSION_UID and _text(q.get("refId")) not in inputs
    ]


# A value query must answer even without data: `... or vector(0)`, or a bare vector(...).
_GUARDED = re.compile(r"\bor\s+vector\s*\(|^\s*vector\s*\(")


def _project_rule_findings(group: dict[str, Any], interval: float) -> Iterator[Finding]:
    for rule in _items(group.get("rules")):
        rule = _mapping(rule)
        yield from _value_query_findings(rule)
        pending = prom_duration(_text(rule.get("for"))) if _text(rule.get("for")) else 0.0
        if pending < interval:
            yield Finding(
                "project",
                RULES_FILE,
                f"rule '{rule.get('title')}': `for` ({rule.get('for')}) is shorter than the "
                f"group interval ({group.get('interval')}): one evaluation would fire it",
                "a pending period must span at least one evaluation",
            )


def _value_query_findings(rule: dict[str, Any]) -> Iterator[Finding]:
    """Grafana accepts these value queries, but their value never reaches exo-scaler, or they
    silence the rule itself (pkg/services/ngalert/eval/eval.go)."""
    title = rule.get("title")
    for query in value_queries(rule):
        ref, model = _text(query.get("refId")), _mapping(query.get("model"))
        if model.get("instant") is not True or model.get("range") is True:
            yield Finding(
                "project",
                RULES_FILE,
                f"rule '{title}': query {ref} is not instant (instant: true, range: false)",
                "eval.go queryDataResponseToExecutionResults captures single values only: "
                "a range result never reaches the webhook's `values`",
            )
        elif not _GUARDED.search(_text(model.get("expr"))):
            yield Finding(
                "project",
                RULES_FILE,
                f"rule '{title}': query {ref} can return no data (add `or vector(0)`)",
                "eval.go evaluateExecutionResult: any query without data makes the whole rule "
                "NoData, which with noDataState OK silences the condition too",
            )


def contact_point_findings(body: Any) -> Iterator[Finding]:
    f = CONTACT_POINTS_FILE
    for point in _items(_mapping(body).get("contactPoints")):
        point = _mapping(point)
        name = _text(point.get("name")).strip()
        if not name:
            yield Finding("grafana", f, "no name is set", _CONTACT_TYPES)
            return
        for receiver in _items(point.get("receivers")):
            receiver = _mapping(receiver)
            problem = (
                "no uid is set"
                if not _text(receiver.get("uid")).strip()
                else "no type is set"
                if not _text(receiver.get("type")).strip()
                else "no settings are set"
                if not _mapping(receiver.get("settings"))
                else ""
            )
            if problem:
                yield Finding("grafana", f, f"{name}: {problem}", _CONTACT_TYPES)
                return
            settings = _mapping(receiver.get("settings"))
            if _text(receiver.get("type")).strip() == "webhook":
                # github.com/grafana/alerting receivers/webhook/config.go (NewConfig), run by
                # ValidateContactPoint when the file is read.
                source = "grafana/alerting receivers/webhook/config.go (NewConfig)"
                if not _text(settings.get("url")):
                    yield Finding("grafana", f, "required field 'url' is not specified", source)
                    return
                has_basic = _text(settings.get("username")) and _text(settings.get("password"))
                credentials = _text(settings.get("authorization_credentials"))
                scheme = _text(settings.get("authorization_scheme")) or (
                    "Bearer" if credentials else ""
                )
                if has_basic and scheme and credentials:
                    message = (
                        "both HTTP Basic Authentication and Authorization Header are set, "
                        "only 1 is permitted"
                    )
                    yield Finding("grafana", f, message, source)
                    return


def policy_findings(body: Any, contact_points: Any) -> Iterator[Finding]:
    f = POLICIES_FILE
    receivers = {
        _text(_mapping(p).get("name")).strip()
        for p in _items(_mapping(contact_points).get("contactPoints"))
    }
    for policy in _items(_mapping(body).get("policies")):
        route = _mapping(policy)
        receiver = _text(route.get("receiver"))
        if not receiver:
            yield Finding("grafana", f, "root route must specify a default receiver", _ROUTE)
            return
        # Grafana checks match/match_re; Alertmanager's own config.go (which Grafana's notifier
        # is built on) also refuses `matchers` on the root.
        if any(route.get(key) for key in ("match", "match_re", "matchers", "object_matchers")):
            yield Finding("grafana", f, "root route must not have any matchers", _ROUTE)
            return
        if route.get("mute_time_intervals"):
            message = "root route must not have any mute time intervals"
            yield Finding("grafana", f, message, _ROUTE)
            return
        group_by = [_text(label) for label in _items(route.get("group_by"))]
        seen: set[str] = set()
        for label in group_by:
            if label in seen:
                message = (
                    f'duplicated label "{label}" in group_by, {receiver} [{" ".join(group_by)}]'
                )
                yield Finding("grafana", f, message, _ROUTE.replace("Validate", "ValidateChild"))
                return
            seen.add(label)
        timers: dict[str, float] = {}
        for key in ("group_wait", "group_interval", "repeat_interval"):
            if route.get(key) is not None:
                try:
                    timers[key] = prom_duration(_text(route.get(key)))
                except ProvisioningError as exc:
                    yield Finding("grafana", f, str(exc), "model.Duration (YAML)")
                    return
        for key in ("group_interval", "repeat_interval"):
            if timers.get(key) == 0:
                message = f"{key} cannot be zero"
                yield Finding("grafana", f, message, _ROUTE.replace("Validate", "ValidateChild"))
                return
        if receiver not in receivers:
            message = f"receiver '{receiver}' does not exist"
            yield Finding("grafana", f, message, _ROUTE.replace("Validate", "ValidateReceivers"))
            return
        # Defaults: prometheus/alertmanager dispatch/route.go DefaultRouteOpts (30s, 5m, 4h).
        group_interval = timers.get("group_interval", 300.0)
        repeat = timers.get("repeat_interval", 4 * 3600.0)
        if repeat < group_interval:
            yield Finding(
                "project",
                f,
                f"repeat_interval ({route.get('repeat_interval')}) is below group_interval "
                f"({route.get('group_interval')}): a re-send only ever happens at a "
                "group_interval flush, so the setting hides the real cadence",
                "prometheus/alertmanager notify/notify.go DedupStage.needsUpdate",
            )


def datasource_findings(prov: Provisioning) -> Iterator[Finding]:
    """Project rule: every data source reference is the provisioned uid. Grafana accepts any uid
    here; a panel on another uid shows "data source not found", a rule query on another uid fails
    every evaluation (DatasourceError or, with execErrState OK, silence)."""
    uids = {
        _text(_mapping(s).get("uid")) for s in _items(_mapping(prov.datasources).get("datasources"))
    }
    for group in _items(_mapping(prov.rules).get("groups")):
        for rule in _items(_mapping(group).get("rules")):
            used = {
                _text(_mapping(q).get("datasourceUid")) for q in _items(_mapping(rule).get("data"))
            }
            unknown = used - {"__expr__"} - uids
            if unknown:
                yield Finding(
                    "project",
                    RULES_FILE,
                    f"rule '{_mapping(rule).get('title')}' queries data source(s) "
                    f"{sorted(unknown)}, not the provisioned {sorted(uids)}",
                    "every evaluation would fail",
                )
    if prov.dashboard is not None:
        unknown = dashboard_datasource_uids(prov.dashboard) - uids
        if unknown:
            yield Finding(
                "project",
                DASHBOARD_FILE,
                f"panels use data source(s) {sorted(unknown)}, not the provisioned {sorted(uids)}",
                'Grafana shows "data source not found"',
            )


def dashboard_datasource_uids(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        source = node.get("datasource")
        if isinstance(source, dict) and "uid" in source:
            found.add(str(source["uid"]))
        for value in node.values():
            found |= dashboard_datasource_uids(value)
    elif isinstance(node, list):
        for item in node:
            found |= dashboard_datasource_uids(item)
    return found


def findings(prov: Provisioning) -> list[Finding]:
    """Every finding, Grafana's first (in the order Grafana provisions: rules, contact points,
    policies — pkg/services/provisioning/alerting/provisioner.go), then the project's."""
    found = [
        *rule_findings(prov.rules),
        *contact_point_findings(prov.contact_points),
        *policy_findings(prov.policies, prov.contact_points),
        *datasource_findings(prov),
    ]
    return sorted(found, key=lambda x: x.kind != "grafana")


def refuse_like_grafana(prov: Provisioning) -> None:
    """Raise ProvisioningError with the first thing grafana-server would refuse, if any."""
    for finding in findings(prov):
        if finding.kind == "grafana":
            raise ProvisioningError(str(finding))


def deployment_environment(value: str = "set-on-the-monitor") -> dict[str, str]:
    """Grafana's environment on the monitor, with one value for every variable (for checks)."""
    return dict.fromkeys(GRAFANA_ENVIRONMENT_NAMES, value)
