"""Property-based fuzzing of the webhook routes: never a 5xx, never an intent from bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from exo_client import ExoClient
from exo_scaler.settings import ScalerSettings

from .conftest import TOKEN, exo_app

BEARER = {"Authorization": f"Bearer {TOKEN}"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
label_values = st.sampled_from(["scale_up", "scale_down", "up", "down", "sideways", ""]) | st.text(
    max_size=12
)
alerts = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["firing", "resolved"]) | json_values,
        "labels": st.dictionaries(
            st.sampled_from(["action", "alertname", "pool"]), label_values | json_values, max_size=3
        ),
    },
    optional={"fingerprint": st.text(max_size=16), "values": json_values},
)
payloads = st.fixed_dictionaries(
    {"alerts": st.lists(alerts, max_size=4) | json_values},
    optional={
        "version": st.sampled_from(["1", "4"]) | json_values,
        "status": st.text(max_size=10),
        "orgId": st.integers(),
    },
)
bodies = (
    st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v).encode())
    | payloads.map(lambda v: json.dumps(v).encode())
)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    settings_ = ScalerSettings(pool="web", max_size=4, interval=3600, auth_token=TOKEN)
    offline = ExoClient.__new__(ExoClient)  # never called: the loop does not run here
    app = exo_app(settings_, offline)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _expected_directions(body: bytes) -> set[str] | None:
    """What a correct receiver records for /webhook, or None when it must refuse the body."""
    try:
        value: Any = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("alerts"), list):
        return None
    found: set[str] = set()
    for alert in value["alerts"]:
        if not isinstance(alert, dict) or not isinstance(alert.get("status"), str):
            return None
        labels = alert.get("labels", {})
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            return None
        if alert["status"] != "firing" or "action" not in labels:
            continue
        direction = {"scale_up": "up", "up": "up", "scale_down": "down", "down": "down"}.get(
            labels["action"].strip().lower().replace("-", "_")
        )
        if direction is None:
            return None
        found.add(direction)
    return found


def _take(client: TestClient) -> set[str]:
    scaler = client.app.state.scaler  # type: ignore[attr-defined]
    return {i.direction.value for i in scaler.intents.take()}


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies, authorized=st.booleans())
def test_webhook_never_5xx_and_records_only_valid_firing_alerts(
    client: TestClient, body: bytes, authorized: bool
) -> None:
    _take(client)
    response = client.post("/webhook", content=body, headers=BEARER if authorized else {})
    assert response.status_code < 500
    recorded = _take(client)
    if not authorized:
        assert (response.status_code, recorded) == (401, set())
        return
    expected = _expected_directions(body)
    if expected is None:
        assert response.status_code in (400, 422)
        assert recorded == set()
    else:
        assert response.status_code == 200
        assert recorded == expected


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=bodies, path=st.sampled_from(["/up", "/down"]), method=st.sampled_from(["GET", "POST"]))
def test_up_down_never_5xx_and_bad_bodies_record_nothing(
    client: TestClient, body: bytes, path: str, method: str
) -> None:
    _take(client)
    response = client.request(method, path, content=body, headers=BEARER)
    assert response.status_code < 500
    recorded = _take(client)
    if response.status_code >= 400:
        assert recorded == set()
    else:
        assert recorded <= {path.strip("/")}


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(header=st.text(max_size=60))
def test_garbage_authorization_headers_are_401(client: TestClient, header: str) -> None:
    try:
        headers = {"Authorization": header.encode("latin-1").decode("latin-1")}
        response = client.post("/webhook", content=b"{}", headers=headers)
    except (UnicodeEncodeError, ValueError):
        return  # not sendable as an HTTP header at all
    # `{}` is no alert payload: even a valid header ends at 422, never at an intent.
    assert response.status_code in (401, 422)
    assert _take(client) == set()
