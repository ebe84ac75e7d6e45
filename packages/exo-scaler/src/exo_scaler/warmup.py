"""Warm-up: capacity asked for and not measured yet counts as capacity (AWS Auto Scaling's
instance warm-up; HPA's not-ready pods).

The clock is the scaler's wall clock (`time.time`, the clock intents are stamped with). After
a scale-up from F to N members, the scale-up warms until one of these ends it:

1. its members all serve (the NLB's health check passes, or without --nlb the VM runs) — seen
   at `ready_at`, read each tick until then — and then an up intent's value was taken at
   least --warm-up seconds after `ready_at` (a value from earlier averages a rate window
   taken, in part, before they took load); an up intent without a value (a bare GET /up) has
   nothing to measure, so the time alone ends it. A value is taken when its request arrived
   or, where the signals say when they were evaluated, then: a notifier re-sends a firing
   alert's values up to its resend delay after evaluating them (30–60 s), so arrival alone
   ended warm-ups on a window that still averaged the load before the members served, and
   the next step went past the need;
2. --warm-up-limit seconds pass since the scale-up (a member that never serves must not block
   scaling);
3. the pool is back at or below F (the operation failed, or someone scaled in);
4. we scale down (fewer members than any scale-up asked for).

While it warms, the members counted as warming are those of N not serving yet (min(N, size)
when someone scaled in part of it), and all N − F once they serve, until 1. A scale-up on top
of a warming one starts from the first one's F: the value still measures only those members.
Only an up decision is sized against warming members: a down intent's value is about the
members serving now, and waiting would only keep them longer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .intents import Direction, Intent
from .settings import ScalerSettings
from .target import PoolStatus

log = logging.getLogger("exo_scaler.warmup")


@dataclass
class WarmUp:
    since: float  # when the scale-up was decided
    from_size: int  # the members the value measured before it
    to_size: int
    ready_at: float | None = None  # when every asked-for member was first seen serving


class WarmUpTracker:
    def __init__(self, settings: ScalerSettings) -> None:
        self.settings = settings
        self.current: WarmUp | None = None
        self.members_warming = 0  # at the last tick, for /metrics

    def needs_members(self, now: float) -> bool:
        """Whether this tick must read who serves: until they all do, and no longer."""
        warm = self.current
        return (
            warm is not None
            and warm.ready_at is None
            and now - warm.since <= self.settings.warm_up_limit
        )

    def warming(self, intents: Sequence[Intent], status: PoolStatus, now: float) -> int:
        """Members of our last scale-up an up decision must count as capacity (rules above)."""
        warm = self.current
        if warm is None or self.settings.policy == "step":
            return 0
        if now - warm.since > self.settings.warm_up_limit:
            log.warning("scale-up to %d not measured after %.0fs; no longer waiting for it",
                        warm.to_size, now - warm.since)  # fmt: skip
            return self.end()
        if status.size <= warm.from_size:
            return self.end()
        wanted = min(warm.to_size, status.size)
        asked = wanted - warm.from_size
        warming = asked
        if warm.ready_at is None:
            serving = status.serving  # None: unknown, so every asked-for member warms
            if serving is not None and serving >= wanted:
                warm.ready_at = now
            elif serving is not None:
                warming = min(asked, wanted - serving)
        up = next((i for i in intents if i.direction is Direction.UP), None)
        measured_at = None if up is None else (up.value_at if up.value is not None else now)
        if (
            warm.ready_at is not None
            and measured_at is not None
            and measured_at - warm.ready_at >= self.settings.warm_up
        ):
            return self.end()
        self.members_warming = warming
        return warming if up is not None else 0

    @property
    def provisioning(self) -> int:
        """Members of our last scale-up not serving yet (at the last tick that looked); those
        that serve but are not measured yet are not counted."""
        warm = self.current
        return self.members_warming if warm is not None and warm.ready_at is None else 0

    def scaled(self, action: Direction, from_size: int, to_size: int, now: float) -> None:
        """A scale-up starts (or extends) a warm-up; a scale-down ends it."""
        if action is not Direction.UP:
            self.end()
            return
        since = self.current.from_size if self.current is not None else from_size
        self.current = WarmUp(now, min(since, from_size), to_size)

    def end(self) -> int:
        """No scale-up left to wait for: 0 members warming."""
        self.current = None
        self.members_warming = 0
        return 0

    def to_json(self, serving_from: str) -> dict[str, Any] | None:
        warm = self.current
        if warm is None:
            return None
        return {"since": warm.since, "from": warm.from_size, "to": warm.to_size,
                "ready_at": warm.ready_at, "serving_from": serving_from}  # fmt: skip
