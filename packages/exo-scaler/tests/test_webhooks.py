from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from exo_scaler.decision import Direction
from exo_scaler.webhooks import (
    ALL_TRIGGERS,
    CPU_TRIGGERS,
    PayloadError,
    Skip,
    parse_alert_payload,
)

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
    assert parse_alert_payload(body, label="action", route_direction=UP).directions == (UP,)
    unlabelled = json.loads(body)
    del unlabelled["alerts"][0]["labels"]["action"]
    raw = json.dumps(unlabelled).encode()
    assert parse_alert_payload(raw, label="action", route_direction=DOWN).directions == (DOWN,)
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


# -- signal hygiene: what never scales (DESIGN.md §4) -------------------------------------------

from exo_scaler.webhooks import alert_signals, parse_number  # noqa: E402


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("grafana_nodata.json", Skip.NO_DATA),
        ("grafana_error.json", Skip.DATASOURCE_ERROR),
        ("grafana_state_reason.json", Skip.STATE_REASON),
        ("grafana_test_notification.json", Skip.TEST_NOTIFICATION),
    ],
)
@pytest.mark.parametrize("route", [None, UP, DOWN])
def test_signals_that_never_scale(
    fixture_bytes: Callable[[str], bytes],
    name: str,
    reason: Skip,
    route: Direction | None,
) -> None:
    # NoData and Error keep the rule's `action` label: on /webhook it would name a direction.
    parsed = parse_alert_payload(fixture_bytes(name), label="action", route_direction=route)
    assert parsed.directions == ()
    assert parsed.skipped == (reason,)
    assert parsed.test_notification is (reason is Skip.TEST_NOTIFICATION)


def test_nodata_on_both_rules_never_wins_up(fixture_bytes: Callable[[str], bytes]) -> None:
    body = json.loads(fixture_bytes("grafana_nodata.json"))
    down = json.loads(json.dumps(body["alerts"][0]))
    down["labels"]["action"] = "scale_down"
    body["alerts"].append(down)
    parsed = parse_alert_payload(json.dumps(body).encode(), label="action")
    assert parsed.directions == ()
    assert parsed.skipped == (Skip.NO_DATA, Skip.NO_DATA)


@pytest.mark.parametrize(("route", "kept"), [(UP, (UP,)), (DOWN, (DOWN, DOWN))])
def test_a_label_contradicting_the_route_is_ignored(
    fixture_bytes: Callable[[str], bytes], route: Direction, kept: tuple[Direction, ...]
) -> None:
    # grafana_mixed: a firing scale_down alert, a resolved scale_up one, a firing unlabelled
    # one (which takes the route's direction, as a simple sender's alert always has).
    parsed = parse_alert_payload(
        fixture_bytes("grafana_mixed.json"), label="action", route_direction=route
    )
    assert parsed.directions == kept
    assert (Skip.CONTRADICTS_ROUTE in parsed.skipped) is (route is UP)


@pytest.mark.parametrize(
    ("name", "directions", "values", "truncated"),
    [
        ("grafana_firing_up.json", (UP,), {UP: 91.73}, 0),
        ("grafana_grouped.json", (UP, UP), {UP: 97.2}, 0),
        ("alertmanager_grouped.json", (UP, UP), {UP: 93.1}, 0),
        ("alertmanager_truncated.json", (UP,), {UP: 93.4}, 2),
        ("alertmanager_firing_up.json", (UP,), {}, 0),
    ],
)
def test_grouped_and_truncated_carry_their_values(
    fixture_bytes: Callable[[str], bytes],
    name: str,
    directions: tuple[Direction, ...],
    values: dict[Direction, float],
    truncated: int,
) -> None:
    parsed = parse_alert_payload(fixture_bytes(name), label="action")
    assert parsed.directions == directions
    assert {d: s["cpu"] for d, s in parsed.signals.items()} == values
    assert parsed.truncated == truncated


def alert_value(alert: dict[str, Any], ref: str | None = None) -> float | None:
    """The CPU value, as the `cpu` signal (read under `ref` when given)."""
    return alert_signals(alert, refs=None if ref is None else {"cpu": ref}).get("cpu")


@pytest.mark.parametrize(
    ("raw", "number"),
    [
        (91.7, 91.7),
        ("91.7", 91.7),
        (" 91.7 % ", 91.7),
        ("0", 0.0),
        ("NaN", None),
        ("inf", None),
        ("-3", None),
        ("high", None),
        (True, None),
        (None, None),
        ([1], None),
    ],
)
def test_values_are_parsed_robustly(raw: object, number: float | None) -> None:
    assert parse_number(raw) == number


def test_which_value_an_alert_carries() -> None:
    grafana = {"values": {"A": 91.7, "C": 1}}
    assert alert_value(grafana) == 91.7
    assert alert_value({"values": {"B": 0.93, "C": 1}}) == 0.93
    assert alert_value({"values": {"C": 1}}) is None
    assert alert_value({"values": {"A": 91.7, "B": 50.0}}, ref="B") == 50.0
    annotated = {"annotations": {"value": "oops", "cpu": "77"}, "values": {"A": 91.7}}
    assert alert_value(annotated) == 77.0  # the provisioned annotation wins over `values`
    assert alert_value({"values": None, "annotations": None}) is None


def test_the_cpu_policies_skip_the_shedding_trigger_the_demand_policy_acts_on(
    fixture_bytes: Callable[[str], bytes],
) -> None:
    """The seed's CPU policies see what they saw before the shedding rule existed; the demand
    policy reads the shedding alert's signals, the CPU value from `cpu`, not the shed rate."""
    shedding = fixture_bytes("grafana_shedding_up.json")
    cpu_only = parse_alert_payload(shedding, label="action", triggers=CPU_TRIGGERS)
    assert cpu_only.directions == ()
    assert cpu_only.skipped == (Skip.OTHER_TRIGGER,)
    assert "'shedding' trigger" in cpu_only.ignored[0]
    assert cpu_only.signals == {}
    both = parse_alert_payload(shedding, label="action", triggers=ALL_TRIGGERS)
    assert both.directions == (UP,) and both.skipped == ()
    assert both.signals[UP] == {
        "cpu": 97.4,
        "arrivals": 35.2,
        "cpu_per_request": 0.1,
        "serving": 1.0,
        "evaluated_at": 1764869900.008,
    }
    # An alert without a trigger label is a CPU alert: every policy acts on it.
    for triggers in (CPU_TRIGGERS, ALL_TRIGGERS):
        plain = parse_alert_payload(
            fixture_bytes("grafana_demand_up.json"), label="action", triggers=triggers
        )
        assert plain.directions == (UP,)
    # A trigger nobody acts on is skipped, not refused.
    other = json.loads(shedding)
    other["alerts"][0]["labels"]["trigger"] = "latency"
    unknown = parse_alert_payload(json.dumps(other).encode(), label="action", triggers=ALL_TRIGGERS)
    assert unknown.directions == () and unknown.skipped == (Skip.OTHER_TRIGGER,)
