"""What every strategy takes and returns (nomad-autoscaler's sdk/strategy.go `ScalingAction`:
the count a strategy wants and why, before any cap)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..intents import Direction, Intent
from ..settings import ScalerSettings
from ..target import PoolStatus


@dataclass(frozen=True)
class Wish:
    """The size a strategy wants, before the caps; `why` says how it got there."""

    direction: Direction
    size: int
    why: str
    value: float | None = None  # the measured value it used
    # The size the measurement alone asks for (the wish may add the ±1 an alert is worth);
    # the warm-up cap holds an up wish to it while asked-for members warm.
    desired: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"direction": self.direction.value, "size": self.size, "why": self.why}


@dataclass(frozen=True)
class Inputs:
    """Everything a strategy may look at: the tick's intents (at least one), the pool's one
    status read, the settings, and the members of our last scale-up still warming."""

    intents: Sequence[Intent]
    status: PoolStatus
    settings: ScalerSettings
    warming: int = 0

    @property
    def direction(self) -> Direction:
        """Up wins over down."""
        wanted = {i.direction for i in self.intents}
        return Direction.UP if Direction.UP in wanted else Direction.DOWN

    @property
    def intent(self) -> Intent:
        """The intent of the winning direction."""
        return next(i for i in self.intents if i.direction is self.direction)


class Strategy(Protocol):
    def __call__(self, inputs: Inputs) -> Wish: ...
