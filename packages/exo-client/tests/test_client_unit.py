"""exo-client behaviour that needs no recorded conversation: the answer is given to `_call`."""

from __future__ import annotations

from typing import Any

import pytest

from exo_client import (
    AuthError,
    ClientSettings,
    ConflictError,
    ExoClient,
    InstancePool,
    NotFoundError,
    QuotaExceededError,
    sdk_poll_interval,
)
from exo_client.client import _typed_error

POOL = "11111111-1111-4111-8111-111111111111"
OTHER = "22222222-2222-4222-8222-222222222222"


def client_answering(answers: list[dict[str, Any]], sleeps: list[float]) -> ExoClient:
    clock = [0.0]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    client = ExoClient(
        ClientSettings(api_key="EXOunit", api_secret="s", endpoint="http://127.0.0.1:9/v2"),
        sleep=sleep,
        clock=lambda: clock[0],
    )
    replies = iter(answers)
    client._call = lambda operation, **_: next(replies)  # type: ignore[method-assign]
    return client


def instance(instance_id: str, manager: dict[str, str] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": instance_id, "name": instance_id[:4], "state": "running"}
    if manager is not None:
        body["manager"] = manager
    return body


def test_list_members_keeps_only_what_the_pool_manages() -> None:
    listed = {
        "instances": [
            instance("a" * 8, {"id": POOL, "type": "instance-pool"}),
            instance("b" * 8, {"id": OTHER, "type": "instance-pool"}),
            instance("c" * 8, {"id": POOL, "type": "sks-nodepool"}),
            instance("d" * 8, None),
        ]
    }
    members = client_answering([listed], []).list_members(POOL)
    assert [m.id for m in members] == ["a" * 8]


def test_sdk_poll_schedule() -> None:
    # python-exoscale exoscale/api/v2.py _poll_interval: 3 s for 30 s, 60 s from 15 min.
    assert sdk_poll_interval(0) == 3.0
    assert sdk_poll_interval(30) == pytest.approx(3.0)
    assert 3.0 < sdk_poll_interval(300) < 60.0
    assert sdk_poll_interval(900) == pytest.approx(60.0)
    assert sdk_poll_interval(5000) == 60.0


def test_waits_back_off_like_the_sdk_unless_told_an_interval() -> None:
    pending = {"id": "op", "state": "pending"}
    done = {"id": "op", "state": "success"}
    sleeps: list[float] = []
    client = client_answering([pending] * 40 + [done], sleeps)
    assert client.wait_operation("op", timeout=3600).succeeded
    assert sleeps[0] == 3.0
    assert sleeps == sorted(sleeps) and sleeps[-1] > 3.0
    fixed: list[float] = []
    assert client_answering([pending, done], fixed).wait_operation("op", poll=0.5).succeeded
    assert fixed == [0.5]


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (409, "instance pool x is busy (scaling-up)", ConflictError),
        (409, "Quota exceeded for resource instance", QuotaExceededError),
        (403, "instance quota reached", QuotaExceededError),
        (403, "invalid request signature", AuthError),
        (409, "over-quota: instance limit reached", QuotaExceededError),
        # A role without get-quota: the operation's name is not a quota refusal.
        (403, "Forbidden: operation get-quota is not allowed by the API key's role", AuthError),
    ],
)
def test_quota_refusals_are_told_from_busy_ones(
    status: int, message: str, kind: type[Exception]
) -> None:
    error = _typed_error(status, message, "scale-instance-pool")
    assert type(error) is kind
    assert isinstance(error, ConflictError) == (kind is not AuthError)


def test_quota_and_pool_error_reason_are_typed() -> None:
    quota = client_answering([{"resource": "instance", "usage": 7, "limit": 10}], []).get_quota()
    assert (quota.available, quota.unlimited) == (3, False)
    unlimited = client_answering([{"resource": "instance", "usage": 7, "limit": -1}], [])
    assert unlimited.get_quota().available is None
    pool = InstancePool.from_api(
        {
            "id": POOL,
            "size": 3,
            "state": "degraded",
            "error_reason": {"type": "quota-exceeded", "cause": "quota", "job-id": "j"},
        }
    )
    assert pool.is_unhealthy and pool.error_reason == {
        "type": "quota-exceeded",
        "cause": "quota",
        "job-id": "j",
    }


def service(pool_id: str, statuses: dict[str, str]) -> dict[str, Any]:
    """openapi.json `load-balancer-service` with its `healthcheck-status` list."""
    return {
        "id": "svc",
        "instance-pool": {"id": pool_id},
        "healthcheck-status": [{"public-ip": ip, "status": s} for ip, s in statuses.items()],
    }


def test_pool_health_reads_the_services_that_target_the_pool() -> None:
    body = {
        "services": [
            service(POOL, {"192.0.2.1": "success", "192.0.2.2": "failure", "192.0.2.3": "success"}),
            # A second service on the same pool: a member is healthy only if both checks pass.
            service(POOL, {"192.0.2.1": "success", "192.0.2.3": "failure"}),
            service(OTHER, {"192.0.2.9": "success"}),
        ]
    }
    health = client_answering([body], []).pool_health("lb", POOL)
    assert health == {"192.0.2.1": True, "192.0.2.2": False, "192.0.2.3": False}


def test_pool_health_without_a_service_for_the_pool_is_not_found() -> None:
    body = {"services": [service(OTHER, {"192.0.2.9": "success"})]}
    with pytest.raises(NotFoundError, match="no service for instance pool"):
        client_answering([body], []).pool_health("lb", POOL)
