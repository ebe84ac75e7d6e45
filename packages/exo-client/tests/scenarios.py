"""API conversations the client's tests replay, recorded once against an exo-lab zone.

Each scenario is a function of (client, ids) that talks to the API and returns what the test
asserts on; the recorder runs the same functions against a live zone, so cassettes and
tests cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from exo_client import ExoApiError, ExoClient

Scenario = Callable[[ExoClient, dict[str, str]], Any]


def get_pool_by_id(client: ExoClient, ids: dict[str, str]) -> Any:
    return client.get_pool(ids["pool_id"])


def get_pool_by_name(client: ExoClient, ids: dict[str, str]) -> Any:
    return client.get_pool("web")


def list_members(client: ExoClient, ids: dict[str, str]) -> Any:
    return client.list_members(ids["pool_id"])


def scale_up_and_wait(client: ExoClient, ids: dict[str, str]) -> Any:
    operation = client.scale_pool(ids["pool_id"], 3)
    done = client.wait_operation(operation.id, timeout=30, poll=0.05)
    return operation, done, client.wait_pool_running(ids["pool_id"], timeout=30, poll=0.05)


def evict_and_wait(client: ExoClient, ids: dict[str, str]) -> Any:
    operation = client.evict_members(ids["pool_id"], [ids["evict_id"]])
    done = client.wait_operation(operation.id, timeout=30, poll=0.05)
    return done, client.get_pool(ids["pool_id"])


def scale_while_busy(client: ExoClient, ids: dict[str, str]) -> Any:
    client.scale_pool(ids["pool_id"], 3)
    try:
        client.scale_pool(ids["pool_id"], 4)
    except ExoApiError as exc:
        return exc
    return None


def unknown_pool(client: ExoClient, ids: dict[str, str]) -> Any:
    try:
        client.get_pool("00000000-0000-4000-8000-000000000000")
    except ExoApiError as exc:
        return exc
    return None


def unknown_pool_name(client: ExoClient, ids: dict[str, str]) -> Any:
    try:
        client.get_pool("no-such-pool")
    except ExoApiError as exc:
        return exc
    return None


def wrong_secret(client: ExoClient, ids: dict[str, str]) -> Any:
    try:
        client.get_pool(ids["pool_id"])
    except ExoApiError as exc:
        return exc
    return None


def flaky_reads(client: ExoClient, ids: dict[str, str]) -> Any:
    """Two 503s then success: recorded with a fault plan on get-instance-pool."""
    return client.get_pool(ids["pool_id"])


def scale_rate_limited(client: ExoClient, ids: dict[str, str]) -> Any:
    """429 then success: a refused request is safe to repeat, even a mutation."""
    return client.scale_pool(ids["pool_id"], 3)


def scale_server_error(client: ExoClient, ids: dict[str, str]) -> Any:
    """503 on a mutation: not repeated, the caller decides."""
    try:
        client.scale_pool(ids["pool_id"], 3)
    except ExoApiError as exc:
        return exc
    return None


SCENARIOS: dict[str, Scenario] = {
    f.__name__: f
    for f in (
        get_pool_by_id,
        get_pool_by_name,
        list_members,
        scale_up_and_wait,
        evict_and_wait,
        scale_while_busy,
        unknown_pool,
        unknown_pool_name,
        wrong_secret,
        flaky_reads,
        scale_rate_limited,
        scale_server_error,
    )
}
