"""`step`: the seed's literal rule, ±`--step` a tick whatever the alert says."""

from __future__ import annotations

from ..intents import Direction
from .base import Inputs, Wish


def step(inputs: Inputs) -> Wish:
    size, by = inputs.status.size, inputs.settings.step
    if inputs.direction is Direction.UP:
        return Wish(Direction.UP, size + by, f"+{by} a tick (step policy)")
    return Wish(Direction.DOWN, size - by, f"-{by} a tick (step policy)")
