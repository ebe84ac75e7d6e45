from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from exo_scaler.decision import Direction
from exo_scaler.webhooks import PayloadError, parse_alert_payload

UP, DOWN = Direction.UP, Direction.DOWN


@pytest.mark.parametrize(
    ("name", "source", "directions", "ignored"),
    [
        ("grafana_firing_up.json", "grafana", (UP,), 0),
        ("grafana_resolved_up.json", "grafana", (), 1),
        ("grafana_mixed.json", "grafana", (DOWN,), 2),
        ("alertmanager_firing_up.json", "alertmanager", (UP,), 0),
        ("alertmanager_resolved_up.json", "alertmanager", (), 1),
        ("alertmanager_mixed.json", "alertmanager", (DOWN, DOWN), 1),
    ],
)
def test_realistic_payloads(
    fixture_bytes: Callable[[str], bytes],
    name: str,
    source: str,
    directions: tuple[Direction, ...],
    ignored: int,
) -> None:
    parsed = parse_alert_payload(fixture_bytes(name), label="action")
    assert parsed.source == source
    assert parsed.directions == directions
    assert len(parsed.ignored) == ignored


def test_route_direction_overrides_labels(fixture_bytes: Callable[[str], bytes]) -> None:
    body = fixture_bytes("alertmanager_firing_up.json")
    assert parse_alert_payload(body, label="action", route_direction=DOWN).directions == (DOWN,)
    resolved = fixture_bytes("alertmanager_resolved_up.json")
    assert parse_alert_payload(resolved, label="action", route_direction=UP).directions == ()


def test_label_name_is_configurable(fixture_bytes: Callable[[str], bytes]) -> None:
    body = json.loads(fixture_bytes("grafana_firing_up.json"))
    body["alerts"][0]["labels"]["direction"] = body["alerts"][0]["labels"].pop("action")
    raw = json.dumps(body).encode()
    assert parse_alert_payload(raw, label="direction").directions == (UP,)
    assert parse_alert_payload(raw, label="action").directions == ()


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"{not json", 400),
        (b"\xff\xfe", 400),
        (b"", 400),
        (b"[]", 422),
        (b'"firing"', 422),
        (b'{"version": "4"}', 422),
        (b'{"alerts": {}}', 422),
        (b'{"alerts": [1]}', 422),
        (b'{"alerts": [{"labels": {}}]}', 422),
        (b'{"alerts": [{"status": "firing", "labels": {"action": 1}}]}', 422),
        (b'{"alerts": [{"status": "firing", "labels": {"action": "sideways"}}]}', 422),
    ],
)
def test_bad_bodies(raw: bytes, status: int) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_alert_payload(raw, label="action")
    assert caught.value.status == status


def test_one_unknown_direction_refuses_the_whole_body(
    fixture_bytes: Callable[[str], bytes],
) -> None:
    body = json.loads(fixture_bytes("alertmanager_mixed.json"))
    body["alerts"][1]["labels"]["action"] = "scale_sideways"
    with pytest.raises(PayloadError) as caught:
        parse_alert_payload(json.dumps(body).encode(), label="action")
    assert caught.value.status == 422
