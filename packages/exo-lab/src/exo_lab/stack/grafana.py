"""Grafana's alerting provisioning, translated for Prometheus + Alertmanager.

Grafana cannot run offline, so in the lab Alertmanager plays its notifier. Everything is read
from grafana-provisioning/ — expression, threshold, pending period, evaluation interval,
action label, webhook path, credentials, resolve policy, grouping and repeat interval — so a
change there changes the lab too. `speed` divides every duration, including the range windows
inside the PromQL expression.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml

_OPERATORS = {"gt": ">", "lt": "<"}
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_RANGE = re.compile(r"\[(\d+(?:ms|s|m|h|d))\]")


class ProvisioningError(ValueError):
    """grafana-provisioning/ does not have the shape the lab relies on."""


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus/Grafana duration such as `1m`, `15s`, `1m30s`, `500ms`."""
    text = str(text).strip()
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ProvisioningError(f"not a duration: {text!r}")
    return total


def format_duration(seconds: float) -> str:
    """A duration Prometheus and Alertmanager accept, to the millisecond (never below 1 ms)."""
    ms = max(1, round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def scale_expression(expr: str, speed: float) -> str:
    """Divide every range window (`[1m]`) in a PromQL expression by `speed`."""
    return _RANGE.sub(lambda m: f"[{format_duration(parse_duration(m.group(1)) / speed)}]", expr)


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


@dataclass(frozen=True)
class WebhookRoute:
    url: str
    scheme: str  # "Bearer" or "" (none)
    credentials: str  # a template such as ${EXO_SCALER_TOKEN}
    send_resolved: bool
    group_by: tuple[str, ...]
    group_wait: float
    group_interval: float
    repeat_interval: float


def _load(path: Path) -> dict[str, Any]:
    try:
        body = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ProvisioningError(f"cannot read {path}: {exc}") from exc
    if not isinstance(body, dict):
        raise ProvisioningError(f"{path} is not a YAML mapping")
    return body


def load_rules(provisioning: Path) -> list[ScalingRule]:
    body = _load(provisioning / "alerting" / "rules.yaml")
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
                query = queries[condition["expression"]]["model"]
                rules.append(
                    ScalingRule(
                        uid=rule["uid"],
                        title=rule["title"],
                        expr=query["expr"],
                        operator=_OPERATORS[evaluator["type"]],
                        threshold=float(evaluator["params"][0]),
                        pending=parse_duration(rule.get("for", "0s")),
                        action=rule["labels"]["action"],
                        evaluation_interval=interval,
                    )
                )
    except (KeyError, IndexError, TypeError) as exc:
        raise ProvisioningError(f"rules.yaml: missing or malformed field {exc}") from exc
    if not rules:
        raise ProvisioningError("rules.yaml defines no rule")
    return rules


def load_webhook_route(provisioning: Path) -> WebhookRoute:
    alerting = provisioning / "alerting"
    points = _load(alerting / "contact-points.yaml")
    policies = _load(alerting / "policies.yaml")
    try:
        policy = policies["policies"][0]
        receiver_name = policy["receiver"]
        point = next(p for p in points["contactPoints"] if p["name"] == receiver_name)
        receiver = point["receivers"][0]
        if receiver["type"] != "webhook":
            raise ProvisioningError(f"contact point {receiver_name} is not a webhook")
        settings = receiver["settings"]
        return WebhookRoute(
            url=settings["url"],
            scheme=settings.get("authorization_scheme", ""),
            credentials=settings.get("authorization_credentials", ""),
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


def prometheus_rule_file(rules: list[ScalingRule], speed: float = 1.0) -> dict[str, Any]:
    """A Prometheus rule file with the same alerts as Grafana's rules, at `speed`."""
    interval = min(r.evaluation_interval for r in rules)
    return {
        "groups": [
            {
                "name": "autoscaling",
                "interval": format_duration(interval / speed),
                "rules": [
                    {
                        "alert": re.sub(r"\W+", "_", rule.uid).strip("_"),
                        "expr": f"({scale_expression(rule.expr, speed)}) "
                        f"{rule.operator} {rule.threshold:g}",
                        "for": format_duration(rule.pending / speed),
                        "labels": {"action": rule.action},
                        "annotations": {"summary": rule.title},
                    }
                    for rule in rules
                ],
            }
        ]
    }


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
    if route.scheme:
        if credentials_file is None:
            raise ProvisioningError("the contact point needs credentials: give a credentials file")
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


def interpolate_credentials(route: WebhookRoute, environment: Mapping[str, str]) -> str:
    """What Grafana would send: the contact point's credentials with ${VAR} from its env."""
    try:
        return Template(route.credentials).substitute(environment)
    except KeyError as exc:
        raise ProvisioningError(f"the contact point needs {exc} in the environment") from exc
