from __future__ import annotations

from collections.abc import Callable

import pytest

from exo_scaler.decision import Decision, Direction, Reason, evaluate
from exo_scaler.intents import Intent
from exo_scaler.settings import ScalerSettings, SettingsError
from exo_scaler.target import InFlight, PoolStatus

UP, DOWN = Direction.UP, Direction.DOWN
RUNNING = "running"


def wanted(*directions: Direction) -> tuple[Intent, ...]:
    return tuple(Intent(d, 0.0, 0.0, "test") for d in directions)


def PoolView(size: int, state: str, error_reason: str = "", **more: object) -> PoolStatus:
    """The pool as one status read describes it."""
    return PoolStatus(size, state, error_reason=error_reason, **more)  # type: ignore[arg-type]


def decide(
    intents: tuple[Intent, ...],
    pool: PoolStatus,
    settings: ScalerSettings,
    *,
    paused: bool = False,
    in_flight: bool = False,
    warming: int = 0,
) -> Decision:
    if in_flight:
        flight = InFlight(Direction.UP, "waiting", 0.0, pool.size, pool.size + 1)
        pool = PoolStatus(pool.size, pool.state, in_flight=flight)
    return evaluate(intents, pool, settings, paused=paused, warming=warming)


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
    settings = make_settings(step=3, min_size=2, max_size=6, policy="step")
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


# -- proportional policy and warm-up ----------------------------------------------------------


def valued(direction: Direction, value: float | None) -> tuple[Intent, ...]:
    return (Intent(direction, 0.0, 0.0, "test", value=value),)


@pytest.mark.parametrize(
    ("direction", "value", "size", "warming", "expected"),
    [
        # desired = ceil(serving × value / 70); at least ±1, at most ±2 (max_step).
        (UP, 100.0, 1, 0, (2, Reason.SCALED, 2)),  # the course robot's 1 → 2
        (UP, 91.7, 2, 0, (3, Reason.SCALED, 3)),
        (UP, 140.0, 2, 0, (4, Reason.SCALED, 4)),
        (UP, 200.0, 2, 0, (4, Reason.SCALED, 6)),  # clamped by max_step
        (UP, 72.0, 5, 0, (6, Reason.SCALED, 6)),
        (UP, 60.0, 2, 0, (3, Reason.SCALED, 2)),  # the alert fired: +1 anyway
        (UP, None, 2, 0, (3, Reason.SCALED, None)),  # no value: the step
        # Warm-up: 3 asked for, 1 still booting, the 2 serving at 90 % need ceil(2.57) = 3.
        (UP, 90.0, 3, 1, (3, Reason.WARMING_UP, 3)),
        (UP, None, 3, 1, (3, Reason.WARMING_UP, None)),
        # ... unless the value asks for more than what is already asked for.
        (UP, 130.0, 3, 1, (4, Reason.SCALED, 4)),
        # Saturated (≥ 98 %): the value is a floor, twice what serves at least.
        (UP, 99.0, 1, 0, (2, Reason.SCALED, 2)),
        (UP, 99.0, 2, 0, (4, Reason.SCALED, 4)),
        (UP, 99.0, 4, 0, (6, Reason.SCALED, 8)),  # max_step 2 a tick
        # ... but not while members warm: ceil(1 × 99 / 70) = 2, already asked for.
        (UP, 99.0, 2, 1, (2, Reason.WARMING_UP, 2)),
        (UP, 97.0, 2, 0, (3, Reason.SCALED, 3)),  # below saturation: ceil(2 × 97 / 70)
        (DOWN, 20.0, 4, 0, (2, Reason.SCALED, 2)),  # ceil(4 × 20 / 70) = 2
        (DOWN, 5.0, 4, 0, (2, Reason.SCALED, 1)),  # at most max_step a tick
        (DOWN, 60.0, 3, 0, (2, Reason.SCALED, 3)),  # the alert fired: -1 anyway
        (DOWN, 20.0, 2, 0, (1, Reason.SCALED, 1)),
        (DOWN, 20.0, 1, 0, (1, Reason.AT_MIN, 1)),
    ],
)
def test_proportional_steps_from_the_alert_value(
    make_settings: Callable[..., ScalerSettings],
    direction: Direction,
    value: float | None,
    size: int,
    warming: int,
    expected: tuple[int, Reason, int | None],
) -> None:
    settings = make_settings(max_size=10, policy="proportional", target_value=70, max_step=2)
    decision = decide(valued(direction, value), PoolView(size, RUNNING), settings, warming=warming)
    assert (decision.to_size, decision.reason, decision.desired) == expected
    assert (decision.value, decision.policy) == (value, "proportional")


def test_proportional_respects_max_and_the_cost_cap(
    make_settings: Callable[..., ScalerSettings],
) -> None:
    settings = make_settings(max_size=10, max_hourly_cost=0.4, price_per_member_hour=0.1)
    decision = decide(valued(UP, 200.0), PoolView(3, RUNNING), settings)
    assert (decision.to_size, decision.reason) == (4, Reason.SCALED)
    assert decide(valued(UP, 200.0), PoolView(4, RUNNING), settings).reason is Reason.AT_MAX


def test_step_policy_is_the_seed_literal(make_settings: Callable[..., ScalerSettings]) -> None:
    settings = make_settings(max_size=10, policy="step")
    decision = decide(valued(UP, 200.0), PoolView(2, RUNNING), settings, warming=1)
    assert (decision.to_size, decision.reason, decision.warming) == (3, Reason.SCALED, 0)
    assert decision.value is None


@pytest.mark.parametrize("state", ["suspended", "degraded"])
def test_an_unhealthy_pool_is_not_busy(
    make_settings: Callable[..., ScalerSettings], state: str
) -> None:
    pool = PoolView(2, state, error_reason="quota-exceeded")
    decision = decide(wanted(UP), pool, make_settings())
    assert (decision.reason, decision.to_size) == (Reason.POOL_UNHEALTHY, 2)
    assert state in decision.detail and "quota-exceeded" in decision.detail


def test_the_decision_carries_the_wish_and_each_cap_that_changed_it(
    make_settings: Callable[..., ScalerSettings],
) -> None:
    settings = make_settings(max_size=5, policy="proportional", target_value=70, max_step=2)
    pool = PoolView(2, RUNNING, quota_room=2)
    decision = decide(valued(UP, 280.0), pool, settings)  # ceil(2 × 280 / 70) = 8
    assert decision.wish is not None and (decision.wish.size, decision.desired) == (8, 8)
    assert [(c.cap, c.from_size, c.to_size) for c in decision.capped_by] == [
        ("bounds", 8, 5),
        ("quota", 5, 4),
    ]
    assert (decision.to_size, decision.reason, decision.detail) == (4, Reason.SCALED, "")
    held = decide(valued(UP, 280.0), PoolView(5, RUNNING), settings)
    assert (held.reason, held.detail, [c.cap for c in held.capped_by]) == (
        Reason.AT_MAX,
        "max is 5",
        ["bounds"],
    )
