"""Strategies: pure functions from the tick's `Inputs` to a `Wish` (the caps come after).

| policy | module |
|---|---|
| `step` | step.py: the seed's ±step a tick |
| `proportional` | proportional.py: from the alert's CPU value |
| `demand` | demand.py: from the arrival rate and the CPU per request (the default) |
"""

from __future__ import annotations

from collections.abc import Mapping

from .base import Inputs, Strategy, Wish
from .demand import NeedWindow, demand
from .proportional import proportional
from .step import step

STRATEGIES: Mapping[str, Strategy] = {"step": step, "proportional": proportional, "demand": demand}

__all__ = ["STRATEGIES", "Inputs", "NeedWindow", "Strategy", "Wish"]
