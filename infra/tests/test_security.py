"""Security rules of DESIGN §7, read from the HCL itself."""

from __future__ import annotations

import re
from typing import Any

import pytest
from infra_support import TERRAFORM_DIR, load_terraform, named_blocks, resources

EXPECTED_OPERATIONS = {
    "get-instance-pool",
    "list-instance-pools",
    "get-instance",
    "list-instances",
    "scale-instance-pool",
    "evict-instance-pool-members",
    "get-operation",
}


@pytest.fixture(scope="module")
def tree() -> dict[str, list[Any]]:
    return load_terraform(TERRAFORM_DIR)


@pytest.fixture(scope="module")
def rules(tree: dict[str, Any]) -> dict[str, Any]:
    return {
        name: body
        for (rtype, name), body in resources(tree).items()
        if rtype == "exoscale_security_group_rule"
    }


def _ports(rule: dict[str, Any]) -> tuple[Any, Any]:
    return rule["start_port"], rule["end_port"]


def test_only_8080_is_open_to_the_internet(rules: dict[str, Any]) -> None:
    public = {
        name: rule for name, rule in rules.items() if rule.get("cidr") in {"0.0.0.0/0", "::/0"}
    }
    assert public, "slow-web must be reachable through the NLB"
    for name, rule in public.items():
        assert _ports(rule) in {(80, 80), (8080, 8080)}, name
        assert rule["security_group_id"] == "${exoscale_security_group.pool.id}", name


def test_every_cidr_rule_is_public_web_or_admin(rules: dict[str, Any]) -> None:
    for name, rule in rules.items():
        cidr = rule.get("cidr")
        if cidr is None or cidr in {"0.0.0.0/0", "::/0"}:
            continue
        # Any other CIDR must come from var.admin_cidrs, through for_each.
        assert cidr in {"${each.value}", "${each.value.cidr}"}, name
        assert rule["for_each"] in {"${toset(var.admin_cidrs)}", "${local.admin_rules}"}, name


def test_nlb_health_checks_reach_8080(rules: dict[str, Any]) -> None:
    (rule,) = [r for r in rules.values() if "public_security_group" in r]
    assert rule["public_security_group"] == "public-nlb-healthcheck-sources"
    assert _ports(rule) == (8080, 8080)
    assert rule["type"] == "INGRESS"


def test_node_exporter_only_from_the_monitor(rules: dict[str, Any]) -> None:
    exporter = [r for r in rules.values() if _ports(r) == (9100, 9100)]
    assert len(exporter) == 1
    assert exporter[0]["user_security_group_id"] == "${exoscale_security_group.monitor.id}"
    assert "cidr" not in exporter[0]


def _port_numbers(tree: dict[str, Any], rule: dict[str, Any]) -> set[int]:
    """Ports a rule opens; a port taken from local.admin_ports stands for all of them."""
    start, end = _ports(rule)
    if isinstance(start, int) and isinstance(end, int):
        return set(range(start, end + 1))
    assert (start, end) == ("${each.value.port}", "${each.value.port}"), rule
    (admin_locals,) = [block for block in tree["locals"] if "admin_ports" in block]
    return set(admin_locals["admin_ports"].values())


def test_member_admin_api_only_from_the_monitor(
    tree: dict[str, Any], rules: dict[str, Any]
) -> None:
    """slow-web's admin port (drain) is reachable from the monitor's group and nothing else."""
    covering = {name: r for name, r in rules.items() if 8081 in _port_numbers(tree, r)}
    assert len(covering) == 1, covering
    ((name, rule),) = covering.items()
    assert rule["security_group_id"] == "${exoscale_security_group.pool.id}", name
    assert rule["user_security_group_id"] == "${exoscale_security_group.monitor.id}", name
    assert rule["type"] == "INGRESS", name
    # Neither the Internet, nor the NLB's health checkers, nor admin_cidrs.
    assert not {"cidr", "public_security_group", "for_each"} & set(rule), name


def test_only_the_monitor_group_is_trusted_by_group(rules: dict[str, Any]) -> None:
    by_group = {name: r for name, r in rules.items() if "user_security_group_id" in r}
    assert {_ports(r) for r in by_group.values()} == {(9100, 9100), (8081, 8081)}
    for name, rule in by_group.items():
        assert rule["user_security_group_id"] == "${exoscale_security_group.monitor.id}", name


def test_admin_ports_only_from_admin_cidrs(tree: dict[str, Any], rules: dict[str, Any]) -> None:
    (admin_locals,) = [block for block in tree["locals"] if "admin_ports" in block]
    assert set(admin_locals["admin_ports"].values()) == {22, 3000, 9090}
    assert "setproduct(keys(local.admin_ports), var.admin_cidrs)" in admin_locals["admin_rules"]
    for name, rule in rules.items():
        if rule.get("cidr") in {"0.0.0.0/0", "::/0"} or "public_security_group" in rule:
            continue
        if "user_security_group_id" in rule:
            continue
        assert rule["for_each"] in {"${toset(var.admin_cidrs)}", "${local.admin_rules}"}, name
    admin = named_blocks(tree, "variable")["admin_cidrs"]
    assert admin["default"] == []
    assert "0.0.0.0/0" in admin["validation"][0]["condition"]


def test_iam_role_allows_only_the_needed_operations(tree: dict[str, Any]) -> None:
    role = resources(tree)[("exoscale_iam_role", "autoscaler")]
    policy = role["policy"]
    assert policy["default_service_strategy"] == "deny"
    assert set(policy["services"]) == {"compute"}
    compute = policy["services"]["compute"]
    assert compute["type"] == "rules"
    allow, deny = compute["rules"]
    assert allow["action"] == "allow"
    match = re.fullmatch(r"operation in \[(.*)\]", allow["expression"])
    assert match, allow["expression"]
    operations = {op.strip().strip("'") for op in match.group(1).split(",")}
    assert operations == EXPECTED_OPERATIONS
    assert deny == {"action": "deny", "expression": "true"}
    key = resources(tree)[("exoscale_iam_api_key", "autoscaler")]
    assert key["role_id"] == "${exoscale_iam_role.autoscaler.id}"


SECRET_VARIABLES = {"exoscale_api_secret", "grafana_admin_password"}
SECRET_OUTPUTS = {"scaler_token", "member_admin_token", "autoscaler_api_secret"}


def test_secret_variables_are_sensitive(tree: dict[str, Any]) -> None:
    variables = named_blocks(tree, "variable")
    for name in SECRET_VARIABLES:
        assert variables[name].get("sensitive") is True, name
    for name, body in variables.items():
        if re.search(r"secret|password|token", name):
            assert body.get("sensitive") is True, name
    assert "default" not in variables["grafana_admin_password"]


def test_secret_outputs_are_sensitive(tree: dict[str, Any]) -> None:
    outputs = named_blocks(tree, "output")
    for name in SECRET_OUTPUTS:
        assert outputs[name].get("sensitive") is True, name
    secret_sources = (
        "secret",
        "password",
        "scaler_token.result",
        "member_admin_token.result",
        "monitor_user_data",
        "pool_user_data",
    )
    for name, body in outputs.items():
        if any(source in str(body["value"]) for source in secret_sources):
            assert body.get("sensitive") is True, f"output {name} exposes a secret"


def test_module_outputs_with_secrets_are_sensitive() -> None:
    module_outputs = named_blocks(
        load_terraform(TERRAFORM_DIR / "modules" / "cloud-init"), "output"
    )
    assert module_outputs["monitor_user_data"]["sensitive"] is True
    assert module_outputs["monitor_cloud_config"]["sensitive"] is True
    # The pool's user-data now carries slow-web's admin token.
    assert module_outputs["pool_user_data"]["sensitive"] is True
    assert module_outputs["pool_cloud_config"]["sensitive"] is True
    module_variables = named_blocks(
        load_terraform(TERRAFORM_DIR / "modules" / "cloud-init"), "variable"
    )
    assert module_variables["monitor_runtime"]["sensitive"] is True
    assert module_variables["member_admin_token"]["sensitive"] is True


def test_monitor_gets_the_least_privilege_key(tree: dict[str, Any]) -> None:
    (module,) = [entry["cloud_init"] for entry in tree["module"] if "cloud_init" in entry]
    runtime = module["monitor_runtime"]
    assert runtime["api_key"] == "${exoscale_iam_api_key.autoscaler.key}"
    assert runtime["api_secret"] == "${exoscale_iam_api_key.autoscaler.secret}"
    assert "var.exoscale_api" not in str(module)
    assert module["member_admin_token"] == "${random_password.member_admin_token.result}"
