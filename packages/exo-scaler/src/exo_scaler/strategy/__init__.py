"""Strategies: pure functions from the tick's `Inputs` to a `Wish` (the caps come after).

| policy | module |
|---|---|
| `step` | step.py: the seed's ±step a tick |
| `proportional` | proportional.py: from the alert's CPU value |
"""

from __future__ import annotations

from collections.abc import Mapping

from .base import Inputs, Strategy, Wish
from .proportional import proportional
from .step import step

STRATEGIES: Mapping[str, Strategy] = {"step": step, "proportional": proportional}

__all__ = ["STRATEGIES", "Inputs", "Strategy", "Wish"]
