"""The tick loop: take the intents, read the pool through the target, decide, act, record.

Size and state are read from the API every tick, so a restarted scaler never repeats a step;
the only local state is what is ours alone: pending intents, pause, and (in the target) the one
operation we have in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from exo_client import ConflictError, ExoApiError, QuotaExceededError

from .decision import Direction, PoolView, Reason, ScaleDecision, action_label, decide
from .events import EventLog
from .intents import Intent, IntentBook
from .metrics import ScalerMetrics
from .record import DecisionRecord
from .settings import ScalerSettings
from .target import InFlight, Launched, PoolTarget

log = logging.getLogger("exo_scaler")

#: Decisions kept in memory for GET /decisions: a day of one-minute ticks.
DECISION_RING = 1440


@dataclass
class WarmUp:
    """A scale-up whose new members the alert's value does not measure yet (AWS's instance
    warm-up; HPA's not-ready pods)."""

    since: float  # when the scale-up was decided
    from_size: int  # the members the value measured before it
    to_size: int
    ready_at: float | None = None  # when every asked-for member was first seen serving


@dataclass
class Unhealthy:
    """Since when the pool has been suspended/degraded, and whether we said so."""

    state: str
    since: float
    detail: str = ""
    surfaced: bool = False


class Scaler:
    def __init__(
        self,
        settings: ScalerSettings,
        target: PoolTarget,
        metrics: ScalerMetrics,
        *,
        events: EventLog,
        intents: IntentBook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.target = target
        self.metrics = metrics
        self.events = events
        self.intents = intents or IntentBook(clock)
        self.clock = clock
        self.paused = False
        self.ticks = 0
        self.last_decision: DecisionRecord | None = None
        self.decisions: deque[DecisionRecord] = deque(maxlen=DECISION_RING)
        self.warm_up: WarmUp | None = None
        self.unhealthy: Unhealthy | None = None
        self.quota_left: int | None = None  # at the last read; None: unlimited or unread
        self.quota_error: str | None = None
        metrics.pool_bounds.labels("min").set(settings.min_size)
        metrics.pool_bounds.labels("max").set(settings.effective_max)

    @property
    def in_flight(self) -> InFlight | None:
        return self.target.in_flight

    # -- recording --------------------------------------------------------------------------

    def record_intents(
        self,
        directions: Iterable[Direction],
        source: str,
        values: Mapping[Direction, float] | None = None,
    ) -> tuple[Direction, ...]:
        """One request naming `directions`; returns each direction recorded, once."""
        recorded = self.intents.record(directions, source, values)
        for direction in recorded:
            self.metrics.pending_intents.labels(direction.value).set(1)
        return recorded

    def record_intent(self, direction: Direction, source: str) -> None:
        self.record_intents((direction,), source)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.metrics.paused.set(1 if paused else 0)
        self.events.emit("paused" if paused else "resumed", time=self.clock())

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every `interval` seconds until `stop` is set; nothing in a tick ends the loop."""
        loop = asyncio.get_running_loop()
        interval = self.settings.interval
        next_at = loop.time() + interval
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, next_at - loop.time()))
                return
            try:
                await self.tick()
            except Exception:
                log.exception("tick failed; the loop goes on")
            # Missed ticks (a long drain, a slow API) are skipped, not bunched up.
            next_at = max(next_at + interval, loop.time())

    async def tick(self) -> ScaleDecision:
        now = self.clock()
        taken = self._fresh(self.intents.take(), now)
        for direction in Direction:
            self.metrics.pending_intents.labels(direction.value).set(0)
        self.ticks += 1
        self.metrics.last_tick.set(now)
        launched: Launched | None = None
        try:
            pool = await self.target.status()
        except ExoApiError as exc:
            known = self.target.view
            size = known.size if known is not None else None
            decision = ScaleDecision(
                None, size, size, Reason.API_ERROR, taken, str(exc), self.settings.policy
            )
        else:
            self._watch_health(pool.state, pool.error_reason, now)
            warming = await self._warming(taken, pool.size, now)
            decision = decide(
                taken,
                pool,
                self.settings,
                paused=self.paused,
                in_flight=self.target.in_flight is not None,
                warming=warming,
                quota_room=await self._quota_room(taken, pool),
            )
            if decision.acts:
                decision, launched = await self._act(decision)
            if decision.reason is Reason.SCALED:
                self._after_scaling(decision, now)
        if decision.reason is Reason.POOL_BUSY:
            # Kept for the first tick that can act (the pool stays busy about a minute per
            # member on Exoscale, so dropping them would lose whole steps); _fresh bounds it.
            self.intents.restore(taken)
        self._record(decision, launched)
        return decision

    def _fresh(self, taken: tuple[Intent, ...], now: float) -> tuple[Intent, ...]:
        """The intents still worth acting on: a kept one whose last request is older than
        --carry-ticks intervals is stale (a sustained alert re-sends long before that)."""
        ttl = self.settings.intent_ttl
        fresh = tuple(i for i in taken if now - i.last_at <= ttl)
        for intent in taken:
            if intent not in fresh:
                self.metrics.intents_expired.labels(intent.direction.value).inc()
                log.info("dropped a stale %s intent (last asked at %.0f)", intent.direction,
                         intent.last_at)  # fmt: skip
        return fresh

    def _after_scaling(self, decision: ScaleDecision, now: float) -> None:
        assert decision.from_size is not None and decision.to_size is not None
        if decision.action is not Direction.UP:
            self._end_warm_up()  # fewer members than any scale-up asked for
            return
        # A scale-up on top of a warming one: the value still measures only the members that
        # served before the first, so that is where this one starts from too.
        since = self.warm_up.from_size if self.warm_up is not None else decision.from_size
        self.warm_up = WarmUp(now, min(since, decision.from_size), decision.to_size)

    def _end_warm_up(self) -> int:
        """No scale-up left to wait for; 0 members warming."""
        self.warm_up = None
        self.metrics.warming.set(0)
        return 0

    async def _warming(self, taken: tuple[Intent, ...], size: int, now: float) -> int:
        """Members of our last scale-up whose load the up intent's value does not measure.

        Until every asked-for member serves (the NLB's health check passes, or with no --nlb
        the VM runs), the ones not serving. Then all of the scale-up's members, until an up
        intent's value arrives --warm-up seconds after the last began serving: a value from
        earlier averages a rate window taken (partly) before they took load. A member that
        never serves must not block scaling for ever: --warm-up-limit ends it. Until every
        member is seen serving the API is asked each tick, so `ready_at` is at most a tick late.
        """
        warm = self.warm_up
        if warm is None or self.settings.policy != "proportional":
            return 0
        if now - warm.since > self.settings.warm_up_limit:
            log.warning("scale-up to %d not measured after %.0fs; no longer waiting for it",
                        warm.to_size, now - warm.since)  # fmt: skip
            return self._end_warm_up()
        if size <= warm.from_size:
            # The pool is back where the scale-up started (its operation failed, or someone
            # else scaled in): nothing of it is left to wait for.
            return self._end_warm_up()
        wanted = min(warm.to_size, size)  # someone else may have scaled in part of it
        asked = wanted - warm.from_size
        warming = asked
        if warm.ready_at is None:
            try:
                serving = await self.target.serving()
            except ExoApiError:
                serving = None  # unknown: the members asked for count as not serving yet
            if serving is not None and serving >= wanted:
                warm.ready_at = now
            elif serving is not None:
                warming = min(asked, wanted - serving)
        up = next((i for i in taken if i.direction is Direction.UP), None)
        # A value must have arrived --warm-up after they all served; an intent without a value
        # (a bare GET /up) has nothing to measure, so the time alone ends the warm-up.
        measured_at = None if up is None else (up.value_at if up.value is not None else now)
        if (
            warm.ready_at is not None
            and measured_at is not None
            and measured_at - warm.ready_at >= self.settings.warm_up
        ):
            return self._end_warm_up()
        self.metrics.warming.set(warming)
        # Only an up decision is sized against warming members; a down intent's value is
        # about the members that serve now, and waiting would only keep them longer.
        return warming if up is not None else 0

    async def _quota_room(self, taken: tuple[Intent, ...], pool: PoolView) -> int | None:
        """The organisation's instance quota left, read when a scale-up is wanted and the
        pool could take it (as cluster-autoscaler's Exoscale provider reads "instance"); None
        when it cannot be read, which leaves the scale to the API's own refusal as before."""
        wanted = any(i.direction is Direction.UP for i in taken)
        if not wanted or self.paused or not pool.is_running or self.target.in_flight is not None:
            return None
        try:
            room = await self.target.quota_room()
        except ExoApiError as exc:
            if self.quota_error != str(exc):
                log.warning("cannot read the instance quota (%s); scaling up without it", exc)
            self.quota_error = str(exc)
            return None
        self.quota_error = None
        self.quota_left = room
        return room

    def _watch_health(self, state: str, detail: str, now: float) -> None:
        """Surface a pool that stays suspended/degraded beyond --unhealthy-after: a /status
        condition, a metric and one warning, where it would otherwise just look busy."""
        if state not in ("suspended", "degraded"):
            if self.unhealthy is not None and self.unhealthy.surfaced:
                log.warning("pool is %s again after being %s", state, self.unhealthy.state)
            self.unhealthy = None
            self.metrics.pool_unhealthy.set(0)
            return
        if self.unhealthy is None or self.unhealthy.state != state:
            self.unhealthy = Unhealthy(state, now, detail)
        self.unhealthy.detail = detail
        if not self.unhealthy.surfaced and now - self.unhealthy.since >= (
            self.settings.unhealthy_after
        ):
            self.unhealthy.surfaced = True
            self.metrics.pool_unhealthy.set(1)
            log.warning("pool has been %s for %.0fs (%s); it will not recover by itself",
                        state, now - self.unhealthy.since, detail or "no reason given")  # fmt: skip

    async def close(self) -> None:
        await self.target.close()

    async def _act(self, decision: ScaleDecision) -> tuple[ScaleDecision, Launched | None]:
        try:
            return decision, await self.target.scale(decision)
        except QuotaExceededError as exc:
            # Not busy: the next tick would be refused the same way (exo_client.errors).
            return decision.with_failure(Reason.QUOTA, str(exc)), None
        except ConflictError as exc:
            return decision.with_failure(Reason.POOL_BUSY, str(exc)), None
        except ExoApiError as exc:
            return decision.with_failure(Reason.API_ERROR, str(exc)), None

    # -- reporting --------------------------------------------------------------------------

    def _record(self, decision: ScaleDecision, launched: Launched | None) -> None:
        record = DecisionRecord.of(
            decision,
            time=self.clock(),
            pool=self.target.pool_id,
            tick=self.ticks,
            operation_id=launched.operation_id if launched else None,
            members=launched.members if launched else (),
            dry_run=self.settings.dry_run,
        )
        self.last_decision = record
        self.decisions.append(record)
        self.metrics.decisions.labels(action_label(decision.action), decision.reason.value).inc()
        self.events.decision(record)

    def status(self) -> dict[str, Any]:
        settings = self.settings
        view = self.target.view
        in_flight = self.target.in_flight
        return {
            "pool": {
                "ref": settings.pool,
                "id": view.id if view else None,
                "name": view.name if view else None,
                "size": view.size if view else None,
                "state": view.state if view else None,
            },
            "size": view.size if view else None,
            "state": view.state if view else None,
            "min": settings.min_size,
            "max": settings.max_size,
            "effective_max": settings.effective_max,
            "step": settings.step,
            "interval": settings.interval,
            "pending_intents": [i.to_json() for i in self.intents.pending()],
            "paused": self.paused,
            "dry_run": settings.dry_run,
            "ticks": self.ticks,
            "last_decision": self.last_decision.to_json() if self.last_decision else None,
            "in_flight": in_flight.to_json() if in_flight else None,
            "auth": "none" if settings.no_auth else "token",
            "policy": settings.policy,
            "warming": self._warm_up_json(),
            "quota_left": self.quota_left,
            "conditions": self.conditions(),
        }

    def decisions_since(self, since: float | None) -> list[DecisionRecord]:
        """The kept decisions (newest last), those taken at or after `since` when given."""
        return [r for r in self.decisions if since is None or r.time >= since]

    def conditions(self) -> list[dict[str, Any]]:
        """What needs a person: today, a pool suspended/degraded beyond --unhealthy-after."""
        sick = self.unhealthy
        if sick is None or not sick.surfaced:
            return []
        return [
            {
                "type": "PoolUnhealthy",
                "state": sick.state,
                "since": sick.since,
                "detail": sick.detail,
            }
        ]

    def _warm_up_json(self) -> dict[str, Any] | None:
        warm = self.warm_up
        if warm is None:
            return None
        return {
            "since": warm.since,
            "from": warm.from_size,
            "to": warm.to_size,
            "ready_at": warm.ready_at,
            "serving_from": "nlb" if self.settings.nlb else "vm-state",
        }
