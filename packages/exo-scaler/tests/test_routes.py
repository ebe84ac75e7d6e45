from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator

import pytest
from starlette.testclient import TestClient

from exo_client import ExoClient
from exo_scaler.settings import ScalerSettings

from .conftest import TOKEN, exo_app

BEARER = {"Authorization": f"Bearer {TOKEN}"}


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


@pytest.fixture
def make_client(
    make_settings: Callable[..., ScalerSettings], offline_client: ExoClient
) -> Iterator[Callable[..., TestClient]]:
    made: list[TestClient] = []

    def build(**overrides: object) -> TestClient:
        # No lifespan: the loop does not run, so recorded intents stay pending for us to see.
        app = exo_app(make_settings(**overrides), offline_client)
        client = TestClient(app, raise_server_exceptions=False)
        made.append(client)
        return client

    yield build
    for client in made:
        client.close()


def pending(client: TestClient) -> set[str]:
    return {i["direction"] for i in client.get("/status").json()["pending_intents"]}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": TOKEN},
        {"Authorization": f"Token {TOKEN}"},
        {"Authorization": "Basic !!!not-base64"},
        basic("grafana", "wrong"),
    ],
)
def test_missing_or_wrong_credentials_are_401_and_record_nothing(
    make_client: Callable[..., TestClient],
    fixture_bytes: Callable[[str], bytes],
    headers: dict[str, str],
) -> None:
    client = make_client()
    body = fixture_bytes("grafana_firing_up.json")
    assert client.post("/webhook", content=body, headers=headers).status_code == 401
    assert client.get("/up", headers=headers).status_code == 401
    assert client.post("/down", headers=headers).status_code == 401
    assert client.post("/pause", headers=headers).status_code == 401
    response = client.post("/webhook", content=body, headers=headers)
    assert "Bearer" in response.headers["www-authenticate"]
    assert pending(client) == set()
    assert client.get("/status").json()["paused"] is False


def test_bearer_records_an_intent(
    make_client: Callable[..., TestClient], fixture_bytes: Callable[[str], bytes]
) -> None:
    client = make_client()
    response = client.post(
        "/webhook", content=fixture_bytes("grafana_firing_up.json"), headers=BEARER
    )
    assert response.status_code == 200
    assert response.json()["recorded"] == ["up"]
    assert pending(client) == {"up"}


def test_basic_works_with_any_user_or_the_configured_one(
    make_client: Callable[..., TestClient], fixture_bytes: Callable[[str], bytes]
) -> None:
    body = fixture_bytes("alertmanager_firing_up.json")
    anyone = make_client()
    assert anyone.post("/webhook", content=body, headers=basic("am", TOKEN)).status_code == 200
    assert pending(anyone) == {"up"}
    strict = make_client(basic_user="alertmanager")
    assert strict.post("/webhook", content=body, headers=basic("am", TOKEN)).status_code == 401
    good = basic("alertmanager", TOKEN)
    assert strict.post("/webhook", content=body, headers=good).status_code == 200


def test_resolved_and_unlabelled_alerts_record_nothing(
    make_client: Callable[..., TestClient], fixture_bytes: Callable[[str], bytes]
) -> None:
    client = make_client()
    for name in ("grafana_resolved_up.json", "alertmanager_resolved_up.json"):
        response = client.post("/webhook", content=fixture_bytes(name), headers=BEARER)
        assert response.status_code == 200
        assert response.json()["recorded"] == []
    assert pending(client) == set()


def test_duplicates_in_one_tick_are_one_intent(
    make_client: Callable[..., TestClient], fixture_bytes: Callable[[str], bytes]
) -> None:
    client = make_client()
    for _ in range(5):
        client.post("/webhook", content=fixture_bytes("grafana_firing_up.json"), headers=BEARER)
    client.get("/up", headers=BEARER)
    intents = client.get("/status").json()["pending_intents"]
    assert len(intents) == 1
    assert intents[0]["count"] == 6


def test_up_and_down_routes_take_an_optional_body(
    make_client: Callable[..., TestClient], fixture_bytes: Callable[[str], bytes]
) -> None:
    client = make_client()
    assert client.get("/up", headers=BEARER).status_code == 200
    assert client.post("/down", content=b'{"why": "manual"}', headers=BEARER).status_code == 200
    assert pending(client) == {"up", "down"}
    other = make_client()
    resolved = fixture_bytes("alertmanager_resolved_up.json")
    assert other.post("/up", content=resolved, headers=BEARER).json()["recorded"] == []
    assert other.post("/down", content=b"{oops", headers=BEARER).status_code == 400
    assert pending(other) == set()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{bad json", 400),
        (b"[1, 2]", 422),
        (b'{"alerts": [{"status": "firing", "labels": {"action": "sideways"}}]}', 422),
        (b'{"alerts": "nope"}', 422),
    ],
)
def test_bad_webhook_bodies_record_nothing(
    make_client: Callable[..., TestClient], body: bytes, status: int
) -> None:
    client = make_client()
    assert client.post("/webhook", content=body, headers=BEARER).status_code == status
    assert pending(client) == set()


def test_body_over_64_kib_is_413_with_and_without_content_length(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    padding = "x" * (64 * 1024)
    big = json.dumps(
        {"alerts": [{"status": "firing", "labels": {"action": "scale_up"}}], "p": padding}
    ).encode()
    assert client.post("/webhook", content=big, headers=BEARER).status_code == 413

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    response = client.post("/webhook", content=chunks(), headers=BEARER)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert client.request("GET", "/up", headers=BEARER, content=big).status_code == 413
    assert pending(client) == set()
    exact = b'{"alerts": []' + b" " * (64 * 1024 - 14) + b"}"
    assert len(exact) == 64 * 1024
    assert client.post("/webhook", content=exact, headers=BEARER).status_code == 200


def test_pause_resume_status_metrics_healthz(make_client: Callable[..., TestClient]) -> None:
    client = make_client()
    assert client.post("/pause", headers=BEARER).json() == {"paused": True}
    # The gauges are read from the scaler's state when scraped.
    paused = client.get("/metrics").text
    assert "exo_scaler_paused 1.0" in paused
    assert 'exo_scaler_pool_bound{bound="max"} 4.0' in paused
    status = client.get("/status").json()
    assert status["paused"] is True
    assert (status["min"], status["max"], status["dry_run"]) == (1, 4, False)
    assert client.post("/resume", headers=BEARER).json() == {"paused": False}
    assert "exo_scaler_paused 0.0" in client.get("/metrics").text
    assert client.get("/healthz").text == "OK"
    client.get("/up", headers=BEARER)
    client.post("/webhook", content=b"[]", headers=BEARER)
    text = client.get("/metrics").text
    assert (
        'exo_scaler_webhooks_received_total{direction="up",result="recorded",source="route"} 1.0'
        in text
    )
    assert 'result="invalid"' in text
    assert "exo_scaler_pool_size" in text
    assert 'exo_scaler_pending_intents{direction="up"} 1.0' in text
    assert TOKEN not in client.get("/status").text


def test_no_auth_opens_routes_and_warns(
    make_client: Callable[..., TestClient], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(no_auth=True)
    assert client.get("/up").status_code == 200
    assert client.get("/status").json()["auth"] == "none"
    with caplog.at_level(logging.WARNING), client:
        pass  # the lifespan warns at start
    assert any("--no-auth" in record.getMessage() for record in caplog.records)


def test_signals_that_never_scale_are_acknowledged_and_counted(
    make_client: Callable[..., TestClient], fixture_bytes: Callable[[str], bytes]
) -> None:
    client = make_client()
    for name in ("grafana_nodata.json", "grafana_error.json", "grafana_state_reason.json"):
        answer = client.post("/webhook", content=fixture_bytes(name), headers=BEARER)
        assert answer.status_code == 200 and answer.json()["recorded"] == []
    test = fixture_bytes("grafana_test_notification.json")
    for route in ("/webhook", "/up", "/down"):
        answer = client.post(route, content=test, headers=BEARER)
        assert answer.status_code == 200
        assert answer.json()["test_notification"] is True
    assert pending(client) == set()
    text = client.get("/metrics").text
    for reason, count in (
        ("nodata", 1),
        ("datasource-error", 1),
        ("state-reason", 1),
        ("test-notification", 3),
    ):
        assert f'exo_scaler_alerts_ignored_total{{reason="{reason}"}} {count}.0' in text
    # The course robot's bare calls still record.
    assert client.get("/up", headers=BEARER).json()["recorded"] == ["up"]
    assert client.post("/down", headers=BEARER).json()["recorded"] == ["down"]
    assert pending(client) == {"up", "down"}


@pytest.mark.parametrize(
    ("policy", "acts"), [("demand", True), ("step", False), ("proportional", False)]
)
def test_only_the_demand_policy_acts_on_the_shedding_trigger(
    make_client: Callable[..., TestClient],
    fixture_bytes: Callable[[str], bytes],
    policy: str,
    acts: bool,
) -> None:
    client = make_client(policy=policy)
    status = client.get("/status").json()
    assert status["triggers"] == (["cpu", "shedding"] if acts else ["cpu"])
    answer = client.post("/webhook", content=fixture_bytes("grafana_shedding_up.json"),
                         headers=BEARER)  # fmt: skip
    assert answer.status_code == 200
    assert answer.json()["recorded"] == (["up"] if acts else [])
    assert pending(client) == ({"up"} if acts else set())
    ignored = 'exo_scaler_alerts_ignored_total{reason="other-trigger"} 1.0'
    assert (ignored in client.get("/metrics").text) is not acts
    # The CPU rule's alert still scales under every policy.
    cpu = client.post("/webhook", content=fixture_bytes("grafana_demand_up.json"), headers=BEARER)
    assert cpu.json()["recorded"] == ["up"]
