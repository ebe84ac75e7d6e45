"""The caps: ordered bounds applied to a strategy's wish, each a named unit.

As nomad-autoscaler's `ScalingAction.CapCount` pushes a reason each time it changes the count,
each cap here returns the size it allows and why, and the evaluation (decision.py) records its
name in `capped_by` when that changes the wish. A cap never turns a wish around: an up wish is
only lowered towards the current size, a down wish only raised towards it.

The order is the precedence of the reasons. The gates (paused, an unhealthy pool, a busy one)
hold the pool whatever the wish, and the first that holds ends the list; otherwise, when the
caps bring the wish back to the current size, the last one that changed it names the
decision's reason (at-max before the quota, the quota before the warm-up).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .intents import Direction
from .reason import Reason
from .settings import ScalerSettings
from .strategy import Wish
from .target import PoolStatus


@dataclass(frozen=True)
class CapContext:
    wish: Wish
    status: PoolStatus
    settings: ScalerSettings
    paused: bool = False
    warming: int = 0  # members of our last scale-up not measured yet (warmup.py)

    @property
    def size(self) -> int:
        return self.status.size

    @property
    def up(self) -> bool:
        return self.wish.direction is Direction.UP


@dataclass(frozen=True)
class Limit:
    """What a cap allows: the size, the reason a decision held by it gets, and why. A gate
    (`holds`) keeps the pool as it is whatever the wish, so it is recorded even when the wish
    already was the current size."""

    size: int
    reason: Reason
    detail: str
    holds: bool = False


@dataclass(frozen=True)
class Cap:
    name: str
    allows: Callable[[int, CapContext], Limit | None]  # None: no opinion on this wish


@dataclass(frozen=True)
class Capped:
    """One cap that changed the wish: its name, the size before and after, and why."""

    cap: str
    from_size: int
    to_size: int
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"cap": self.cap, "from": self.from_size, "to": self.to_size,
                "detail": self.detail}  # fmt: skip


def _hold(ctx: CapContext, reason: Reason, detail: str) -> Limit:
    return Limit(ctx.size, reason, detail, holds=True)


def _ceiling(wanted: int, ctx: CapContext, most: int, reason: Reason, detail: str) -> Limit:
    """An up wish lowered to `most`, never below the current size."""
    return Limit(min(wanted, max(ctx.size, most)), reason, detail)


def paused(_wanted: int, ctx: CapContext) -> Limit | None:
    return _hold(ctx, Reason.PAUSED, "paused") if ctx.paused else None


def pool_unhealthy(_wanted: int, ctx: CapContext) -> Limit | None:
    status = ctx.status
    if not status.is_unhealthy:
        return None
    why = f"pool is {status.state}" + (f": {status.error_reason}" if status.error_reason else "")
    return _hold(ctx, Reason.POOL_UNHEALTHY, why)


def pool_busy(_wanted: int, ctx: CapContext) -> Limit | None:
    """One operation at a time, and none while the pool is not running."""
    if ctx.status.in_flight is not None:
        return _hold(ctx, Reason.POOL_BUSY, "an operation of ours is in flight")
    if not ctx.status.is_running:
        return _hold(ctx, Reason.POOL_BUSY, f"pool is {ctx.status.state}")
    return None


def bounds(wanted: int, ctx: CapContext) -> Limit | None:
    """--min and --max."""
    settings = ctx.settings
    if ctx.up:
        return _ceiling(wanted, ctx, settings.max_size, Reason.AT_MAX,
                        f"max is {settings.max_size}")  # fmt: skip
    floor = settings.min_size
    return Limit(max(wanted, min(ctx.size, floor)), Reason.AT_MIN, f"min is {floor}")


def cost_cap(wanted: int, ctx: CapContext) -> Limit | None:
    """--max-hourly-cost ÷ --price-per-member-hour members at most."""
    most = ctx.settings.cost_cap_size
    if not ctx.up or most is None:
        return None
    return _ceiling(wanted, ctx, most, Reason.AT_MAX, f"hourly cost cap allows {most} members")


def quota(wanted: int, ctx: CapContext) -> Limit | None:
    """What the organisation's instance quota would refuse is not asked for: on Exoscale a
    partly refused scale-up leaves the pool degraded (cluster-autoscaler's Exoscale provider
    reads the same "instance" quota)."""
    room = ctx.status.quota_room
    if not ctx.up or room is None:
        return None
    detail = (
        "the organisation's instance quota is used up"
        if room <= 0
        else f"the organisation's instance quota allows {room} more"
    )
    return _ceiling(wanted, ctx, ctx.size + room, Reason.QUOTA, detail)


def warm_up(wanted: int, ctx: CapContext) -> Limit | None:
    """While members of our last scale-up warm, an up wish gets no more than the value asks
    for: the alert firing alone is no reason, the capacity asked for covers it (AWS's instance
    warm-up; HPA's not-ready pods)."""
    if not ctx.up or ctx.warming <= 0:
        return None
    desired = ctx.wish.desired
    detail = f"{ctx.warming} member(s) asked for are not serving, or not in the value, yet" + (
        "" if desired is None else f"; the value asks for {desired}"
    )
    return _ceiling(wanted, ctx, ctx.size if desired is None else desired, Reason.WARMING_UP,
                    detail)  # fmt: skip


def step_limit(wanted: int, ctx: CapContext) -> Limit | None:
    """--max-step members a tick. The step policy's ±--step is its own limit, and so is the
    demand policy's growth limit on a scale-up sized from the signals (strategy/demand.py):
    the need is reached in one round, not --max-step at a time."""
    settings = ctx.settings
    if settings.policy == "step":
        return None
    if ctx.up and ctx.wish.need is not None:
        return None
    most = settings.max_step
    if ctx.up:
        return _ceiling(wanted, ctx, ctx.size + most, Reason.SCALED, f"at most +{most} a tick")
    return Limit(max(wanted, ctx.size - most), Reason.SCALED, f"at most -{most} a tick")


def dry_run(wanted: int, ctx: CapContext) -> Limit | None:
    """--dry-run: the size is decided and logged, never asked for."""
    if not ctx.settings.dry_run or wanted == ctx.size:
        return None
    return Limit(wanted, Reason.DRY_RUN, "dry run: decided, not carried out")


CAPS: tuple[Cap, ...] = (
    Cap("paused", paused),
    Cap("pool-unhealthy", pool_unhealthy),
    Cap("pool-busy", pool_busy),
    Cap("bounds", bounds),
    Cap("cost-cap", cost_cap),
    Cap("quota", quota),
    Cap("warm-up", warm_up),
    Cap("step-limit", step_limit),
    Cap("dry-run", dry_run),
)


@dataclass(frozen=True)
class Capping:
    """The wish after the caps: the size, each cap that changed it, and the last one's limit
    (which names the reason when the pool is held at its size)."""

    size: int
    trail: tuple[Capped, ...]
    last: Limit | None


def apply_caps(ctx: CapContext, caps: tuple[Cap, ...] = CAPS) -> Capping:
    """Every cap in order; dry-run counts as a change (it turns the wish into no call), and so
    does a gate that holds, which ends the list."""
    wanted = ctx.wish.size
    trail: list[Capped] = []
    last: Limit | None = None
    for cap in caps:
        limit = cap.allows(wanted, ctx)
        if limit is None:
            continue
        if limit.size != wanted or limit.holds or limit.reason is Reason.DRY_RUN:
            trail.append(Capped(cap.name, wanted, limit.size, limit.detail))
            wanted, last = limit.size, limit
        if limit.holds:
            break  # the pool stays as it is: nothing after a gate can change that
    return Capping(wanted, tuple(trail), last)
