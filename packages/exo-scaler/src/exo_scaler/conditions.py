"""What needs a person, surfaced once: on /status `conditions`, a metric, one loud log line.

- `PoolUnhealthy`: the pool stays `suspended`/`degraded` beyond --unhealthy-after; it will not
  recover by itself, where it would otherwise just look busy.
- `NlbUnreadable`: the NLB's health cannot be read — get-load-balancer refused (a role
  without it), or the NLB has no service for the pool any more. The scaler keeps running;
  members count as warming until --warm-up-limit, so scale-ups wait that long for a measure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("exo_scaler")


@dataclass
class Condition:
    type: str
    since: float
    detail: str = ""
    state: str = ""
    surfaced: bool = False

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"type": self.type, "since": self.since, "detail": self.detail}
        if self.state:
            found["state"] = self.state
        return found


class Conditions:
    def __init__(self, unhealthy_after: float) -> None:
        self.unhealthy_after = unhealthy_after
        self.unhealthy: Condition | None = None
        self.nlb: Condition | None = None

    def pool_state(self, state: str, detail: str, now: float) -> None:
        if state not in ("suspended", "degraded"):
            if self.unhealthy is not None and self.unhealthy.surfaced:
                log.warning("pool is %s again after being %s", state, self.unhealthy.state)
            self.unhealthy = None
            return
        if self.unhealthy is None or self.unhealthy.state != state:
            self.unhealthy = Condition("PoolUnhealthy", now, detail, state)
        self.unhealthy.detail = detail
        sick = self.unhealthy
        if not sick.surfaced and now - sick.since >= self.unhealthy_after:
            sick.surfaced = True
            log.warning("pool has been %s for %.0fs (%s); it will not recover by itself",
                        state, now - sick.since, detail or "no reason given")  # fmt: skip

    def nlb_health(self, refused: str | None, now: float, *, warm_up_limit: float) -> None:
        """`refused`: why the NLB's health could not be read, None once it could."""
        if refused is None:
            if self.nlb is not None:
                log.warning("the NLB's health checks are readable again")
            self.nlb = None
            return
        if self.nlb is None:
            log.error(
                "NLB UNREADABLE: %s. exo-scaler keeps running, but it cannot tell which "
                "members serve: a scale-up's members count as warming for --warm-up-limit "
                "(%.0fs). Grant the key get-load-balancer on this NLB, or fix --nlb.",
                refused,
                warm_up_limit,
            )
            self.nlb = Condition("NlbUnreadable", now, refused, surfaced=True)
        self.nlb.detail = refused

    @property
    def pool_unhealthy(self) -> bool:
        return self.unhealthy is not None and self.unhealthy.surfaced

    def to_json(self) -> list[dict[str, Any]]:
        return [c.to_json() for c in (self.unhealthy, self.nlb) if c is not None and c.surfaced]
