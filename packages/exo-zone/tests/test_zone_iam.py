"""API keys carry a role; the zone evaluates its policy as Exoscale documents it (official SDK)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from exoscale.api.exceptions import ExoscaleAPIAuthException
from exoscale.api.v2 import Client as SdkClient

from exo_testkit import free_member_network
from exo_zone import LocalZone, Policy, PolicyError, ZoneTimings, load_policy
from exo_zone.iam import AuthzRequest


@pytest.fixture
def lz() -> Iterator[LocalZone]:
    local = LocalZone(timings=ZoneTimings.fast(), member_network=free_member_network())
    local.zone.create_pool("web", 2)
    local.zone.create_pool("db", 1)
    with local:
        yield local


def pool_id(lz: LocalZone, name: str) -> str:
    return next(p.id for p in lz.zone.pools.values() if p.name == name)


def sdk_with(lz: LocalZone, policy: dict[str, Any] | None) -> SdkClient:
    key, secret = lz.add_key(policy)
    return SdkClient(key, secret, url=lz.endpoint)


def denied(call: Callable[[], Any]) -> dict[str, Any]:
    # The SDK maps every 403 to its auth exception (exoscale/api/generator.py).
    with pytest.raises(ExoscaleAPIAuthException) as info:
        call()
    assert info.value.response.status_code == 403
    body: dict[str, Any] = info.value.response.json()
    assert set(body) == {"message"} and body["message"]
    return body


def rules(*pairs: tuple[str, str], default: str = "deny") -> dict[str, Any]:
    return {
        "default-service-strategy": default,
        "services": {
            "compute": {
                "type": "rules",
                "rules": [{"action": a, "expression": e} for a, e in pairs],
            }
        },
    }


def test_read_only_policy_denies_scale(lz: LocalZone) -> None:
    web = pool_id(lz, "web")
    sdk = sdk_with(lz, rules(("allow", "operation in ['list-instances', 'get-instance-pool']")))
    assert len(sdk.list_instances(manager_id=web, manager_type="instance-pool")["instances"]) == 2
    assert sdk.get_instance_pool(id=web)["size"] == 2
    body = denied(lambda: sdk.scale_instance_pool(id=web, size=3))
    assert "scale-instance-pool" in body["message"]
    denied(lambda: sdk.list_instance_pools())
    assert lz.zone.pools[web].size == 2  # nothing happened


def test_rules_are_evaluated_in_order(lz: LocalZone) -> None:
    web = pool_id(lz, "web")
    deny_first = sdk_with(
        lz, rules(("deny", "operation == 'scale-instance-pool'"), ("allow", "true"))
    )
    denied(lambda: deny_first.scale_instance_pool(id=web, size=3))
    assert deny_first.get_instance_pool(id=web)["size"] == 2
    allow_first = sdk_with(
        lz, rules(("allow", "true"), ("deny", "operation == 'scale-instance-pool'"))
    )
    assert allow_first.scale_instance_pool(id=web, size=3)["state"] == "pending"


def test_parameters_scope_a_key_to_one_pool_and_a_size(lz: LocalZone) -> None:
    web, db = pool_id(lz, "web"), pool_id(lz, "db")
    sdk = sdk_with(
        lz,
        rules(
            ("allow", "operation == 'get-instance-pool'"),
            (
                "allow",
                f"operation == 'scale-instance-pool' && parameters.id == '{web}'"
                " && parameters.size <= 3",
            ),
        ),
    )
    denied(lambda: sdk.scale_instance_pool(id=db, size=2))
    denied(lambda: sdk.scale_instance_pool(id=web, size=4))
    assert sdk.scale_instance_pool(id=web, size=3)["state"] == "pending"
    assert sdk.get_instance_pool(id=db)["size"] == 1


def test_resources_bind_the_target_pool(lz: LocalZone) -> None:
    web, db = pool_id(lz, "web"), pool_id(lz, "db")
    sdk = sdk_with(lz, rules(("allow", "resources.instance_pool.name == 'web'")))
    assert sdk.get_instance_pool(id=web)["name"] == "web"
    denied(lambda: sdk.get_instance_pool(id=db))
    # No target resource: the expression cannot be evaluated, concludes nothing, denied.
    denied(lambda: sdk.list_instance_pools())


@pytest.mark.parametrize(
    ("policy", "list_allowed"),
    [
        ({"default-service-strategy": "allow", "services": {}}, True),
        ({"default-service-strategy": "deny", "services": {}}, False),
        ({"default-service-strategy": "deny", "services": {"compute": {"type": "allow"}}}, True),
        ({"default-service-strategy": "allow", "services": {"compute": {"type": "deny"}}}, False),
        # Another service's entry does not change compute: the default applies.
        ({"default-service-strategy": "allow", "services": {"sos": {"type": "deny"}}}, True),
    ],
)
def test_default_strategy_and_service_types(
    lz: LocalZone, policy: dict[str, Any], list_allowed: bool
) -> None:
    sdk = sdk_with(lz, policy)
    if list_allowed:
        assert len(sdk.list_instance_pools()["instance-pools"]) == 2
    else:
        denied(lambda: sdk.list_instance_pools())


def test_no_matching_rule_denies_even_with_default_allow(lz: LocalZone) -> None:
    sdk = sdk_with(lz, rules(("allow", "operation == 'list-instances'"), default="allow"))
    assert sdk.list_instances()["instances"]
    denied(lambda: sdk.get_instance_pool(id=pool_id(lz, "web")))


def test_an_expression_that_cannot_decide_passes_to_the_next_rule(lz: LocalZone) -> None:
    web = pool_id(lz, "web")
    sdk = sdk_with(
        lz,
        rules(
            ("deny", "this is (not CEL"),  # does not compile
            ("deny", "parameters.no_such_field == 1"),  # fails at evaluation
            ("allow", "operation == 'get-instance-pool'"),
        ),
    )
    assert sdk.get_instance_pool(id=web)["id"] == web


def test_parameters_use_snake_case_and_has(lz: LocalZone) -> None:
    """As in terraform-provider-exoscale's iam-priv-instance example (`parameters.has(...)`,
    `parameters.public_ip_assignment` for `public-ip-assignment`)."""
    policy = Policy.from_dict(
        rules(
            (
                "allow",
                "parameters.has('manager_type') && parameters.manager_type == 'instance-pool'",
            )
        )
    )
    web = pool_id(lz, "web")

    def decide(parameters: dict[str, Any]) -> bool:
        return policy.evaluate(AuthzRequest("list-instances", parameters, {})).allowed

    assert decide({"manager-type": "instance-pool", "manager-id": web})
    assert not decide({"manager-id": web})
    sdk = sdk_with(lz, rules(("allow", "parameters.manager_id == '" + web + "'")))
    assert len(sdk.list_instances(manager_id=web, manager_type="instance-pool")["instances"]) == 2
    denied(lambda: sdk.list_instances())


def test_a_zone_that_does_not_bind_url_parameters(lz: LocalZone) -> None:
    """Only body parameters are documented as bound. With the switch off, a rule on the path's
    `{id}` or the query's `manager-id` cannot be evaluated: it concludes nothing and the call
    falls through to deny, while an operation-only rule and a body parameter still decide."""
    web = pool_id(lz, "web")
    scoped = sdk_with(
        lz,
        rules(
            ("allow", f"operation == 'get-instance-pool' && parameters.id == '{web}'"),
            ("allow", f"operation == 'list-instances' && parameters.manager_id == '{web}'"),
            ("allow", "operation == 'scale-instance-pool' && parameters.size == 3"),
            ("allow", "operation == 'get-operation'"),
        ),
    )
    assert scoped.get_instance_pool(id=web)["id"] == web
    lz.api.iam_binds_url_parameters = False
    try:
        denied(lambda: scoped.get_instance_pool(id=web))
        denied(lambda: scoped.list_instances(manager_id=web, manager_type="instance-pool"))
        # The body is still bound: the size rule decides.
        operation = scoped.scale_instance_pool(id=web, size=3)
        assert scoped.get_operation(id=operation["id"])["id"] == operation["id"]
        denied(lambda: scoped.scale_instance_pool(id=web, size=4))
    finally:
        lz.api.iam_binds_url_parameters = True
    # The evaluation on its own says the same.
    policy = Policy.from_dict(rules(("allow", f"parameters.id == '{web}'")))
    request = AuthzRequest("get-instance-pool", {}, {}, url_parameters={"id": web})
    assert policy.evaluate(request).allowed
    assert not policy.evaluate(request, bind_url_parameters=False).allowed


def test_local_zone_takes_the_switch() -> None:
    local = LocalZone(timings=ZoneTimings.fast(), iam_binds_url_parameters=False)
    try:
        assert local.api.iam_binds_url_parameters is False
    finally:
        local.stop()


def test_keys_without_a_role_keep_full_access_and_roles_change_live(lz: LocalZone) -> None:
    own = SdkClient(lz.key, lz.secret, url=lz.endpoint)
    assert own.scale_instance_pool(id=pool_id(lz, "db"), size=2)["state"] == "pending"
    key, secret = lz.add_key()
    sdk = SdkClient(key, secret, url=lz.endpoint)
    assert sdk.list_instance_pools()["instance-pools"]
    lz.set_policy(key, {"default-service-strategy": "deny", "services": {}})
    denied(lambda: sdk.list_instance_pools())
    lz.set_policy(key, None)
    assert sdk.list_instance_pools()["instance-pools"]


def test_terraform_role_policy_read_from_a_file(lz: LocalZone, tmp_path: Path) -> None:
    """The shape Terraform's exoscale_iam_role writes (snake-case keys), as JSON: what exo-lab
    will read from the project's Terraform; the operation list is exo-sd's and exo-scaler's."""
    path = tmp_path / "role.json"
    path.write_text(
        json.dumps(
            {
                "default_service_strategy": "deny",
                "services": {
                    "compute": {
                        "type": "rules",
                        "rules": [
                            {
                                "action": "allow",
                                "expression": "operation in ['get-instance-pool',"
                                " 'list-instance-pools', 'get-instance', 'list-instances',"
                                " 'scale-instance-pool', 'evict-instance-pool-members',"
                                " 'get-operation']",
                            },
                            {"action": "deny", "expression": "true"},
                        ],
                    }
                },
            }
        )
    )
    key, secret = lz.add_key(load_policy(path))
    sdk = SdkClient(key, secret, url=lz.endpoint)
    web = pool_id(lz, "web")
    member = sdk.list_instances(manager_id=web, manager_type="instance-pool")["instances"][0]
    assert sdk.get_instance(id=member["id"])["id"] == member["id"]
    op = sdk.scale_instance_pool(id=web, size=3)
    assert sdk.get_operation(id=op["id"])["id"] == op["id"]
    denied(lambda: sdk.delete_instance(id=member["id"]))
    denied(lambda: sdk.list_load_balancers())
    assert lz.env_for(key)["EXOSCALE_API_KEY"] == key


def test_a_role_key_cannot_drive_the_lab(lz: LocalZone) -> None:
    import requests
    from exoscale_auth import ExoscaleV2Auth

    key, secret = lz.add_key({"default-service-strategy": "allow", "services": {}})
    request = requests.Request("GET", lz.endpoint + "/_lab/state").prepare()
    with requests.Session() as session:
        reply = session.send(ExoscaleV2Auth(key, secret)(request), timeout=5)
    assert reply.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {"services": {}},
        {"default-service-strategy": "maybe", "services": {}},
        {"default-service-strategy": "deny", "services": {"compute": {"type": "some"}}},
        {"default-service-strategy": "deny", "services": {"compute": {"type": "rules"}}},
        {
            "default-service-strategy": "deny",
            "services": {"compute": {"type": "rules", "rules": [{"action": "x"}]}},
        },
    ],
)
def test_malformed_policies_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(PolicyError):
        Policy.from_dict(body)


def test_load_policy_reports_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.json")
