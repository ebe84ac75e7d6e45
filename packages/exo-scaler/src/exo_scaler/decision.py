"""The scaling decision: a pure function of the tick's intents, the pool and the settings."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from exo_client import POOL_UNHEALTHY_STATES

from .intents import Direction, Intent
from .settings import ScalerSettings

__all__ = ["Direction", "PoolView", "Reason", "ScaleDecision", "action_label", "decide"]


class Reason(StrEnum):
    SCALED = "scaled"
    AT_MAX = "at-max"
    AT_MIN = "at-min"
    NO_INTENT = "no-intent"
    POOL_BUSY = "pool-busy"
    API_ERROR = "api-error"
    DRY_RUN = "dry-run"
    PAUSED = "paused"
    # Added in the second design round: readers of older logs never meet them.
    WARMING_UP = "warming-up"  # capacity asked for and not serving yet already covers it
    POOL_UNHEALTHY = "pool-unhealthy"  # suspended/degraded: not busy, it will not pass alone
    QUOTA = "quota"  # the organisation's quota refused the scale


def action_label(action: Direction | None) -> str:
    """How an action is written in logs and metric labels: `up`, `down` or `none`."""
    return "none" if action is None else action.value


@dataclass(frozen=True)
class PoolView:
    """The pool as the API described it at the last read (never a local counter)."""

    size: int
    state: str
    id: str = ""
    name: str = ""
    error_reason: str = ""  # why the API says a suspended/degraded pool is so

    @property
    def is_running(self) -> bool:
        return self.state == "running"

    @property
    def is_unhealthy(self) -> bool:
        return self.state in POOL_UNHEALTHY_STATES


@dataclass(frozen=True)
class ScaleDecision:
    action: Direction | None  # the direction wanted; None when nothing was wanted
    from_size: int | None
    to_size: int | None
    reason: Reason
    intents: tuple[Intent, ...] = ()  # what the tick took, one per direction
    detail: str = ""
    policy: str = ""
    value: float | None = None  # the measured value the policy used
    desired: int | None = None  # the size the value asks for, before the clamps
    warming: int = 0  # members asked for and not serving yet, counted as capacity

    @property
    def acts(self) -> bool:
        """True when the decision asks for a call to the API."""
        return self.reason is Reason.SCALED

    def with_failure(self, reason: Reason, detail: str) -> ScaleDecision:
        """The same decision, reported as not carried out."""
        return replace(self, to_size=self.from_size, reason=reason, detail=detail)


def decide(
    intents: Sequence[Intent],
    pool: PoolView,
    settings: ScalerSettings,
    *,
    paused: bool = False,
    in_flight: bool = False,
    warming: int = 0,
    quota_room: int | None = None,
) -> ScaleDecision:
    """Up wins over down; the new size stays within [min, effective max].

    `step` policy: ±`step` a tick (the seed's literal rule). `proportional`: target tracking
    inside the webhook design — desired = ceil(serving × value / target_value), the value
    being the alert's (an average over the members that serve), serving = size - `warming`;
    at least ±1 (the alert fired), at most ±`max_step` a tick. While asked-for members are
    still `warming`, an up intent adds nothing unless the value asks for more than the size
    already asked for (AWS's instance warm-up; HPA's not-ready pods). At or above
    `saturation` the value cannot tell how much is missing, so desired is at least twice what
    serves. Without a value the
    proportional policy steps by `step`, except that it waits for warming members.
    `quota_room`, the instances the organisation's quota still allows (None: unlimited or
    unknown), lowers the ceiling of a scale-up: what the quota would refuse is not asked for.
    """
    taken = tuple(intents)
    size = pool.size
    policy = settings.policy
    if paused:
        return ScaleDecision(None, size, size, Reason.PAUSED, taken, policy=policy)
    if not taken:
        return ScaleDecision(None, size, size, Reason.NO_INTENT, policy=policy)
    wanted = {i.direction: i for i in taken}
    direction = Direction.UP if Direction.UP in wanted else Direction.DOWN
    value = wanted[direction].value if policy == "proportional" else None
    warming = max(0, min(warming, size)) if policy == "proportional" else 0

    def kept(reason: Reason, detail: str = "", desired: int | None = None) -> ScaleDecision:
        return ScaleDecision(
            direction, size, size, reason, taken, detail, policy, value, desired, warming
        )

    if pool.is_unhealthy:
        why = f"pool is {pool.state}" + (f": {pool.error_reason}" if pool.error_reason else "")
        return kept(Reason.POOL_UNHEALTHY, why)
    if in_flight or not pool.is_running:
        return kept(
            Reason.POOL_BUSY,
            "an operation of ours is in flight" if in_flight else f"pool is {pool.state}",
        )
    serving = size - warming
    desired = (
        math.ceil(serving * value / settings.target_value - 1e-9) if value is not None else None
    )
    saturated = value is not None and value >= settings.saturation
    if desired is not None and direction is Direction.UP and saturated and not warming:
        # A saturated member reads ~100 % however much load waits: the value is a floor, not a
        # measure. Double what serves, as Kubernetes' HPA does by default when scaling up
        # (behavior.scaleUp: 100 % per period), still at most max_step a tick. Not while
        # members warm: they are about to take load, and the next reading will say more.
        desired = max(desired, 2 * serving)
    if direction is Direction.UP:
        ceiling = settings.effective_max
        if quota_room is not None and size + quota_room < ceiling:
            if quota_room <= 0:
                return kept(Reason.QUOTA, "the organisation's instance quota is used up", desired)
            ceiling = size + quota_room
        if size >= ceiling:
            cap = settings.cost_cap_size
            detail = (
                f"hourly cost cap allows {cap} members"
                if cap is not None and cap < settings.max_size
                else f"max is {settings.max_size}"
            )
            return kept(Reason.AT_MAX, detail, desired)
        if policy == "step":
            target = size + settings.step
        elif warming and (desired is None or desired <= size):
            return kept(
                Reason.WARMING_UP,
                f"{warming} member(s) asked for are not serving, or not in the value, yet"
                + ("" if desired is None else f"; the value asks for {desired}"),
                desired,
            )
        else:
            target = size + settings.step if desired is None else max(desired, size + 1)
            target = min(target, size + settings.max_step)
        target = min(target, ceiling)
    else:
        if size <= settings.min_size:
            return kept(Reason.AT_MIN, f"min is {settings.min_size}", desired)
        if policy == "step" or desired is None:
            target = size - settings.step
        else:
            target = max(min(desired, size - 1), size - settings.max_step)
        target = max(target, settings.min_size)
    reason = Reason.DRY_RUN if settings.dry_run else Reason.SCALED
    return ScaleDecision(
        direction, size, target, reason, taken, "", policy, value, desired, warming
    )
