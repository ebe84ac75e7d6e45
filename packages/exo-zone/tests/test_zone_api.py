"""The zone's answers follow Exoscale's contract: official SDK calls, spec-validated bodies."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from exoscale.api.exceptions import ExoscaleAPIClientException
from exoscale.api.v2 import Client as SdkClient

from exo_testkit import RunningZone, eventually, running_zone
from exo_testkit.openapi import validate_response
from exo_zone import FaultPlan


@pytest.fixture
def rz() -> Iterator[RunningZone]:
    with running_zone({"web": 2}) as zone:
        pool = zone.pools["web"]
        zone.zone.create_load_balancer("web-nlb", pool.id, port=18000)
        yield zone


@pytest.fixture
def sdk(rz: RunningZone) -> SdkClient:
    return SdkClient(rz.settings.api_key, rz.settings.api_secret, url=rz.endpoint)


def test_every_operation_answers_per_the_official_spec(rz: RunningZone, sdk: SdkClient) -> None:
    pool = rz.pools["web"]
    bodies: dict[str, Any] = {
        "list-instance-pools": sdk.list_instance_pools(),
        "get-instance-pool": sdk.get_instance_pool(id=pool.id),
        "list-instances": sdk.list_instances(manager_id=pool.id, manager_type="instance-pool"),
        "list-load-balancers": sdk.list_load_balancers(),
        "list-instance-types": sdk.list_instance_types(),
    }
    member = bodies["list-instances"]["instances"][0]["id"]
    bodies["get-instance"] = sdk.get_instance(id=member)
    lb = bodies["list-load-balancers"]["load-balancers"][0]["id"]
    bodies["get-load-balancer"] = sdk.get_load_balancer(id=lb)
    itype = bodies["list-instance-types"]["instance-types"][0]["id"]
    bodies["get-instance-type"] = sdk.get_instance_type(id=itype)
    bodies["scale-instance-pool"] = sdk.scale_instance_pool(id=pool.id, size=3)
    bodies["get-operation"] = sdk.get_operation(id=bodies["scale-instance-pool"]["id"])
    eventually(lambda: sdk.get_instance_pool(id=pool.id)["state"] == "running")
    bodies["evict-instance-pool-members"] = sdk.evict_instance_pool_members(
        id=pool.id, instances=[member]
    )
    eventually(lambda: sdk.get_instance_pool(id=pool.id)["state"] == "running")
    other = sdk.get_instance_pool(id=pool.id)["instances"][0]["id"]
    bodies["delete-instance"] = sdk.delete_instance(id=other)
    for operation_id, body in bodies.items():
        validate_response(operation_id, body)


def test_validator_catches_a_broken_body() -> None:
    from jsonschema import ValidationError

    with pytest.raises(ValidationError):
        validate_response("get-instance-pool", {"id": "x", "size": "two"})
    with pytest.raises(ValidationError):
        validate_response("get-operation", {"id": "x", "state": "done"})
    with pytest.raises(ValidationError):
        validate_response("get-instance", {"id": "x", "not-in-spec": 1})


def test_scale_up_is_async_and_members_boot(rz: RunningZone, sdk: SdkClient) -> None:
    pool = rz.pools["web"]
    eventually(lambda: all(i.state == "running" for i in rz.zone.members(pool.id)))
    operation = sdk.scale_instance_pool(id=pool.id, size=4)
    assert operation["state"] == "pending"
    assert operation["reference"]["id"] == pool.id
    assert sdk.get_instance_pool(id=pool.id)["state"] == "scaling-up"
    states = {
        i["state"]
        for i in sdk.list_instances(manager_id=pool.id, manager_type="instance-pool")["instances"]
    }
    assert "starting" in states
    eventually(lambda: sdk.get_operation(id=operation["id"])["state"] == "success")

    def all_running() -> dict[str, Any] | None:
        body = sdk.list_instances(manager_id=pool.id, manager_type="instance-pool")
        return body if all(i["state"] == "running" for i in body["instances"]) else None

    listed = eventually(all_running)
    assert len(listed["instances"]) == 4
    addresses = {i["public-ip"] for i in listed["instances"]}
    assert len(addresses) == 4


def test_scale_down_and_evict(rz: RunningZone, sdk: SdkClient) -> None:
    pool = rz.pools["web"]
    sdk.scale_instance_pool(id=pool.id, size=3)
    eventually(lambda: sdk.get_instance_pool(id=pool.id)["state"] == "running")
    members = sdk.get_instance_pool(id=pool.id)["instances"]
    victim = members[1]["id"]
    operation = sdk.evict_instance_pool_members(id=pool.id, instances=[victim])
    assert sdk.get_instance_pool(id=pool.id)["state"] == "scaling-down"
    eventually(lambda: sdk.get_operation(id=operation["id"])["state"] == "success")
    after = sdk.get_instance_pool(id=pool.id)
    assert after["size"] == 2
    assert victim not in {i["id"] for i in after["instances"]}
    with pytest.raises(ExoscaleAPIClientException) as info:
        sdk.get_instance(id=victim)
    assert info.value.response.status_code == 404
    sdk.scale_instance_pool(id=pool.id, size=1)
    eventually(lambda: sdk.get_instance_pool(id=pool.id)["state"] == "running")
    assert sdk.get_instance_pool(id=pool.id)["size"] == 1


def test_busy_pool_refuses_a_second_scale(rz: RunningZone, sdk: SdkClient) -> None:
    pool = rz.pools["web"]
    sdk.scale_instance_pool(id=pool.id, size=3)
    with pytest.raises(ExoscaleAPIClientException) as info:
        sdk.scale_instance_pool(id=pool.id, size=4)
    assert info.value.response.status_code == 409
    assert "busy" in info.value.response.json()["message"]
    eventually(lambda: sdk.get_instance_pool(id=pool.id)["state"] == "running")
    assert sdk.get_instance_pool(id=pool.id)["size"] == 3


@pytest.mark.parametrize(
    ("call", "status"),
    [
        (lambda sdk, pool: sdk.scale_instance_pool(id=pool, size=-1), 400),
        (lambda sdk, pool: sdk.scale_instance_pool(id=pool, size=100000), 400),
        (lambda sdk, pool: sdk.evict_instance_pool_members(id=pool, instances=[]), 400),
        (
            lambda sdk, pool: sdk.evict_instance_pool_members(
                id=pool, instances=["00000000-0000-4000-8000-000000000000"]
            ),
            400,
        ),
        (lambda sdk, pool: sdk.get_instance_pool(id="00000000-0000-4000-8000-000000000000"), 404),
        (lambda sdk, pool: sdk.get_operation(id="00000000-0000-4000-8000-000000000000"), 404),
    ],
)
def test_bad_requests_are_refused_and_change_nothing(
    rz: RunningZone, sdk: SdkClient, call: Callable[[SdkClient, str], Any], status: int
) -> None:
    pool = rz.pools["web"]
    before = sdk.get_instance_pool(id=pool.id)
    with pytest.raises(ExoscaleAPIClientException) as info:
        call(sdk, pool.id)
    assert info.value.response.status_code == status
    assert info.value.response.json()["message"]
    after = sdk.get_instance_pool(id=pool.id)
    assert (after["size"], after["instances"]) == (before["size"], before["instances"])


def test_deleted_member_is_replaced(rz: RunningZone, sdk: SdkClient) -> None:
    pool = rz.pools["web"]
    victim = sdk.get_instance_pool(id=pool.id)["instances"][0]["id"]
    sdk.delete_instance(id=victim)
    eventually(lambda: victim not in rz.zone.instances)
    after = sdk.get_instance_pool(id=pool.id)
    assert after["size"] == 2
    assert len(after["instances"]) == 2
    assert victim not in {i["id"] for i in after["instances"]}


def test_injected_faults_answer_like_an_overloaded_api(rz: RunningZone, sdk: SdkClient) -> None:
    rz.api.faults = FaultPlan(rate=1.0, statuses=(429,), operations=frozenset({"list-instances"}))
    with pytest.raises(ExoscaleAPIClientException) as info:
        sdk.list_instances()
    assert info.value.response.status_code == 429
    assert info.value.response.headers["Retry-After"] == "1"
    assert sdk.list_instance_pools()["instance-pools"]  # other operations unaffected
    rz.api.faults = FaultPlan()
    assert sdk.list_instances()["instances"]


def test_load_balancer_reports_member_health(rz: RunningZone, sdk: SdkClient) -> None:
    pool = rz.pools["web"]
    eventually(lambda: all(i.state == "running" for i in rz.zone.members(pool.id)))
    lb = sdk.list_load_balancers()["load-balancers"][0]
    service = lb["services"][0]
    assert service["instance-pool"]["id"] == pool.id
    assert (service["port"], service["target-port"]) == (18000, 8080)
    assert service["healthcheck"]["uri"] == "/health"
    statuses = {s["public-ip"]: s["status"] for s in service["healthcheck-status"]}
    assert set(statuses) == {i.address for i in rz.zone.members(pool.id)}
    assert set(statuses.values()) == {"success"}
