"""Each cap on its own: what it allows, the reason it names, and that it never turns a wish
around; then the order, through apply_caps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from exo_scaler.caps import (
    CAPS,
    CapContext,
    bounds,
    cost_cap,
    dry_run,
    paused,
    pool_busy,
    pool_unhealthy,
    quota,
    step_limit,
    warm_up,
)
from exo_scaler.caps import apply_caps as run_caps
from exo_scaler.decision import Direction, Reason
from exo_scaler.settings import ScalerSettings
from exo_scaler.strategy import Wish
from exo_scaler.target import InFlight, PoolStatus

UP, DOWN = Direction.UP, Direction.DOWN


@pytest.fixture
def ctx(make_settings: Callable[..., ScalerSettings]) -> Callable[..., CapContext]:
    def build(
        direction: Direction,
        wish: int,
        size: int,
        *,
        desired: int | None = None,
        state: str = "running",
        pool: dict[str, Any] | None = None,
        paused: bool = False,
        warming: int = 0,
        **settings: Any,
    ) -> CapContext:
        status = PoolStatus(size, state, **(pool or {}))
        return CapContext(
            Wish(direction, wish, "test", desired=desired),
            status,
            make_settings(**{"max_size": 10, **settings}),
            paused=paused,
            warming=warming,
        )

    return build


def test_paused_holds_whatever_the_wish(ctx: Callable[..., CapContext]) -> None:
    assert paused(5, ctx(UP, 5, 2)) is None
    held = paused(5, ctx(UP, 5, 2, paused=True))
    assert held is not None and (held.size, held.reason) == (2, Reason.PAUSED)


@pytest.mark.parametrize("state", ["suspended", "degraded"])
def test_pool_unhealthy_holds_and_names_the_apis_reason(
    ctx: Callable[..., CapContext], state: str
) -> None:
    held = pool_unhealthy(3, ctx(UP, 3, 2, state=state, pool={"error_reason": "quota: 1"}))
    assert held is not None and (held.size, held.reason) == (2, Reason.POOL_UNHEALTHY)
    assert state in held.detail and "quota: 1" in held.detail
    assert pool_unhealthy(3, ctx(UP, 3, 2)) is None


def test_pool_busy_holds_on_our_flight_or_a_pool_not_running(
    ctx: Callable[..., CapContext],
) -> None:
    flight = InFlight(UP, "waiting", 0.0, 2, 3)
    ours = pool_busy(4, ctx(UP, 4, 2, pool={"in_flight": flight}))
    assert ours is not None and (ours.size, ours.reason) == (2, Reason.POOL_BUSY)
    assert "in flight" in ours.detail
    theirs = pool_busy(1, ctx(DOWN, 1, 2, state="scaling-up"))
    assert theirs is not None and (theirs.size, theirs.detail) == (2, "pool is scaling-up")
    assert pool_busy(4, ctx(UP, 4, 2)) is None


def test_bounds_lower_an_up_wish_to_max_and_raise_a_down_wish_to_min(
    ctx: Callable[..., CapContext],
) -> None:
    up = bounds(7, ctx(UP, 7, 3, max_size=5))
    assert up is not None and (up.size, up.reason, up.detail) == (5, Reason.AT_MAX, "max is 5")
    down = bounds(0, ctx(DOWN, 0, 3, min_size=2))
    assert down is not None and (down.size, down.reason) == (2, Reason.AT_MIN)
    # Never turned around: a pool already above max is held, not shrunk, by an up wish.
    above = bounds(7, ctx(UP, 7, 6, max_size=5))
    assert above is not None and above.size == 6
    below = bounds(0, ctx(DOWN, 0, 1, min_size=2))
    assert below is not None and below.size == 1


def test_cost_cap_lowers_an_up_wish_only(ctx: Callable[..., CapContext]) -> None:
    money = {"max_hourly_cost": 0.3, "price_per_member_hour": 0.1}
    capped = cost_cap(6, ctx(UP, 6, 2, **money))
    assert capped is not None and (capped.size, capped.reason) == (3, Reason.AT_MAX)
    assert "cost cap allows 3" in capped.detail
    assert cost_cap(1, ctx(DOWN, 1, 2, **money)) is None
    assert cost_cap(6, ctx(UP, 6, 2)) is None  # no budget set


def test_quota_lowers_an_up_wish_to_the_room_left(ctx: Callable[..., CapContext]) -> None:
    some = quota(6, ctx(UP, 6, 2, pool={"quota_room": 1}))
    assert some is not None and (some.size, some.reason) == (3, Reason.QUOTA)
    none_left = quota(3, ctx(UP, 3, 2, pool={"quota_room": 0}))
    assert none_left is not None and none_left.size == 2 and "used up" in none_left.detail
    assert quota(3, ctx(UP, 3, 2)) is None  # unlimited, or not readable: left to the API
    assert quota(1, ctx(DOWN, 1, 2, pool={"quota_room": 0})) is None


def test_warm_up_holds_an_up_wish_to_what_the_value_asks_for(
    ctx: Callable[..., CapContext],
) -> None:
    held = warm_up(4, ctx(UP, 4, 3, desired=3, warming=1))
    assert held is not None and (held.size, held.reason) == (3, Reason.WARMING_UP)
    more = warm_up(5, ctx(UP, 5, 3, desired=5, warming=1))
    assert more is not None and more.size == 5  # the value asks for more than was asked for
    no_value = warm_up(4, ctx(UP, 4, 3, warming=2))
    assert no_value is not None and no_value.size == 3
    assert warm_up(4, ctx(UP, 4, 3, desired=3)) is None  # nothing warming
    assert warm_up(2, ctx(DOWN, 2, 3, desired=2, warming=1)) is None


def test_step_limit_bounds_a_tick_except_for_the_step_policy(
    ctx: Callable[..., CapContext],
) -> None:
    up = step_limit(8, ctx(UP, 8, 2, max_step=2))
    assert up is not None and up.size == 4
    down = step_limit(1, ctx(DOWN, 1, 5, max_step=2))
    assert down is not None and down.size == 3
    assert step_limit(8, ctx(UP, 8, 2, policy="step")) is None


def test_dry_run_keeps_the_size_but_not_the_call(ctx: Callable[..., CapContext]) -> None:
    dry = dry_run(3, ctx(UP, 3, 2, dry_run=True))
    assert dry is not None and (dry.size, dry.reason) == (3, Reason.DRY_RUN)
    assert dry_run(2, ctx(UP, 2, 2, dry_run=True)) is None  # nothing to not do
    assert dry_run(3, ctx(UP, 3, 2)) is None


def test_the_caps_run_in_the_order_of_their_reasons(ctx: Callable[..., CapContext]) -> None:
    assert [c.name for c in CAPS] == [
        "paused", "pool-unhealthy", "pool-busy", "bounds", "cost-cap", "quota", "warm-up",
        "step-limit", "dry-run",
    ]  # fmt: skip
    # At max with the quota used up: at-max (today's reason), the quota changes nothing more.
    at_max = run_caps(ctx(UP, 5, 4, max_size=4, pool={"quota_room": 0}))
    assert [c.cap for c in at_max.trail] == ["bounds"]
    assert at_max.last is not None and at_max.last.reason is Reason.AT_MAX
    # Below max, the quota holds it; warm-up then has nothing left to change.
    quota_held = run_caps(ctx(UP, 3, 2, max_size=4, pool={"quota_room": 0}, desired=2,
                              warming=1))  # fmt: skip
    assert quota_held.last is not None and quota_held.last.reason is Reason.QUOTA
    # Every change is on the trail, from → to.
    several = run_caps(ctx(UP, 9, 2, max_size=6, pool={"quota_room": 3}, max_step=2))
    assert [(c.cap, c.from_size, c.to_size) for c in several.trail] == [
        ("bounds", 9, 6), ("quota", 6, 5), ("step-limit", 5, 4),
    ]  # fmt: skip
    assert several.size == 4
