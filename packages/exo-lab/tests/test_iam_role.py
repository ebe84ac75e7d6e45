"""The lab gives exo-sd and exo-scaler Terraform's roles, one each: what a role grants works, the
rest is 403; `check-keys` proves both keys and names the fallback when the zone does not bind
path parameters."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from exo_client import AuthError, ClientSettings, ExoClient, RetryPolicy
from exo_lab.deployment.access import SignedApi
from exo_lab.deployment.keys import check_keys
from exo_lab.deployment.outputs import Deployment, Output, to_terraform_json
from exo_lab.stack.iam_role import POLICY_FILES, RolePolicyError, render_role_policy
from exo_testkit import FAST_TIMINGS, free_member_network
from exo_zone import LocalZone

REPO = Path(__file__).resolve().parents[3]
POLICIES = REPO / "infra" / "terraform" / "policies"


def role_client(local: LocalZone, service: str, pool_id: str, nlb_id: str,
                scope_by_id: bool = True) -> ExoClient:  # fmt: skip
    policy = render_role_policy(
        POLICIES / POLICY_FILES[service], pool_id=pool_id, nlb_id=nlb_id, scope_by_id=scope_by_id
    )
    key, secret = local.add_key(policy)
    settings = ClientSettings(api_key=key, api_secret=secret, endpoint=local.endpoint)
    return ExoClient(settings, retry=RetryPolicy(attempts=1))


@dataclass
class Lab:
    local: LocalZone
    pool_id: str
    nlb_id: str
    other_pool_id: str
    other_nlb_id: str


@pytest.fixture
def lab() -> Iterator[Lab]:
    with LocalZone(timings=FAST_TIMINGS, member_network=free_member_network()) as local:
        pool = local.zone.create_pool("web", 2)
        other = local.zone.create_pool("other", 1)
        nlb = local.zone.create_load_balancer("web-nlb", pool.id, port=8080)
        other_nlb = local.zone.create_load_balancer("other-nlb", other.id, port=8081)
        yield Lab(local, pool.id, nlb.id, other.id, other_nlb.id)


def test_exo_scalers_role_allows_what_it_does_and_nothing_else(lab: Lab) -> None:
    client = role_client(lab.local, "exo-scaler", lab.pool_id, lab.nlb_id)
    # What exo-scaler calls, on its own pool.
    assert client.get_pool(lab.pool_id).size == 2
    assert len(client.list_members(lab.pool_id)) == 2
    operation = client.scale_pool(lab.pool_id, 3)
    assert client.get_operation(operation.id).id == operation.id
    assert client.get_quota("instance").unlimited
    assert set(client.pool_health(lab.nlb_id, lab.pool_id)) <= {
        m.address for m in lab.local.zone.members(lab.pool_id)
    }
    # Another pool, even read-only, and a call nothing in the product makes.
    for refused in (
        lambda: client.get_pool(lab.other_pool_id),
        lambda: client.scale_pool(lab.other_pool_id, 2),
        lambda: client.list_members(lab.other_pool_id),
        lambda: client.get_load_balancer(lab.other_nlb_id),
        lambda: client.get_quota("ipv4"),
        lambda: client.get_pool("web"),  # by name: list-instance-pools, which returns user-data
    ):
        with pytest.raises(AuthError):
            refused()
    assert lab.local.zone.pool_snapshot(lab.other_pool_id).size == 1


def test_exo_sds_role_lists_its_pools_members_and_nothing_else(lab: Lab) -> None:
    client = role_client(lab.local, "exo-sd", lab.pool_id, lab.nlb_id)
    assert len(client.list_members(lab.pool_id)) == 2
    for refused in (
        # The pool itself: its answer carries the user-data (the members' admin token).
        lambda: client.get_pool(lab.pool_id),
        lambda: client.list_members(lab.other_pool_id),
        lambda: client.scale_pool(lab.pool_id, 3),
        lambda: client.get_quota("instance"),
        lambda: client.get_load_balancer(lab.nlb_id),
    ):
        with pytest.raises(AuthError):
            refused()
    assert lab.local.zone.pool_snapshot(lab.pool_id).size == 2


def test_the_operation_only_fallback_works_where_path_parameters_are_not_bound(lab: Lab) -> None:
    """iam_scope_by_id = false: what both services call passes on a zone that does not bind
    parameters.id / manager_id / entity; the scoped roles fail there (that is the reason)."""
    lab.local.api.iam_binds_url_parameters = False
    scoped = role_client(lab.local, "exo-scaler", lab.pool_id, lab.nlb_id)
    with pytest.raises(AuthError):
        scoped.get_pool(lab.pool_id)
    scaler = role_client(lab.local, "exo-scaler", lab.pool_id, lab.nlb_id, scope_by_id=False)
    sd = role_client(lab.local, "exo-sd", lab.pool_id, lab.nlb_id, scope_by_id=False)
    assert scaler.get_pool(lab.pool_id).size == 2
    assert scaler.get_quota("instance").unlimited
    assert scaler.pool_health(lab.nlb_id, lab.pool_id) is not None
    assert len(sd.list_members(lab.pool_id)) == 2
    # Weaker, as documented: the operation-only role reaches another pool too ...
    assert scaler.get_pool(lab.other_pool_id).size == 1
    # ... but still nothing its service does not call.
    with pytest.raises(AuthError):
        sd.get_pool(lab.pool_id)
    with pytest.raises(AuthError):
        scaler.get_pool("web")


def deployment_for(lab: Lab, scope_by_id: bool) -> Deployment:
    """The outputs `terraform output -json` (or `exo-lab up`) gives, for this zone."""
    values: dict[str, object] = {
        "instance_pool_id": lab.pool_id,
        "nlb_id": lab.nlb_id,
        "api_endpoint": lab.local.endpoint,
        "iam_scope_by_id": scope_by_id,
    }
    for service in POLICY_FILES:
        policy = render_role_policy(POLICIES / POLICY_FILES[service], pool_id=lab.pool_id,
                                    nlb_id=lab.nlb_id, scope_by_id=scope_by_id)  # fmt: skip
        key, secret = lab.local.add_key(policy)
        prefix = service.replace("-", "_")
        values[f"{prefix}_api_key"], values[f"{prefix}_api_secret"] = key, secret
    return Deployment(values)


def operator(lab: Lab) -> SignedApi:
    return SignedApi(lab.local.endpoint, lab.local.key, lab.local.secret)


def test_check_keys_proves_both_keys_and_changes_nothing(lab: Lab) -> None:
    members_before = {m.id for m in lab.local.zone.members(lab.pool_id)}
    report = check_keys(deployment_for(lab, True), operator(lab))
    lines = [r.line() for r in report.results]
    print("\n".join(lines))
    assert report.ok, lines
    assert report.advice() == []
    by_service = {s: [r.probe for r in report.results if r.probe.service == s]
                  for s in ("exo-sd", "exo-scaler")}  # fmt: skip
    # Every operation each service calls (infra/tests/test_security derives the same list from
    # the code), and one it must be refused.
    assert {p.operation for p in by_service["exo-sd"] if p.expect == "allowed"} == {
        "list-instances"
    }
    assert {p.operation for p in by_service["exo-scaler"] if p.expect == "allowed"} == {
        "get-instance-pool", "list-instances", "scale-instance-pool",
        "evict-instance-pool-members", "get-operation", "get-load-balancer", "get-quota",
    }  # fmt: skip
    assert [p.operation for p in by_service["exo-sd"] if p.expect == "refused"] == [
        "get-instance-pool"
    ]
    assert [p.operation for p in by_service["exo-scaler"] if p.expect == "refused"] == [
        "list-instance-pools"
    ]
    # The scale asked for the size the pool had; the evict named nobody.
    assert lab.local.zone.pool_snapshot(lab.pool_id).size == 2
    assert {m.id for m in lab.local.zone.members(lab.pool_id)} == members_before


def test_verify_reads_only_and_refuses_more(lab: Lab) -> None:
    """verify's variant: no scale, no evict, and every read a role must not have refused."""
    sizes = {p.id: p.size for p in lab.local.zone.pool_snapshots()}
    operations_before = len(lab.local.zone.operation_snapshots())
    report = check_keys(deployment_for(lab, True), operator(lab), mutating=False, thorough=True)
    assert report.ok, [r.line() for r in report.results]
    refused = {(r.probe.service, r.probe.operation) for r in report.results
               if r.probe.expect == "refused"}  # fmt: skip
    assert refused == {
        ("exo-sd", "get-instance-pool"), ("exo-sd", "get-load-balancer"),
        ("exo-sd", "get-quota"), ("exo-sd", "list-instance-pools"),
        ("exo-scaler", "list-instance-pools"), ("exo-scaler", "get-instance"),
        ("exo-scaler", "list-load-balancers"),
    }  # fmt: skip
    assert not {"scale-instance-pool", "evict-instance-pool-members"} & {
        r.probe.operation for r in report.results
    }
    assert {p.id: p.size for p in lab.local.zone.pool_snapshots()} == sizes
    assert len(lab.local.zone.operation_snapshots()) == operations_before


def test_check_keys_names_the_fallback_when_path_parameters_are_not_bound(lab: Lab) -> None:
    lab.local.api.iam_binds_url_parameters = False
    report = check_keys(deployment_for(lab, True), operator(lab))
    lines = [r.line() for r in report.results]
    print("\n".join(lines + report.advice()))
    assert not report.ok
    failed = {(r.probe.service, r.probe.operation) for r in report.results if not r.ok}
    # Every scoped call is refused, and proven to be the scope: the operator's key may.
    assert failed == {
        ("exo-sd", "list-instances"),
        ("exo-scaler", "get-instance-pool"),
        ("exo-scaler", "list-instances"),
        ("exo-scaler", "get-load-balancer"),
        ("exo-scaler", "get-quota"),
        ("exo-scaler", "scale-instance-pool"),
        ("exo-scaler", "evict-instance-pool-members"),
    }
    assert all(r.scope_refused for r in report.results if not r.ok)
    (advice,) = report.advice()
    assert "iam_scope_by_id=false" in advice and "WEAKER" in advice
    # Unscoped calls still pass, and what must be refused still is.
    passed = {(r.probe.service, r.probe.operation) for r in report.results if r.ok}
    assert ("exo-scaler", "get-operation") in passed
    assert ("exo-scaler", "list-instance-pools") in passed

    # Applying the fallback proves both keys on the same zone.
    fallback = check_keys(deployment_for(lab, False), operator(lab))
    assert fallback.ok, [r.line() for r in fallback.results]
    assert lab.local.zone.pool_snapshot(lab.pool_id).size == 2


def test_check_keys_without_an_operator_key_still_names_the_fallback(lab: Lab) -> None:
    lab.local.api.iam_binds_url_parameters = False
    report = check_keys(deployment_for(lab, True), None)
    assert not report.ok
    assert not any(r.scope_refused for r in report.results)
    (advice,) = report.advice()
    assert "iam_scope_by_id=false" in advice and "EXOSCALE_API_KEY" in advice


def test_check_keys_retries_a_refusal_until_it_settles(lab: Lab) -> None:
    """A key refused at first (as right after its creation) is asked again, within bounds."""
    deployment = deployment_for(lab, True)
    sd_key = str(deployment.get("exo_sd_api_key"))
    policy = lab.local.api.roles[sd_key]
    lab.local.set_policy(sd_key, {"default_service_strategy": "deny", "services": {}})
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        lab.local.set_policy(sd_key, policy)  # the role "arrives" during the pause

    report = check_keys(deployment, operator(lab), settle=10, pause=1, sleep=sleep)
    assert report.ok, [r.line() for r in report.results]
    assert pauses == [1]


def test_check_keys_cli_on_outputs(lab: Lab, tmp_path: Path) -> None:
    """`make deploy`'s post-apply step: `terraform output -json | exo-lab check-keys`."""
    lab.local.api.iam_binds_url_parameters = False
    deployment = deployment_for(lab, True)
    sensitive = {n for n in deployment.values if n.endswith(("_api_key", "_api_secret"))}
    outputs = {n: Output(v, n in sensitive) for n, v in deployment.values.items()}
    env = {"PATH": "/usr/bin:/bin", "EXOSCALE_API_KEY": lab.local.key,
           "EXOSCALE_API_SECRET": lab.local.secret}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "exo_lab", "check-keys", "--outputs", "-", "--settle", "0"],
        input=to_terraform_json(outputs), capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    print(done.stdout, done.stderr)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert sum(line.startswith(("PASS", "FAIL")) for line in lines) == 10  # one per call
    assert any("iam_scope_by_id=false" in line for line in lines)
    assert "keys NOT proven" in lines[-1]
    for value in (lab.local.secret, *(str(deployment.get(n)) for n in sensitive)):
        assert value not in done.stdout + done.stderr
    missing = tmp_path / "outputs.json"
    missing.write_text(json.dumps({"nlb_id": {"value": lab.nlb_id}}))
    bad = subprocess.run([sys.executable, "-m", "exo_lab", "check-keys", "--outputs",
                          str(missing)], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2
    assert "missing outputs: instance_pool_id" in bad.stderr and "Traceback" not in bad.stderr


def test_the_policy_file_is_refused_when_it_needs_more_than_the_lab_renders(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "role.json.tftpl"
    bad.write_text('{"default_service_strategy": "${strategy}", "services": {}}')
    with pytest.raises(RolePolicyError, match=r"only \$\{pool_id\}, \$\{nlb_id\}"):
        render_role_policy(bad, pool_id="p", nlb_id="n")
    bad.write_text('{"a": "%{ if other }x%{ endif }"}')
    with pytest.raises(RolePolicyError, match="if scope_by_id"):
        render_role_policy(bad, pool_id="p", nlb_id="n")
    with pytest.raises(RolePolicyError, match="no IAM role policy"):
        render_role_policy(tmp_path / "missing.json", pool_id="p", nlb_id="n")
