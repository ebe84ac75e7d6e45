"""Security rules of DESIGN §7, read from the HCL itself."""

from __future__ import annotations

import ast
import re
from typing import Any

import pytest
from infra_support import (
    IAM_ROLE_FILE,
    POLICY_FILES,
    POLICY_NLB_ID,
    POLICY_POOL_ID,
    TERRAFORM_DIR,
    load_module_file,
    load_terraform,
    named_blocks,
    resources,
)

REPO = TERRAFORM_DIR.parents[1]
CLIENT_SOURCE = REPO / "packages/exo-client/src/exo_client/client.py"
SERVICES = ("exo-sd", "exo-scaler")
# Reached only when a pool is given by name (ExoClient.get_pool); the monitor passes the pool's
# id (EXOSCALE_INSTANCEPOOL_ID, asserted in test_rendered_configs), and list-instance-pools would
# return every pool's user-data (secrets).
NAME_LOOKUP_ONLY = {"list-instance-pools"}
#: operation -> the parameter clause its rule carries when scoped (iam_scope_by_id = true)
SCOPE = {
    "get-instance-pool": "parameters.id == '{pool}'",
    "scale-instance-pool": "parameters.id == '{pool}'",
    "evict-instance-pool-members": "parameters.id == '{pool}'",
    "list-instances": "parameters.manager_id == '{pool}'",
    "get-load-balancer": "parameters.id == '{nlb}'",
    "get-quota": "parameters.entity == 'instance'",
}


def _client_operations() -> dict[str, set[str]]:
    """{ExoClient method: API operations it calls}, following calls to its own methods."""
    tree = ast.parse(CLIENT_SOURCE.read_text())
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ExoClient"]
    direct: dict[str, set[str]] = {}
    calls: dict[str, set[str]] = {}
    for method in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
        direct[method.name], calls[method.name] = set(), set()
        for node in ast.walk(method):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "self"):
                continue
            if node.func.attr == "_call":
                first = node.args[0]
                assert isinstance(first, ast.Constant), ast.dump(node)
                direct[method.name].add(first.value)
            else:
                calls[method.name].add(node.func.attr)

    def closure(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        found = set(direct.get(name, ()))
        for callee in calls.get(name, set()) - seen:
            found |= closure(callee, seen | {name})
        return found

    return {name: closure(name) for name in direct if not name.startswith("_")}


def _used_client_methods(methods: set[str], package: str) -> set[str]:
    """ExoClient methods a package's source references (`client.get_pool`, ...)."""
    used = set()
    for path in (REPO / "packages" / package / "src").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in methods:
                owner = node.value
                owner_name = (
                    owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
                )
                if owner_name.endswith("client"):
                    used.add(node.attr)
    return used


def needed_operations(package: str) -> set[str]:
    """The API operations a service calls: its ExoClient calls, followed through exo-client."""
    operations = _client_operations()
    used = _used_client_methods(set(operations), package)
    assert used, f"no ExoClient call found in {package}"
    return set().union(*(operations[m] for m in used)) - NAME_LOOKUP_ONLY


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
    """And 3000/9090 only through the course grader's opt-in, off by default."""
    public = {
        name: rule for name, rule in rules.items() if rule.get("cidr") in {"0.0.0.0/0", "::/0"}
    }
    assert public, "slow-web must be reachable through the NLB"
    for name, rule in public.items():
        if name == "monitor_grader":
            assert rule["for_each"].startswith("${var.course_grader_access ?"), rule
            assert "3000" in rule["for_each"] and "9090" in rule["for_each"]
            assert rule["security_group_id"] == "${exoscale_security_group.monitor.id}"
            continue
        assert _ports(rule) in {(80, 80), (8080, 8080)}, name
        assert rule["security_group_id"] == "${exoscale_security_group.pool.id}", name


def test_grader_opt_in_is_off_and_loud(tree: dict[str, Any]) -> None:
    variable = named_blocks(tree, "variable")["course_grader_access"]
    assert variable["default"] is False
    warning = named_blocks(tree, "output")["WARNING_course_grader_access"]
    assert "var.course_grader_access ?" in warning["value"]
    assert "open to the whole Internet" in warning["value"]


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
    if str(rule.get("for_each", "")).startswith("${var.course_grader_access ?"):
        assert (start, end) == ("${each.value}", "${each.value}"), rule
        return {int(port) for port in re.findall(r"= (\d+)", rule["for_each"])}
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


def test_operations_are_derived_from_the_code() -> None:
    assert needed_operations("exo-sd") == {"list-instances"}
    assert needed_operations("exo-scaler") == {
        "get-instance-pool",
        "list-instances",
        "scale-instance-pool",
        "evict-instance-pool-members",
        "get-operation",
        "get-load-balancer",
        "get-quota",
    }
    for service in SERVICES:
        # Nothing calls these: they would hand out other instances' user-data (secrets).
        assert not {"get-instance", "list-instance-pools"} & needed_operations(service)


def _granted(rules: list[dict[str, str]]) -> dict[str, str]:
    """{operation: the allow rule's expression} from `operation in [...]` / `operation == ...`."""
    granted = {}
    for rule in rules:
        if rule["action"] != "allow":
            continue
        listed = re.match(r"operation in \[([^\]]*)\]", rule["expression"])
        single = re.match(r"operation == '([a-z-]+)'", rule["expression"])
        names = (
            [op.strip().strip("'") for op in listed.group(1).split(",")]
            if listed
            else [single.group(1)]
            if single
            else []
        )
        assert names, f"allow rule without an operation list: {rule['expression']}"
        for name in names:
            assert name not in granted, f"{name} granted twice"
            granted[name] = rule["expression"]
    return granted


def test_a_role_and_a_key_per_service(tree: dict[str, Any]) -> None:
    """Two roles, each from its own policy file rendered for this pool (main.tf's local; exo-lab
    renders the same files, exo_lab.stack.iam_role), and a key bound to each."""
    (block,) = [b for b in tree["locals"] if "iam_policy" in b]
    policies = block["iam_policy"]
    found = resources(tree)
    assert {name for rtype, name in found if rtype == "exoscale_iam_role"} == {
        "exo_sd",
        "exo_scaler",
    }
    assert {name for rtype, name in found if rtype == "exoscale_iam_api_key"} == {
        "exo_sd",
        "exo_scaler",
    }
    for service in SERVICES:
        name = service.replace("-", "_")
        expression = policies[name]
        assert f'templatefile("${{path.module}}/policies/{service}-role.json.tftpl"' in expression
        assert "pool_id = exoscale_instance_pool.web.id" in expression
        assert "scope_by_id = var.iam_scope_by_id" in expression
        assert expression.startswith("${jsondecode(")
        role = found[("exoscale_iam_role", name)]
        assert role["policy"] == f"${{local.iam_policy.{name}}}"
        key = found[("exoscale_iam_api_key", name)]
        assert key["role_id"] == f"${{exoscale_iam_role.{name}.id}}"
        # Created after the roles have settled (Exoscale's CSI driver tests wait there).
        assert key["depends_on"] == ["${terraform_data.iam_roles_settle}"]
    assert "nlb_id = exoscale_nlb.web.id" in policies["exo_scaler"]
    settle = found[("terraform_data", "iam_roles_settle")]
    assert settle["triggers_replace"] == [
        "${exoscale_iam_role.exo_sd.id}",
        "${exoscale_iam_role.exo_scaler.id}",
    ]
    (provisioner,) = settle["provisioner"]
    assert re.fullmatch(r"sleep \d+", provisioner["local-exec"]["command"])
    variable = named_blocks(tree, "variable")["iam_scope_by_id"]
    assert variable["default"] is True and variable["type"].strip("${}") == "bool"
    assert "WEAKER" in variable["description"]


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("scoped", [True, False], ids=["scoped", "operation-only"])
def test_each_role_grants_exactly_what_its_service_calls(
    role_policies: dict[tuple[str, bool], dict[str, Any]], service: str, scoped: bool
) -> None:
    policy = role_policies[(service, scoped)]
    assert policy["default_service_strategy"] == "deny"
    assert set(policy["services"]) == {"compute"}
    compute = policy["services"]["compute"]
    assert compute["type"] == "rules"
    rules = compute["rules"]
    granted = _granted(rules)
    assert set(granted) == needed_operations(service)
    # Deny everything else explicitly, last.
    assert rules[-1] == {"action": "deny", "expression": "true"}
    for operation, expression in granted.items():
        clause = SCOPE.get(operation)
        if clause is None:  # get-operation: an operation's id exists only once it runs
            assert expression == f"operation == '{operation}'"
        elif scoped:
            wanted = clause.format(pool=POLICY_POOL_ID, nlb=POLICY_NLB_ID)
            assert expression.endswith(f" && {wanted}"), (operation, expression)
        else:
            # The fallback: the same rule without its parameter clause, operation-only.
            assert "parameters" not in expression, (operation, expression)


def test_the_lab_renders_the_policy_files_as_terraform_does(
    role_policies: dict[tuple[str, bool], dict[str, Any]],
) -> None:
    """exo-lab gives its exo-sd and exo-scaler these very roles: its renderer (the subset of
    Terraform's template syntax the files use) gives what `templatefile` gives, both ways."""
    iam_role = load_module_file("exo_lab_iam_role", IAM_ROLE_FILE)
    assert {s: TERRAFORM_DIR / "policies" / f for s, f in iam_role.POLICY_FILES.items()} == (
        POLICY_FILES
    )
    for (service, scoped), policy in role_policies.items():
        rendered = iam_role.render_role_policy(
            POLICY_FILES[service], pool_id=POLICY_POOL_ID, nlb_id=POLICY_NLB_ID, scope_by_id=scoped
        )
        assert rendered == policy, (service, scoped)


def test_exo_sd_cannot_read_the_pool(role_policies: dict[tuple[str, bool], Any]) -> None:
    """get-instance-pool answers with the pool's user-data (the members' admin token)."""
    for scoped in (True, False):
        granted = _granted(role_policies[("exo-sd", scoped)]["services"]["compute"]["rules"])
        assert set(granted) == {"list-instances"}


SECRET_VARIABLES = {"exoscale_api_secret", "exoscale_secret"}
SECRET_OUTPUTS = {
    "scaler_token",
    "member_admin_token",
    "exo_sd_api_key",
    "exo_sd_api_secret",
    "exo_scaler_api_key",
    "exo_scaler_api_secret",
    "grafana_admin_password",
}


def test_secret_variables_are_sensitive(tree: dict[str, Any]) -> None:
    variables = named_blocks(tree, "variable")
    for name in SECRET_VARIABLES:
        assert variables[name].get("sensitive") is True, name
    for name, body in variables.items():
        if re.search(r"secret|password|token", name):
            assert body.get("sensitive") is True, name
    # Generated, never asked for.
    assert "grafana_admin_password" not in variables


def test_secret_outputs_are_sensitive(tree: dict[str, Any]) -> None:
    outputs = named_blocks(tree, "output")
    for name in SECRET_OUTPUTS:
        assert outputs[name].get("sensitive") is True, name
    secret_sources = (
        "secret",
        "password",
        "scaler_token.result",
        "member_admin_token.result",
        "grafana_admin.result",
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


def test_monitor_gets_one_least_privilege_key_per_service(tree: dict[str, Any]) -> None:
    (module,) = [entry["cloud_init"] for entry in tree["module"] if "cloud_init" in entry]
    runtime = module["monitor_runtime"]
    assert runtime["sd_api_key"] == "${exoscale_iam_api_key.exo_sd.key}"
    assert runtime["sd_api_secret"] == "${exoscale_iam_api_key.exo_sd.secret}"
    assert runtime["scaler_api_key"] == "${exoscale_iam_api_key.exo_scaler.key}"
    assert runtime["scaler_api_secret"] == "${exoscale_iam_api_key.exo_scaler.secret}"
    assert "var.exoscale_api" not in str(module)
    assert module["member_admin_token"] == "${random_password.member_admin_token.result}"
