"""The scaling decision: a pure function of the tick's intents, the pool and the settings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

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

    @property
    def is_running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class ScaleDecision:
    action: Direction | None  # the direction wanted; None when nothing was wanted
    from_size: int | None
    to_size: int | None
    reason: Reason
    intents: tuple[Intent, ...] = ()  # what the tick took, one per direction
    detail: str = ""

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
) -> ScaleDecision:
    """Up wins over down; the new size moves by `step` within [min, effective max]."""
    taken = tuple(intents)
    size = pool.size
    if paused:
        return ScaleDecision(None, size, size, Reason.PAUSED, taken)
    if not taken:
        return ScaleDecision(None, size, size, Reason.NO_INTENT)
    wanted = {i.direction for i in taken}
    direction = Direction.UP if Direction.UP in wanted else Direction.DOWN
    if in_flight or not pool.is_running:
        why = "an operation of ours is in flight" if in_flight else f"pool is {pool.state}"
        return ScaleDecision(direction, size, size, Reason.POOL_BUSY, taken, why)
    if direction is Direction.UP:
        ceiling = settings.effective_max
        target = min(size + settings.step, ceiling)
        if target <= size:
            cap = settings.cost_cap_size
            detail = (
                f"hourly cost cap allows {cap} members"
                if cap is not None and cap < settings.max_size
                else f"max is {settings.max_size}"
            )
            return ScaleDecision(direction, size, size, Reason.AT_MAX, taken, detail)
    else:
        target = max(size - settings.step, settings.min_size)
        if target >= size:
            detail = f"min is {settings.min_size}"
            return ScaleDecision(direction, size, size, Reason.AT_MIN, taken, detail)
    reason = Reason.DRY_RUN if settings.dry_run else Reason.SCALED
    return ScaleDecision(direction, size, target, reason, taken)
