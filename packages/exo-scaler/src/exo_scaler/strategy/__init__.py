"""Strategies: pure functions from the tick's `Inputs` to a `Wish` (the caps come after).

| policy | module |
|---|---|
| `step` | step.py: the seed's ±step a tick |
| `proportional` | proportional.py: from the alert's CPU value |
| `demand` | demand.py: from the arrival rate and the CPU per request (the default) |

`TRIGGERS` says which alerts each policy acts on (webhooks.py): the CPU policies are the
seed's and act on the CPU rules alone; the demand policy sizes from arrivals, so it also acts
on the faster shedding rule, and a stray shed on a pool that covers the demand asks for
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..webhooks import ALL_TRIGGERS, CPU_TRIGGERS
from .base import Inputs, Strategy, Wish
from .demand import NeedWindow, demand
from .proportional import proportional
from .step import step

STRATEGIES: Mapping[str, Strategy] = {"step": step, "proportional": proportional, "demand": demand}
TRIGGERS: Mapping[str, frozenset[str]] = {
    "step": CPU_TRIGGERS,
    "proportional": CPU_TRIGGERS,
    "demand": ALL_TRIGGERS,
}

__all__ = ["STRATEGIES", "TRIGGERS", "Inputs", "NeedWindow", "Strategy", "Wish"]
