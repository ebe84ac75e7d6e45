"""Unit-level tests of the main and admin apps through TestClient (lifespan runs the pool)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from slow_web.admin import create_admin_app
from slow_web.app import Runtime, create_app
from slow_web.settings import Settings

TOKEN = "unit-test-token"


def _settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "instance_name": "unit-1",
        "workers": 1,
        "work_ms": 5,
        "max_work_ms": 200,
        "load_seconds": 0.05,
        "max_load_seconds": 0.5,
        "drain_timeout": 5.0,
        "admin_token": TOKEN,
        "worker_nice": 0,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


def _combined(main: ASGIApp, admin: ASGIApp) -> ASGIApp:
    """One ASGI app (one event loop in TestClient) serving both, like the real process does."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/admin/"):
            await admin(scope, receive, send)
        else:
            await main(scope, receive, send)

    return app


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def runtime(registry: CollectorRegistry) -> Runtime:
    return Runtime.build(_settings(), registry)


@pytest.fixture
def client(runtime: Runtime, registry: CollectorRegistry) -> Iterator[TestClient]:
    app = _combined(create_app(runtime.settings, registry, runtime), create_admin_app(runtime))
    with TestClient(app) as test_client:
        yield test_client


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_root_reports_instance_and_measured_work(client: TestClient) -> None:
    response = client.get("/", params={"ms": "30"})
    assert response.status_code == 200
    body = response.json()
    assert body["instance"] == "unit-1"
    assert body["requested_ms"] == 30
    assert 30 <= body["cpu_ms"] < 80
    assert body["worker_wall_ms"] >= body["cpu_ms"] * 0.9
    assert body["queue_wait_ms"] >= 0
    assert body["total_ms"] >= body["worker_wall_ms"]
    assert isinstance(body["worker_pid"], int)


def test_root_without_ms_uses_the_default(client: TestClient) -> None:
    body = client.get("/").json()
    assert body["requested_ms"] == 5
    assert body["cpu_ms"] >= 5


@pytest.mark.parametrize("ms", ["0", "200"])
def test_ms_bounds_are_inclusive(client: TestClient, ms: str) -> None:
    assert client.get("/", params={"ms": ms}).status_code == 200


@pytest.mark.parametrize("ms", ["-1", "201", "abc", "1.5", "", "1e2", "5_0", " 5", "nan"])
def test_bad_ms_is_400_with_a_clear_message(client: TestClient, ms: str) -> None:
    response = client.get("/", params={"ms": ms})
    assert response.status_code == 400
    assert "ms must be an integer between 0 and 200" in response.json()["error"]


def test_load_default_and_explicit_seconds(client: TestClient) -> None:
    default = client.get("/load").json()
    assert default["requested_seconds"] == 0.05
    assert default["cpu_ms"] >= 50
    explicit = client.get("/load", params={"seconds": "0.1"}).json()
    assert explicit["cpu_ms"] >= 100


@pytest.mark.parametrize("seconds", ["0", "0.0", "0.6", "-1", "abc", "inf", "nan", ""])
def test_bad_load_seconds_is_400(client: TestClient, seconds: str) -> None:
    response = client.get("/load", params={"seconds": seconds})
    assert response.status_code == 400
    assert "seconds must be a number > 0 and <= 0.5" in response.json()["error"]


def test_health_is_plain_ok(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.text == "OK"
    assert response.headers["content-type"].startswith("text/plain")


def test_metrics_on_the_injected_registry(client: TestClient, registry: CollectorRegistry) -> None:
    client.get("/", params={"ms": "1"})
    client.get("/", params={"ms": "x"})
    client.get("/nowhere")
    text = client.get("/metrics").text
    assert 'slow_web_requests_total{route="/",status="200"} 1.0' in text
    assert 'slow_web_requests_total{route="/",status="400"} 1.0' in text
    assert 'slow_web_requests_total{route="other",status="404"} 1.0' in text
    assert 'slow_web_request_duration_seconds_count{route="/"} 2.0' in text
    assert "slow_web_in_flight_requests 0.0" in text
    assert "slow_web_queue_depth 0.0" in text
    assert "slow_web_shed_total" in text
    assert "slow_web_workers 1.0" in text
    assert registry.get_sample_value("slow_web_work_cpu_seconds_total") > 0  # type: ignore[operator]
    assert REGISTRY.get_sample_value("slow_web_work_cpu_seconds_total") is None


def test_demand_series_exist_at_zero_before_any_request(
    client: TestClient, registry: CollectorRegistry
) -> None:
    """Served and shed counts of both work routes are scraped as 0 from the start, so rate()
    sees the first requests of a load step instead of losing them to a series' first sample."""
    text = client.get("/metrics").text
    for route in ("/", "/load"):
        assert f'slow_web_shed_total{{route="{route}"}} 0.0' in text
        assert f'slow_web_requests_total{{route="{route}",status="200"}} 0.0' in text
    assert "slow_web_work_cpu_seconds_total 0.0" in text
    client.get("/", params={"ms": "20"})
    text = client.get("/metrics").text
    assert 'slow_web_requests_total{route="/",status="200"} 1.0' in text
    assert 'slow_web_requests_total{route="/load",status="200"} 0.0' in text
    cpu = registry.get_sample_value("slow_web_work_cpu_seconds_total")
    # the served request's work, measured by the worker
    assert cpu is not None and 0.02 <= cpu < 0.08


def test_admin_refuses_missing_and_wrong_tokens_without_effect(
    client: TestClient, runtime: Runtime
) -> None:
    missing = client.post("/admin/drain")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert (
        client.post("/admin/drain", headers={"Authorization": "Basic Zm9vOmJhcg=="}).status_code
        == 401
    )
    assert client.post("/admin/drain", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.get("/admin/status", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert not runtime.drain.draining
    assert client.get("/health").status_code == 200
    assert client.get("/", params={"ms": "1"}).status_code == 200


def test_admin_status(client: TestClient) -> None:
    body = client.get("/admin/status", headers=AUTH).json()
    assert body == {
        "instance": "unit-1",
        "draining": False,
        "drained": False,
        "exit_after_drain": False,
        "in_flight": 0,
        "queued": 0,
        "workers": 1,
        "queue_limit": 4,
    }


def test_admin_drain_with_exit(
    client: TestClient, runtime: Runtime, poll_until: Callable[..., bool]
) -> None:
    response = client.post("/admin/drain", headers=AUTH)
    assert response.status_code == 202
    assert response.json()["exit_after_drain"] is True
    health = client.get("/health")
    assert (health.status_code, health.text) == (503, "DRAINING")
    refused = client.get("/", params={"ms": "1"})
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json() == {"error": "draining"}
    assert poll_until(runtime.drain.exit_requested.is_set, timeout=10)
    # An exit, once promised, cannot be withdrawn.
    assert client.post("/admin/resume", headers=AUTH).status_code == 409


def test_admin_drain_without_exit_can_be_resumed(
    client: TestClient, runtime: Runtime, poll_until: Callable[..., bool]
) -> None:
    response = client.post("/admin/drain", params={"exit": "false"}, headers=AUTH)
    assert response.status_code == 202
    assert response.json()["exit_after_drain"] is False
    assert client.get("/health").status_code == 503
    assert poll_until(lambda: client.get("/admin/status", headers=AUTH).json()["drained"])
    assert not runtime.drain.exit_requested.is_set()
    assert client.post("/admin/resume", headers=AUTH).status_code == 200
    assert client.get("/health").status_code == 200
    assert client.get("/", params={"ms": "1"}).status_code == 200


def test_admin_drain_rejects_bad_exit_value(client: TestClient, runtime: Runtime) -> None:
    response = client.post("/admin/drain", params={"exit": "maybe"}, headers=AUTH)
    assert response.status_code == 400
    assert not runtime.drain.draining


def test_admin_app_needs_a_token(registry: CollectorRegistry) -> None:
    with pytest.raises(ValueError, match="admin token"):
        create_admin_app(Runtime.build(_settings(admin_token=None), registry))
