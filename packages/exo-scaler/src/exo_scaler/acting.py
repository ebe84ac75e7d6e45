"""Carrying out an acting decision: grow, or choose the members that leave, drain, evict.

The scaler's side of a scale-down (nomad-autoscaler's scale-in: the node selector and the
drain are the autoscaler's, the target only terminates what it is told). The members come
from the tick's one status read; with --drain-seconds each is asked to drain first, and put
back in service if its evict is refused or its operation does not end in success, since a
drained member left in the pool serves nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

import httpx

from exo_client import ExoApiError

from .decision import Decision
from .drain import request_drain, request_resume
from .events import EventLog
from .intents import Direction
from .selection import choose_members, query_busy
from .settings import ScalerSettings
from .target import InFlight, Launched, Member, OnEnd, PoolStatus, PoolTarget

log = logging.getLogger("exo_scaler.acting")


class Actuator:
    def __init__(
        self,
        settings: ScalerSettings,
        target: PoolTarget,
        *,
        events: EventLog,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.target = target
        self.events = events
        self.http = http
        self.clock = clock
        self.preparing: InFlight | None = None  # selecting or draining, before the call

    @property
    def in_flight(self) -> InFlight | None:
        """What /status shows: our preparation, then the target's operation."""
        return self.preparing or self.target.in_flight

    async def act(
        self, decision: Decision, status: PoolStatus, *, on_grown: OnEnd | None = None
    ) -> Launched:
        """Start what `decision` asks for; ExoApiError when nothing was started. `on_grown`
        is told how a scale-up's operation ended."""
        if decision.action is None or decision.to_size is None or decision.from_size is None:
            raise ValueError(f"nothing to do in a {decision.reason} decision")
        if decision.action is Direction.UP:
            return await self.target.grow(decision.to_size, on_end=on_grown)
        self.preparing = InFlight(
            Direction.DOWN, "selecting", self.clock(), decision.from_size, decision.to_size
        )
        try:
            leaving = await self.choose(decision.from_size - decision.to_size, status)
            self.preparing.members = [m.id for m in leaving]
            drained = await self.drain(leaving)
            self.preparing = None
            try:
                return await self.target.evict(leaving, on_end=self._resume_unless(drained))
            except ExoApiError:
                await self.resume(drained, "evict refused")
                raise
        finally:
            self.preparing = None

    async def choose(self, count: int, status: PoolStatus) -> list[Member]:
        """The `count` members to evict, per --scale-down-policy."""
        if status.members is None:
            why = status.members_error or "the members were not read"
            raise ExoApiError(f"cannot choose who leaves: {why}", operation="list-instances")
        settings = self.settings
        busy = None
        if settings.scale_down_policy == "least-busy" and settings.prometheus_url:
            try:
                busy = await query_busy(self.http, settings.prometheus_url, settings.busy_query)
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("Prometheus query failed (%s); evicting the newest instead", exc)
        chosen = choose_members(status.members, count, settings.scale_down_policy, busy)
        if not chosen:
            raise ExoApiError("the pool lists no member that can leave", operation="list-instances")
        return chosen

    async def drain(self, members: Sequence[Member]) -> list[str]:
        """Ask each leaving member to drain, then wait --drain-seconds; the addresses asked."""
        settings, token = self.settings, self.settings.drain_token
        if not settings.drain_enabled or not token:
            return []
        assert self.preparing is not None
        self.preparing.phase = "draining"
        addresses = [m.public_ip for m in members if m.public_ip]
        drained = await asyncio.gather(
            *(request_drain(self.http, settings.drain_url, ip, token) for ip in addresses)
        )
        self.events.emit(
            "drain",
            time=self.clock(),
            members=[m.id for m in members],
            accepted=sum(drained),
            wait_seconds=settings.drain_seconds,
        )
        await asyncio.sleep(settings.drain_seconds)
        return addresses

    def _resume_unless(self, drained: list[str]) -> OnEnd | None:
        async def on_end(result: str) -> None:
            # The evict was accepted but did not end in success (failure, timeout, or our own
            # deadline): its members may stay in the pool, drained. Resuming one that does
            # leave after all costs nothing.
            if result != "success":
                await self.resume(drained, f"evict operation ended {result}")

        return on_end if drained else None

    async def resume(self, addresses: Sequence[str], why: str) -> None:
        """Put drained members back in service (their evict will not remove them)."""
        token = self.settings.drain_token
        if not addresses or not token:
            return
        resumed = await asyncio.gather(
            *(request_resume(self.http, self.settings.drain_url, ip, token) for ip in addresses)
        )
        self.events.emit(
            "resume", time=self.clock(), addresses=list(addresses), why=why, ok=sum(resumed)
        )
