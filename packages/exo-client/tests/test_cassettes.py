"""exo-client against recorded API conversations, with the network blocked."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import requests
from cassette_config import CASSETTES, make_vcr
from scenarios import SCENARIOS

from exo_client import (
    AuthError,
    ClientSettings,
    ConflictError,
    ExoClient,
    InstancePool,
    NotFoundError,
    Operation,
    PoolMember,
    RetryPolicy,
    UnavailableError,
)
from exo_testkit import credentials_in

# Any endpoint: cassettes match on method, path, query and body, never on host or port.
ENDPOINT = "http://127.0.0.1:9/v2"


@pytest.fixture(autouse=True)
def blocked_connections(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The network is blocked: every connection attempt is refused and remembered."""
    attempts: list[object] = []

    def refuse(sock: socket.socket, address: object) -> None:
        attempts.append(address)
        raise ConnectionRefusedError("network blocked in exo-client tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


@pytest.fixture(autouse=True)
def replay_only(
    request: pytest.FixtureRequest, blocked_connections: list[object]
) -> Iterator[None]:
    yield
    if "refused" not in request.node.name and "timeout" not in request.node.name:
        assert blocked_connections == [], "a replayed test tried to reach the network"


def run(name: str, ids: dict[str, dict[str, str]], secret: str = "replayed") -> object:
    sleeps: list[float] = []
    client = ExoClient(
        ClientSettings(api_key="EXOreplay", api_secret=secret, endpoint=ENDPOINT),
        retry=RetryPolicy(base_delay=0.5, max_delay=4),
        sleep=sleeps.append,
    )
    with make_vcr("none").use_cassette(f"{name}.yaml") as cassette:
        result = SCENARIOS[name](client, ids[name])
        assert cassette.all_played, f"{name}: not every recorded answer was used"
    run.sleeps = sleeps  # type: ignore[attr-defined]
    run.calls = client.calls  # type: ignore[attr-defined]
    return result


def test_get_pool_by_id_is_typed(recorded_ids: dict[str, dict[str, str]]) -> None:
    pool = run("get_pool_by_id", recorded_ids)
    assert isinstance(pool, InstancePool)
    assert pool.id == recorded_ids["get_pool_by_id"]["pool_id"]
    assert (pool.name, pool.size, pool.state, len(pool.instance_ids)) == ("web", 2, "running", 2)


def test_get_pool_by_name_lists_pools(recorded_ids: dict[str, dict[str, str]]) -> None:
    pool = run("get_pool_by_name", recorded_ids)
    assert isinstance(pool, InstancePool)
    assert pool.id == recorded_ids["get_pool_by_name"]["pool_id"]
    assert run.calls == {"list-instance-pools": 1}  # type: ignore[attr-defined]


def test_members_come_from_one_list_call(recorded_ids: dict[str, dict[str, str]]) -> None:
    members = run("list_members", recorded_ids)
    assert isinstance(members, list)
    assert len(members) == 2
    assert all(isinstance(m, PoolMember) and m.is_running for m in members)
    assert all(m.public_ip and m.created_at is not None for m in members)
    assert run.calls == {"list-instances": 1}  # type: ignore[attr-defined]


def test_scale_returns_operation_and_waits_for_running_pool(
    recorded_ids: dict[str, dict[str, str]],
) -> None:
    operation, done, pool = run("scale_up_and_wait", recorded_ids)  # type: ignore[misc]
    assert isinstance(operation, Operation) and operation.state == "pending"
    assert done.succeeded and done.id == operation.id
    assert pool.size == 3 and pool.is_running
    # Polling used the caller's interval, not the SDK's 3 s.
    assert run.sleeps and set(run.sleeps) == {0.05}  # type: ignore[attr-defined]


def test_evict_removes_the_member(recorded_ids: dict[str, dict[str, str]]) -> None:
    done, pool = run("evict_and_wait", recorded_ids)  # type: ignore[misc]
    assert done.succeeded
    assert pool.size == 1
    assert recorded_ids["evict_and_wait"]["evict_id"] not in pool.instance_ids


def test_scale_while_busy_is_a_conflict(recorded_ids: dict[str, dict[str, str]]) -> None:
    error = run("scale_while_busy", recorded_ids)
    assert isinstance(error, ConflictError)
    assert error.status == 409 and "busy" in error.message


def test_unknown_pool_id_is_not_found(recorded_ids: dict[str, dict[str, str]]) -> None:
    error = run("unknown_pool", recorded_ids)
    assert isinstance(error, NotFoundError)
    assert "00000000-0000-4000-8000-000000000000" in str(error)


def test_unknown_pool_name_is_not_found(recorded_ids: dict[str, dict[str, str]]) -> None:
    error = run("unknown_pool_name", recorded_ids)
    assert isinstance(error, NotFoundError)
    assert "no-such-pool" in str(error)


def test_wrong_secret_is_an_auth_error_not_retried(
    recorded_ids: dict[str, dict[str, str]],
) -> None:
    error = run("wrong_secret", recorded_ids, secret="not-the-secret")
    assert isinstance(error, AuthError)
    assert error.status == 403 and "signature" in error.message
    assert run.calls == {"get-instance-pool": 1}  # type: ignore[attr-defined]


def test_reads_are_retried_with_backoff(recorded_ids: dict[str, dict[str, str]]) -> None:
    pool = run("flaky_reads", recorded_ids)
    assert isinstance(pool, InstancePool)
    assert run.calls == {"get-instance-pool": 3}  # type: ignore[attr-defined]
    assert len(run.sleeps) == 2 and all(0 <= s <= 4 for s in run.sleeps)  # type: ignore[attr-defined]


def test_rate_limited_mutation_is_repeated(recorded_ids: dict[str, dict[str, str]]) -> None:
    operation = run("scale_rate_limited", recorded_ids)
    assert isinstance(operation, Operation)
    assert run.calls == {"scale-instance-pool": 2}  # type: ignore[attr-defined]
    assert run.sleeps == [1.0]  # type: ignore[attr-defined]  # the API's Retry-After


def test_server_error_on_mutation_is_not_repeated(
    recorded_ids: dict[str, dict[str, str]],
) -> None:
    error = run("scale_server_error", recorded_ids)
    assert isinstance(error, UnavailableError) and error.status == 503
    assert run.calls == {"scale-instance-pool": 1}  # type: ignore[attr-defined]


def test_every_scenario_has_a_cassette() -> None:
    assert {p.stem for p in CASSETTES.glob("*.yaml")} == set(SCENARIOS)


def test_no_credential_in_any_cassette() -> None:
    assert credentials_in(CASSETTES) == []


def test_connection_refused_on_reads_is_retried_then_unavailable(
    blocked_connections: list[object],
) -> None:
    sleeps: list[float] = []
    client = ExoClient(
        ClientSettings(api_key="EXOk", api_secret="s", endpoint=ENDPOINT),
        retry=RetryPolicy(attempts=3, base_delay=0.1, max_delay=1, jitter=False),
        sleep=sleeps.append,
    )
    with pytest.raises(UnavailableError, match="cannot reach"):
        client.get_pool("00000000-0000-4000-8000-000000000000")
    assert client.calls == {"get-instance-pool": 3}
    assert len(blocked_connections) == 3
    assert sleeps == [0.1, 0.2]


def test_refused_connection_makes_a_mutation_safe_to_repeat(
    blocked_connections: list[object],
) -> None:
    client = ExoClient(
        ClientSettings(api_key="EXOk", api_secret="s", endpoint=ENDPOINT),
        retry=RetryPolicy(attempts=2, base_delay=0.1, jitter=False),
        sleep=lambda _: None,
    )
    with pytest.raises(UnavailableError):
        client.scale_pool("00000000-0000-4000-8000-000000000000", 2)
    assert client.calls == {"scale-instance-pool": 2}


def test_every_request_has_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []

    def capture(self: requests.adapters.HTTPAdapter, request: object, **kwargs: object) -> None:
        seen.append(kwargs.get("timeout"))
        raise requests.ConnectTimeout("no")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", capture)
    client = ExoClient(
        ClientSettings(api_key="EXOk", api_secret="s", endpoint=ENDPOINT, timeout=2.5),
        retry=RetryPolicy(attempts=1),
    )
    with pytest.raises(UnavailableError):
        client.list_pools()
    assert seen == [2.5]
