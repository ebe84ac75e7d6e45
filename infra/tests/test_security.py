"""Security rules of DESIGN §7, read from the HCL itself."""

from __future__ import annotations

import ast
import re
from typing import Any

import pytest
from infra_support import TERRAFORM_DIR, Terraform, load_terraform, named_blocks, resources

REPO = TERRAFORM_DIR.parents[1]
CLIENT_SOURCE = REPO / "packages/exo-client/src/exo_client/client.py"
# Reached only when --pool is a name (ExoClient.get_pool); the monitor passes the pool's id
# (EXOSCALE_INSTANCEPOOL_ID, asserted in test_rendered_configs), and list-instance-pools would
# return every pool's user-data (secrets).
NAME_LOOKUP_ONLY = {"list-instance-pools"}
# Every operation the IAM role may grant: the ones scoped to the pool, and the rest.
POOL_SCOPED = {"get-instance-pool", "scale-instance-pool", "evict-instance-pool-members"}


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


def _used_client_methods(methods: set[str]) -> set[str]:
    """ExoClient methods exo-sd and exo-scaler reference (`client.get_pool`, ...)."""
    used = set()
    for package in ("exo-sd", "exo-scaler"):
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


def needed_operations() -> set[str]:
    operations = _client_operations()
    used = _used_client_methods(set(operations))
    assert used, "no ExoClient call found in exo-sd / exo-scaler"
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


def test_operations_are_derived_from_exo_client() -> None:
    operations = needed_operations()
    assert operations == {
        "get-instance-pool",
        "list-instances",
        "scale-instance-pool",
        "evict-instance-pool-members",
        "get-operation",
        "get-load-balancer",
        "get-quota",
    }
    # Nothing calls these: they would hand out other instances' user-data (secrets).
    assert not {"get-instance", "list-instance-pools"} & operations


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
            granted[name] = rule["expression"]
    return granted


POLICY_TEMPLATE = TERRAFORM_DIR / "policies" / "autoscaler-role.json.tftpl"
POOL_ID = "3f1e2d4c-0000-4000-8000-00000000abcd"
NLB_ID = "7a6b5c4d-0000-4000-8000-00000000ef01"


@pytest.fixture(scope="module")
def policy(terraform: Terraform, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The role's policy as Terraform itself renders it (templatefile + jsondecode, the exact
    expression of main.tf's local), for a pool id of our choosing."""
    workdir = tmp_path_factory.mktemp("policy")
    (workdir / "main.tf").write_text(
        'output "policy" {\n'
        f'  value = jsondecode(templatefile("{POLICY_TEMPLATE}", '
        f'{{ pool_id = "{POOL_ID}", nlb_id = "{NLB_ID}" }}))\n'
        "}\n"
    )
    terraform.check(["init", "-input=false"], workdir)
    terraform.check(["apply", "-auto-approve", "-input=false"], workdir)
    rendered: dict[str, Any] = terraform.outputs(workdir)["policy"]
    return rendered


def test_the_role_takes_its_policy_from_the_one_file(tree: dict[str, Any]) -> None:
    """main.tf renders policies/autoscaler-role.json.tftpl for this pool, and the role uses it;
    exo-lab renders the same file for its zone (exo_lab.stack.iam_role)."""
    (block,) = [b for b in tree["locals"] if "autoscaler_policy" in b]
    expression = block["autoscaler_policy"]
    assert 'templatefile("${path.module}/policies/autoscaler-role.json.tftpl"' in expression
    assert "pool_id = exoscale_instance_pool.web.id" in expression
    assert "nlb_id = exoscale_nlb.web.id" in expression
    assert expression.startswith("${jsondecode(")
    role = resources(tree)[("exoscale_iam_role", "autoscaler")]
    assert role["policy"] == "${local.autoscaler_policy}"
    key = resources(tree)[("exoscale_iam_api_key", "autoscaler")]
    assert key["role_id"] == "${exoscale_iam_role.autoscaler.id}"


def test_iam_role_grants_exactly_what_exo_client_calls(policy: dict[str, Any]) -> None:
    assert policy["default_service_strategy"] == "deny"
    assert set(policy["services"]) == {"compute"}
    compute = policy["services"]["compute"]
    assert compute["type"] == "rules"
    rules = compute["rules"]
    assert set(_granted(rules)) == needed_operations()
    # Deny everything else explicitly, last.
    assert rules[-1] == {"action": "deny", "expression": "true"}


def test_pool_operations_are_scoped_to_this_pool(policy: dict[str, Any]) -> None:
    granted = _granted(policy["services"]["compute"]["rules"])
    for operation in POOL_SCOPED:
        assert granted[operation].endswith(f"&& parameters.id == '{POOL_ID}'"), operation
    assert granted["get-load-balancer"].endswith(f"&& parameters.id == '{NLB_ID}'")
    assert granted["get-quota"].endswith("&& parameters.entity == 'instance'")


SECRET_VARIABLES = {"exoscale_api_secret", "exoscale_secret"}
SECRET_OUTPUTS = {
    "scaler_token",
    "member_admin_token",
    "autoscaler_api_secret",
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


def test_monitor_gets_the_least_privilege_key(tree: dict[str, Any]) -> None:
    (module,) = [entry["cloud_init"] for entry in tree["module"] if "cloud_init" in entry]
    runtime = module["monitor_runtime"]
    assert runtime["api_key"] == "${exoscale_iam_api_key.autoscaler.key}"
    assert runtime["api_secret"] == "${exoscale_iam_api_key.autoscaler.secret}"
    assert "var.exoscale_api" not in str(module)
    assert module["member_admin_token"] == "${random_password.member_admin_token.result}"
