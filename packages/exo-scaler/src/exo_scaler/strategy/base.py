"""What every strategy takes and returns (nomad-autoscaler's sdk/strategy.go `ScalingAction`:
the count a strategy wants and why, before any cap)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..intents import Direction, Intent
from ..settings import ScalerSettings
from ..target import PoolStatus

if TYPE_CHECKING:
    from .demand import Seen


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
    # The demand policy's: the members the demand needs, the signals it used and their age,
    # or why it fell back to the CPU policy.
    need: int | None = None
    fallback: str | None = None
    signals: Mapping[str, float] = field(default_factory=dict, hash=False)
    signals_age: float | None = None
    shedding: bool = False
    # A first step that is not the whole way (the demand policy's 2 first): the size to go
    # on to as soon as that step's operation has ended, without waiting for the next tick.
    then: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"direction": self.direction.value, "size": self.size, "why": self.why,
                "need": self.need, "fallback": self.fallback,
                "shedding": self.shedding, "then": self.then}  # fmt: skip


@dataclass(frozen=True)
class Inputs:
    """Everything a strategy may look at: the tick's intents (at least one), the pool's one
    status read, the settings, the members of our last scale-up an up decision counts as
    capacity (`warming`) and those not serving yet, whatever the direction
    (`provisioning`), the tick's wall clock, and the needs the demand policy saw over its
    scale-in window before this tick."""

    intents: Sequence[Intent]
    status: PoolStatus
    settings: ScalerSettings
    warming: int = 0
    provisioning: int = 0
    now: float = 0.0
    history: Sequence[Seen] = ()

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
