"""The scaling decision: a pure function of the tick's intents, the pool and the settings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from .settings import ScalerSettings


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"


class Reason(StrEnum):
    SCALED = "scaled"
    AT_MAX = "at-max"
    AT_MIN = "at-min"
    NO_INTENT = "no-intent"
    POOL_BUSY = "pool-busy"
    API_ERROR = "api-error"
    DRY_RUN = "dry-run"
    PAUSED = "paused"


@dataclass(frozen=True)
class PoolView:
    """What the API said about the pool this tick (never a local counter)."""

    size: int
    state: str

    @property
    def is_running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class ScaleDecision:
    action: str  # "up", "down" or "none"
    from_size: int | None
    to_size: int | None
    reason: Reason
    intents: tuple[Direction, ...] = ()
    detail: str = ""

    @property
    def acts(self) -> bool:
        """True when the decision asks for a call to the API."""
        return self.reason is Reason.SCALED

    def with_failure(self, reason: Reason, detail: str) -> ScaleDecision:
        """The same decision, reported as not carried out."""
        return ScaleDecision(
            self.action, self.from_size, self.from_size, reason, self.intents, detail
        )


def decide(
    intents: Iterable[Direction],
    pool: PoolView,
    settings: ScalerSettings,
    *,
    paused: bool = False,
    in_flight: bool = False,
) -> ScaleDecision:
    """Up wins over down; the new size moves by `step` within [min, effective max]."""
    wanted = tuple(sorted(set(intents)))
    size = pool.size
    if paused:
        return ScaleDecision("none", size, size, Reason.PAUSED, wanted)
    if not wanted:
        return ScaleDecision("none", size, size, Reason.NO_INTENT)
    direction = Direction.UP if Direction.UP in wanted else Direction.DOWN
    if in_flight or not pool.is_running:
        why = "an operation of ours is in flight" if in_flight else f"pool is {pool.state}"
        return ScaleDecision(direction.value, size, size, Reason.POOL_BUSY, wanted, why)
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
            return ScaleDecision("up", size, size, Reason.AT_MAX, wanted, detail)
    else:
        target = max(size - settings.step, settings.min_size)
        if target >= size:
            detail = f"min is {settings.min_size}"
            return ScaleDecision("down", size, size, Reason.AT_MIN, wanted, detail)
    reason = Reason.DRY_RUN if settings.dry_run else Reason.SCALED
    return ScaleDecision(direction.value, size, target, reason, wanted)
