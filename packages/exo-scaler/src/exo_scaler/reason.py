"""Why a decision ended as it did: the `reason` of every decision record."""

from __future__ import annotations

from enum import StrEnum

from .intents import Direction


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
    # Added with the caps: the strategy itself wants the size the pool has.
    AT_NEED = "at-need"


def action_label(action: Direction | None) -> str:
    """How an action is written in logs and metric labels: `up`, `down` or `none`."""
    return "none" if action is None else action.value
