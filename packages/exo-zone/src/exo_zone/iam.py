"""IAM role policies, evaluated the way Exoscale documents them.

Sources (read, not copied):
- Policy shape: the shipped openapi.json's `iam-policy` / `iam-service-policy` /
  `iam-service-policy-rule` schemas (`default-service-strategy` allow|deny; `services` maps a
  service class to `type` allow|deny|rules; a rule has `action` allow|deny and `expression`),
  and terraform-provider-exoscale's `exoscale_iam_role` (exoscale/terraform-provider-exoscale,
  docs/resources/iam_role.md): the same block with snake-case keys
  (`default_service_strategy`), `resources` on a rule deprecated.
- Evaluation: Exoscale's policy guide (community.exoscale.com, IAM "Write IAM Policies"): a
  service without an entry follows `default-service-strategy`; `allow`/`deny` services decide
  at once; for `rules`, rules are evaluated in order, the first whose CEL expression is true
  decides with its action, an expression that cannot be evaluated concludes nothing (next
  rule), and when no rule decides the request is denied *regardless of the default strategy*.
- Bindings: the same guide lists `service`, `zone`, `now`, `source_ip`, `api_key`,
  `operation`, plus `parameters` and `resources`. Parameter names are the API's with `-`
  turned into `_`: terraform-provider-exoscale's examples/iam-priv-instance/main.tf tests
  `parameters.public_ip_assignment` for the API's `public-ip-assignment`, and calls
  `parameters.has('...')` (a member function, provided here). Resources are keyed by snake-case
  resource type (examples/iam-dbaas-instance/main.tf: `resources.dbaas_service.name`; the guide
  writes `resource.sks_nodepool.name`, so both `resources` and `resource` are bound).

Modelled, not documented: the path's `{id}` is `parameters.id` (the openapi.json names the
path parameter `id`), a query parameter such as `manager-id` is `parameters.manager_id`, and
every operation the zone serves, `get-operation` included, belongs to
the `compute` service class. The spec tags get-operation `operation` under the `general`
group, and no public source found says which IAM class that is; `compute` is what the
project's Terraform role (infra/terraform/main.tf) assumes, so the lab uses it and a real
deployment must confirm it (see the README).

Because only body parameters are documented, `Policy.evaluate` can be told not to bind the URL's
(path and query) parameters (`bind_url_parameters=False`): a rule that tests `parameters.id`
then cannot be evaluated and concludes nothing, as it would on an Exoscale that does not bind
them. That is how the lab proves `iam_scope_by_id = false` and the deploy check that names it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cel

log = logging.getLogger(__name__)

STRATEGIES = ("allow", "deny")
SERVICE_TYPES = ("allow", "deny", "rules")

#: operation -> IAM service class, for every operation the zone serves (see module docstring)
SERVICE_CLASS: dict[str, str] = {
    op: "compute"
    for op in (
        "list-instance-pools",
        "get-instance-pool",
        "scale-instance-pool",
        "evict-instance-pool-members",
        "list-instances",
        "get-instance",
        "delete-instance",
        "get-operation",
        "list-load-balancers",
        "get-load-balancer",
        "list-instance-types",
        "get-instance-type",
        "get-quota",  # spec tag "quotas"; which IAM class checks it is undocumented too
    )
}


class PolicyError(ValueError):
    """A policy document that is not shaped like an Exoscale IAM policy."""


@dataclass(frozen=True)
class Rule:
    action: str
    expression: str
    #: None when the expression does not compile: such a rule never decides
    program: cel.Program | None = field(compare=False, repr=False)


@dataclass(frozen=True)
class ServicePolicy:
    type: str
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class Decision:
    allowed: bool
    why: str


@dataclass(frozen=True)
class AuthzRequest:
    """What a rule's CEL expression sees."""

    operation: str
    #: the body's parameters (documented as bound)
    parameters: Mapping[str, Any]
    resources: Mapping[str, Any]
    zone: str = "ch-gva-2"
    api_key: str = ""
    source_ip: str = "127.0.0.1"
    #: the path's and the query's parameters (`{id}`, `manager-id`): bound only when the
    #: evaluation says so, since no public source says Exoscale binds them
    url_parameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def service(self) -> str:
        return SERVICE_CLASS.get(self.operation, "compute")


def _pick(body: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """A key in the API's kebab-case or Terraform's snake-case spelling."""
    if name in body:
        return body[name]
    return body.get(name.replace("-", "_"), default)


def _compile(expression: str) -> cel.Program | None:
    try:
        return cel.compile(expression)
    except (ValueError, RuntimeError) as exc:
        # Exoscale: an invalid expression concludes nothing; the lab logs it so a typo shows.
        log.warning("IAM rule expression does not compile, it will never decide: %s", exc)
        return None


def snake_keys(value: Any) -> Any:
    """The API's kebab-case names as CEL sees them (`public-ip-assignment` ->
    `public_ip_assignment`), recursively."""
    if isinstance(value, Mapping):
        return {str(k).replace("-", "_"): snake_keys(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [snake_keys(v) for v in value]
    return value


@dataclass(frozen=True)
class Policy:
    default_service_strategy: str
    services: Mapping[str, ServicePolicy]

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Policy:
        """From the API's policy JSON or Terraform's `policy` block; a role object (with a
        `policy` key) is accepted too."""
        if not isinstance(body, Mapping):
            raise PolicyError("a policy is a JSON object")
        if "policy" in body and isinstance(body["policy"], Mapping):
            body = body["policy"]
        strategy = _pick(body, "default-service-strategy")
        if strategy not in STRATEGIES:
            raise PolicyError(f"default-service-strategy must be one of {STRATEGIES}")
        services_body = _pick(body, "services", {}) or {}
        if not isinstance(services_body, Mapping):
            raise PolicyError("services must map service classes to service policies")
        services: dict[str, ServicePolicy] = {}
        for name, service in services_body.items():
            kind = service.get("type") if isinstance(service, Mapping) else None
            if kind not in SERVICE_TYPES:
                raise PolicyError(f"service {name}: type must be one of {SERVICE_TYPES}")
            rules: list[Rule] = []
            for i, rule in enumerate(service.get("rules") or ()):
                action = rule.get("action") if isinstance(rule, Mapping) else None
                if action not in STRATEGIES:
                    raise PolicyError(f"service {name} rule {i}: action must be allow or deny")
                expression = str(rule.get("expression", ""))
                rules.append(Rule(action, expression, _compile(expression)))
            if kind == "rules" and not rules:
                raise PolicyError(f"service {name}: type rules needs at least one rule")
            services[str(name)] = ServicePolicy(kind, tuple(rules))
        return cls(strategy, services)

    def evaluate(self, request: AuthzRequest, *, bind_url_parameters: bool = True) -> Decision:
        """Allowed or not, and why. `bind_url_parameters=False`: `parameters` holds the body's
        parameters only (see the module docstring)."""
        service = request.service
        policy = self.services.get(service)
        if policy is None:
            allowed = self.default_service_strategy == "allow"
            return Decision(allowed, f"service {service} not listed: default-service-strategy")
        if policy.type != "rules":
            return Decision(policy.type == "allow", f"service {service} is {policy.type}")
        context = _cel_context(request, bind_url_parameters)
        for i, rule in enumerate(policy.rules):
            if rule.program is None:
                continue
            try:
                result = rule.program.execute(context)
            except Exception as exc:  # the library raises several kinds; none decides
                log.debug("IAM rule %d (%s) concluded nothing: %s", i, rule.expression, exc)
                continue
            if result is True:
                return Decision(rule.action == "allow", f"service {service} rule {i}")
        return Decision(False, f"service {service}: no rule matched")


def _has(mapping: Any, key: Any) -> bool:
    return isinstance(mapping, Mapping) and key in mapping


def _cel_context(request: AuthzRequest, bind_url_parameters: bool) -> cel.Context:
    # A Context per evaluation: the library's Context is not thread-safe.
    context = cel.Context()
    resources = snake_keys(request.resources)
    parameters = dict(request.parameters)
    if bind_url_parameters:
        parameters.update(request.url_parameters)
    context.update(
        {
            "operation": request.operation,
            "service": request.service,
            "zone": request.zone,
            "api_key": request.api_key,
            "source_ip": request.source_ip,
            "now": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "parameters": snake_keys(parameters),
            "resources": resources,
            "resource": resources,
        }
    )
    context.add_function("has", _has)
    return context


def load_policy(path: str | Path) -> Policy:
    """A policy from a JSON file: the API's policy JSON, a role object, or Terraform's
    `policy` block as JSON (e.g. from `terraform show -json` or an HCL-to-JSON conversion)."""
    try:
        body = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise PolicyError(f"cannot read a policy from {path}: {exc}") from exc
    return Policy.from_dict(body)
