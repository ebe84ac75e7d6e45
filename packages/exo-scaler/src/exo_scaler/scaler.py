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
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from exo_client import ConflictError, ExoApiError

from .decision import Direction, Reason, ScaleDecision, action_label, decide
from .events import EventLog
from .intents import IntentBook
from .metrics import ScalerMetrics
from .record import DecisionRecord
from .settings import ScalerSettings
from .target import InFlight, Launched, PoolTarget

log = logging.getLogger("exo_scaler")


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
        taken = self.intents.take()
        for direction in Direction:
            self.metrics.pending_intents.labels(direction.value).set(0)
        self.ticks += 1
        self.metrics.last_tick.set(self.clock())
        launched: Launched | None = None
        try:
            pool = await self.target.status()
        except ExoApiError as exc:
            known = self.target.view
            size = known.size if known is not None else None
            decision = ScaleDecision(None, size, size, Reason.API_ERROR, taken, str(exc))
        else:
            decision = decide(
                taken,
                pool,
                self.settings,
                paused=self.paused,
                in_flight=self.target.in_flight is not None,
            )
            if decision.acts:
                decision, launched = await self._act(decision)
        self._record(decision, launched)
        return decision

    async def close(self) -> None:
        await self.target.close()

    async def _act(self, decision: ScaleDecision) -> tuple[ScaleDecision, Launched | None]:
        try:
            return decision, await self.target.scale(decision)
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
        }
