"""`proportional`: target tracking inside the webhook design, from the alert's CPU value.

desired = ceil(serving × value / --target-value), the value being an average over the members
that serve (serving = size − warming). The alert fired, so the wish moves at least one member;
without a value it moves --step. At or above --saturation a member's CPU cannot say how much
load waits (it reads ~100 % at 1.1× or at 4× what it carries): desired is at least twice what
serves, as Kubernetes' HPA scales up by default (100 % per period) — but not while members
warm, since they are about to take load and the next reading will say more.
"""

from __future__ import annotations

import math

from ..intents import Direction
from .base import Inputs, Wish


def measured_need(inputs: Inputs) -> int | None:
    """The size the alert's value asks for, None without a value."""
    status, settings = inputs.status, inputs.settings
    value = inputs.intent.value
    if value is None:
        return None
    serving = status.size - inputs.warming
    desired = math.ceil(serving * value / settings.target_value - 1e-9)
    saturated = value >= settings.saturation
    if inputs.direction is Direction.UP and saturated and not inputs.warming:
        desired = max(desired, 2 * serving)
    return desired


def proportional(inputs: Inputs) -> Wish:
    size, step = inputs.status.size, inputs.settings.step
    value = inputs.intent.value
    desired = measured_need(inputs)
    if inputs.direction is Direction.UP:
        if desired is None:
            return Wish(Direction.UP, size + step, f"no value: +{step}")
        why = f"{value:g} on {size - inputs.warming} serving asks for {desired}"
        return Wish(Direction.UP, max(desired, size + 1), why, value, desired)
    if desired is None:
        return Wish(Direction.DOWN, size - step, f"no value: -{step}")
    why = f"{value:g} on {size - inputs.warming} serving asks for {desired}"
    return Wish(Direction.DOWN, min(desired, size - 1), why, value, desired)
