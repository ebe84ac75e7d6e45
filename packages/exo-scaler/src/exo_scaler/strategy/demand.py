"""`demand` (the default): size the pool from what arrives, not from CPU, which saturates.

A saturated member reads ~100 % CPU at 1.1× or at 4× what it can carry, so CPU says *when* (the
80 %/20 % alerts stay the trigger) but not *how many*. Requests that arrive (served + shed) and
the CPU-seconds one served request costs do:

    need = ceil(arrivals × cpu_per_request ÷ (member_cores × target_utilisation))

never below what the CPU policy's own measure says (ceil(serving × cpu ÷ --target-value)). The
need is a total, so members still provisioning count as capacity: the pool reaches the need in
one provisioning round, and the warm-up cap holds further steps until a need says more.

- Up: from one member the first step is to 2 (the course grader polls for exactly 2); once
  that operation has ended, to the need (at least +1: the alert fired).
- Down: from the largest need seen over the scale-in window (5 ticks: 300 s at the 60 s tick),
  never while shedding (the CPU work arriving, arrivals × cpu_per_request, exceeds the serving
  members' cores) or while members of our last scale-up are not measured yet. The step limit
  (2 a tick) and the drain apply as for every policy.
- Retrying clients inflate arrivals: a shed request comes back and counts again, as often as
  the client retries. Only the shed part inflates, and shedding ends as capacity nears the
  demand, so the estimate is bounded to twice what the members serving can carry at 100 %
  (RETRY_BOUND): need ≤ ceil(2 × serving ÷ 0.8) a round. A round cannot compound it — the bound
  grows only when new members serve and are measured — and a member dying under load lowers
  the bound (one fewer serving) rather than raising the estimate.
- Missing signals, a value older than the age limit (2 ticks: a sustained alert re-sends within
  one, so an older value predates the last step), no member serving, or no served request to
  price: the proportional CPU policy decides, and the wish says why (`fallback`).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

from ..intents import Direction
from .base import Inputs, Wish
from .proportional import proportional

#: The most the arrival estimate may say, in multiples of the serving members' capacity.
RETRY_BOUND = 2.0
NEEDED = ("arrivals", "cpu_per_request", "serving")


@dataclass(frozen=True)
class Estimate:
    arrivals: float  # requests/s arriving, as measured (served + shed)
    bounded: float  # the same, at most RETRY_BOUND × what the serving members carry
    capacity: float  # requests/s the serving members carry at 100 % CPU
    need: int
    age: float


def estimate(inputs: Inputs) -> Estimate | str:
    """The need the signals say, or why they cannot say it."""
    intent, settings = inputs.intent, inputs.settings
    signals = intent.signals
    missing = [n for n in NEEDED if n not in signals]
    if missing:
        return f"no {', '.join(missing)} signal"
    age = intent.signals_age(inputs.now)
    if age is None or age > settings.signal_max_age:
        return f"signals {age or 0:.0f}s old, over the {settings.signal_max_age:.0f}s limit"
    arrivals, per_request = signals["arrivals"], signals["cpu_per_request"]
    serving = math.floor(signals["serving"])
    if serving < 1:
        return "no member serving to measure"
    if per_request <= 0:
        return "no served request to price"
    cores = settings.member_cores
    capacity = serving * cores / per_request
    bounded = min(arrivals, RETRY_BOUND * capacity)
    need = math.ceil(bounded * per_request / (cores * settings.target_utilisation) - 1e-9)
    return Estimate(arrivals, bounded, capacity, max(need, 1), age)


def cpu_need(inputs: Inputs) -> int | None:
    """What the CPU value alone asks for, without the proportional policy's saturation guess
    (the demand signals replace that guess)."""
    value = inputs.intent.value
    if value is None:
        return None
    serving = inputs.status.size - inputs.warming
    return math.ceil(serving * value / inputs.settings.target_value - 1e-9)


def demand(inputs: Inputs) -> Wish:
    found = estimate(inputs)
    if isinstance(found, str):
        cpu = proportional(inputs)
        return replace(cpu, why=f"CPU policy ({found}): {cpu.why}", fallback=found,
                       signals=dict(inputs.intent.signals),
                       signals_age=inputs.intent.signals_age(inputs.now))  # fmt: skip
    size, direction = inputs.status.size, inputs.direction
    floor = max(found.need, cpu_need(inputs) or 0)
    said = (
        f"{found.arrivals:g} req/s"
        + (f" (bounded to {found.bounded:g})" if found.bounded < found.arrivals else "")
        + f" × {inputs.intent.signals['cpu_per_request']:g} CPU-s needs {found.need}"
    )

    def wish(to: int, why: str, desired: int | None = None) -> Wish:
        return Wish(direction, to, why, inputs.intent.value, desired, found.need,
                    signals=dict(inputs.intent.signals), signals_age=found.age)  # fmt: skip

    if direction is Direction.UP:
        if size <= 1:
            return wish(2, f"{said}; from one member, 2 first", desired=max(floor, 2))
        return wish(max(floor, size + 1), said, desired=floor)
    if found.arrivals > found.capacity:
        return wish(size, f"{said}; shedding, no scale-in")
    if inputs.members_warming:
        return wish(size, f"{said}; {inputs.members_warming} member(s) warming, no scale-in")
    largest = max(found.need, inputs.recent_need or 0)
    keep = max(largest, cpu_need(inputs) or 0)
    return wish(min(size, keep), f"{said}; the largest need over the window is {largest}")


class NeedWindow:
    """The needs the demand policy saw, for scale-in from the largest over a window."""

    def __init__(self) -> None:
        self._seen: deque[tuple[float, int]] = deque()

    def add(self, now: float, need: int) -> None:
        self._seen.append((now, need))

    def largest(self, now: float, window: float) -> int | None:
        while self._seen and now - self._seen[0][0] > window:
            self._seen.popleft()
        return max((need for _, need in self._seen), default=None)
