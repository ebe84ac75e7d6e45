from __future__ import annotations

from collections.abc import Callable

import pytest

from exo_scaler.decision import Direction, PoolView, Reason, decide
from exo_scaler.intents import Intent
from exo_scaler.settings import ScalerSettings, SettingsError

UP, DOWN = Direction.UP, Direction.DOWN
RUNNING = "running"


def wanted(*directions: Direction) -> tuple[Intent, ...]:
    return tuple(Intent(d, 0.0, 0.0, "test") for d in directions)


@pytest.mark.parametrize(
    ("intents", "size", "state", "expected"),
    [
        ((), 2, RUNNING, (None, 2, Reason.NO_INTENT)),
        ((UP,), 2, RUNNING, (UP, 3, Reason.SCALED)),
        ((DOWN,), 2, RUNNING, (DOWN, 1, Reason.SCALED)),
        ((DOWN, UP), 2, RUNNING, (UP, 3, Reason.SCALED)),
        ((UP,), 4, RUNNING, (UP, 4, Reason.AT_MAX)),
        ((UP,), 6, RUNNING, (UP, 6, Reason.AT_MAX)),
        ((DOWN,), 1, RUNNING, (DOWN, 1, Reason.AT_MIN)),
        ((UP,), 2, "scaling-up", (UP, 2, Reason.POOL_BUSY)),
        ((DOWN,), 2, "scaling-down", (DOWN, 2, Reason.POOL_BUSY)),
        ((), 2, "scaling-up", (None, 2, Reason.NO_INTENT)),
    ],
)
def test_decision_table(
    make_settings: Callable[..., ScalerSettings],
    intents: tuple[Direction, ...],
    size: int,
    state: str,
    expected: tuple[Direction | None, int, Reason],
) -> None:
    decision = decide(wanted(*intents), PoolView(size, state), make_settings())
    assert (decision.action, decision.to_size, decision.reason) == expected
    assert decision.from_size == size


def test_step_is_clamped_to_the_bounds(make_settings: Callable[..., ScalerSettings]) -> None:
    settings = make_settings(step=3, min_size=2, max_size=6)
    assert decide(wanted(UP), PoolView(5, RUNNING), settings).to_size == 6
    assert decide(wanted(DOWN), PoolView(3, RUNNING), settings).to_size == 2
    assert decide(wanted(UP), PoolView(2, RUNNING), settings).to_size == 5


def test_cost_cap_lowers_the_ceiling(make_settings: Callable[..., ScalerSettings]) -> None:
    settings = make_settings(max_size=10, max_hourly_cost=0.3, price_per_member_hour=0.1)
    assert settings.effective_max == 3
    assert decide(wanted(UP), PoolView(2, RUNNING), settings).to_size == 3
    capped = decide(wanted(UP), PoolView(3, RUNNING), settings)
    assert capped.reason is Reason.AT_MAX
    assert "cost" in capped.detail


def test_in_flight_operation_means_busy(make_settings: Callable[..., ScalerSettings]) -> None:
    decision = decide(wanted(UP), PoolView(2, RUNNING), make_settings(), in_flight=True)
    assert decision.reason is Reason.POOL_BUSY
    assert decision.to_size == 2


def test_paused_and_dry_run(make_settings: Callable[..., ScalerSettings]) -> None:
    paused = decide(wanted(UP), PoolView(2, RUNNING), make_settings(), paused=True)
    assert (paused.reason, paused.to_size) == (Reason.PAUSED, 2)
    dry = decide(wanted(UP), PoolView(2, RUNNING), make_settings(dry_run=True))
    assert (dry.reason, dry.to_size, dry.acts) == (Reason.DRY_RUN, 3, False)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"auth_token": None}, "no webhook token"),
        ({"min_size": 3, "max_size": 2}, "--max must be >= --min"),
        ({"step": 0}, "--step"),
        ({"interval": 0}, "--interval"),
        ({"max_hourly_cost": 1.0}, "go together"),
        ({"scale_down_policy": "least-busy"}, "--prometheus-url"),
        ({"drain_seconds": 5}, "admin token"),
        ({"drain_seconds": 5, "drain_token": "x", "drain_url": "http://a/"}, "{ip}"),
        ({"pool": ""}, "--pool"),
    ],
)
def test_bad_settings_are_refused_clearly(
    make_settings: Callable[..., ScalerSettings], overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(SettingsError, match=message.replace("{", r"\{").replace("}", r"\}")):
        make_settings(**overrides)


def test_settings_never_show_secrets(make_settings: Callable[..., ScalerSettings]) -> None:
    settings = make_settings(drain_seconds=1, drain_token="drain-secret")
    assert "t0ken" not in repr(settings)
    assert "drain-secret" not in repr(settings)
