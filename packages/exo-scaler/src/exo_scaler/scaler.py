"""The tick loop: take intents, read the pool from the API, decide, act, track.

All state that matters for safety (size, busy or not) is read from the API every tick, so a
restarted scaler never repeats a step; the only local state is what is ours alone: pending
intents, pause, and the one operation we have in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from exo_client import ConflictError, ExoApiError, ExoClient, InstancePool, Operation

from .decision import Direction, PoolView, Reason, ScaleDecision, decide
from .decision_log import EventLog
from .drain import request_drain, request_resume
from .intents import IntentBook
from .metrics import ScalerMetrics
from .selection import choose_members, query_busy
from .settings import ScalerSettings
from .threads import in_worker_thread

log = logging.getLogger("exo_scaler")


@dataclass
class InFlight:
    action: str
    phase: str  # selecting | draining | calling | waiting
    started_at: float
    from_size: int | None
    to_size: int | None
    operation_id: str | None = None
    members: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "phase": self.phase,
            "started_at": self.started_at,
            "from": self.from_size,
            "to": self.to_size,
            "operation_id": self.operation_id,
            "members": list(self.members),
        }


class Scaler:
    def __init__(
        self,
        settings: ScalerSettings,
        client: ExoClient,
        metrics: ScalerMetrics,
        *,
        events: EventLog,
        http: httpx.AsyncClient,
        intents: IntentBook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.client = client
        self.metrics = metrics
        self.events = events
        self.http = http
        self.intents = intents or IntentBook(clock)
        self.clock = clock
        self.paused = False
        self.ticks = 0
        self.pool: InstancePool | None = None
        self.last_decision: dict[str, Any] | None = None
        self.in_flight: InFlight | None = None
        self._pool_id: str | None = None
        self._tracker: asyncio.Task[None] | None = None
        metrics.pool_bounds.labels("min").set(settings.min_size)
        metrics.pool_bounds.labels("max").set(settings.effective_max)

    # -- recording --------------------------------------------------------------------------

    def record_intent(self, direction: Direction, source: str) -> None:
        self.intents.record(direction, source)
        self.metrics.pending_intents.labels(direction.value).set(1)

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
        wanted = tuple(i.direction for i in taken)
        self.ticks += 1
        self.metrics.last_tick.set(self.clock())
        try:
            pool = await in_worker_thread(self._read_pool)
        except ExoApiError as exc:
            self._api_error(exc)
            size = self.pool.size if self.pool else None
            decision = ScaleDecision(
                "none", size, size, Reason.API_ERROR, tuple(sorted(set(wanted))), str(exc)
            )
        else:
            view = PoolView(pool.size, pool.state)
            decision = decide(
                wanted,
                view,
                self.settings,
                paused=self.paused,
                in_flight=self.in_flight is not None,
            )
            if decision.acts:
                decision = await self._act(decision)
        self._report(decision, taken)
        return decision

    async def close(self) -> None:
        if self._tracker is not None:
            self._tracker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._tracker

    # -- API side ---------------------------------------------------------------------------

    def _read_pool(self) -> InstancePool:
        pool = self.client.get_pool(self._pool_id or self.settings.pool)
        self._pool_id = pool.id  # names cost a list call; the id never changes
        self.pool = pool
        self.metrics.pool_size.set(pool.size)
        return pool

    def _api_error(self, exc: ExoApiError) -> None:
        self.metrics.api_errors.labels(exc.operation or "unknown").inc()
        log.warning("API call failed: %s", exc)

    async def _act(self, decision: ScaleDecision) -> ScaleDecision:
        assert self._pool_id is not None and decision.to_size is not None
        flight = InFlight(
            decision.action, "selecting", self.clock(), decision.from_size, decision.to_size
        )
        self.in_flight = flight
        self.metrics.in_flight.set(1)
        started = time.monotonic()
        try:
            if decision.action == Direction.UP:
                flight.phase = "calling"
                operation = await in_worker_thread(
                    self.client.scale_pool, self._pool_id, decision.to_size
                )
            else:
                operation = await self._scale_down(decision, flight)
        except ConflictError as exc:
            self._api_error(exc)
            self._land()
            return decision.with_failure(Reason.POOL_BUSY, str(exc))
        except ExoApiError as exc:
            self._api_error(exc)
            self._land()
            return decision.with_failure(Reason.API_ERROR, str(exc))
        except BaseException:
            self._land()
            raise
        flight.phase = "waiting"
        flight.operation_id = operation.id
        self._tracker = asyncio.create_task(self._track(operation, flight, started))
        return decision

    async def _scale_down(self, decision: ScaleDecision, flight: InFlight) -> Operation:
        assert self._pool_id is not None
        assert decision.from_size is not None and decision.to_size is not None
        members = await in_worker_thread(self.client.list_members, self._pool_id)
        busy = None
        if self.settings.scale_down_policy == "least-busy" and self.settings.prometheus_url:
            try:
                busy = await query_busy(
                    self.http, self.settings.prometheus_url, self.settings.busy_query
                )
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("Prometheus query failed (%s); evicting the newest instead", exc)
        chosen = choose_members(
            members, decision.from_size - decision.to_size, self.settings.scale_down_policy, busy
        )
        if not chosen:
            raise ExoApiError("the pool lists no member that can leave", operation="list-instances")
        flight.members = [m.id for m in chosen]
        if self.settings.drain_enabled and self.settings.drain_token:
            flight.phase = "draining"
            token = self.settings.drain_token
            drained = await asyncio.gather(
                *(
                    request_drain(self.http, self.settings.drain_url, m.public_ip, token)
                    for m in chosen
                    if m.public_ip
                )
            )
            self.events.emit(
                "drain",
                time=self.clock(),
                members=flight.members,
                accepted=sum(drained),
                wait_seconds=self.settings.drain_seconds,
            )
            await asyncio.sleep(self.settings.drain_seconds)
            flight.phase = "calling"
            try:
                return await in_worker_thread(
                    self.client.evict_members, self._pool_id, flight.members
                )
            except ExoApiError:
                # A drained member that stays in the pool would serve nothing: undo the drain.
                await asyncio.gather(
                    *(
                        request_resume(self.http, self.settings.drain_url, m.public_ip, token)
                        for m in chosen
                        if m.public_ip
                    )
                )
                raise
        flight.phase = "calling"
        return await in_worker_thread(self.client.evict_members, self._pool_id, flight.members)

    async def _track(self, operation: Operation, flight: InFlight, started: float) -> None:
        """Follow our operation to its end (or the timeout); only then may we act again."""
        deadline = started + self.settings.operation_timeout
        result = "timeout"
        try:
            while time.monotonic() < deadline:
                try:
                    current = await in_worker_thread(self.client.get_operation, operation.id)
                except ExoApiError as exc:
                    self._api_error(exc)
                else:
                    if current.is_done:
                        result = current.state
                        break
                await asyncio.sleep(self.settings.operation_poll)
        finally:
            elapsed = time.monotonic() - started
            self.metrics.operation_seconds.labels(flight.action, result).observe(elapsed)
            self.events.emit(
                "operation",
                time=self.clock(),
                action=flight.action,
                operation_id=operation.id,
                result=result,
                seconds=round(elapsed, 3),
                **{"from": flight.from_size, "to": flight.to_size},
            )
            self._land()

    def _land(self) -> None:
        self.in_flight = None
        self.metrics.in_flight.set(0)

    # -- reporting --------------------------------------------------------------------------

    def _report(self, decision: ScaleDecision, taken: tuple[Any, ...]) -> None:
        entry = {
            "time": self.clock(),
            "action": decision.action,
            "from": decision.from_size,
            "to": decision.to_size,
            "reason": decision.reason.value,
            "intents": [i.to_json() for i in taken],
            "detail": decision.detail,
        }
        self.last_decision = entry
        self.metrics.decisions.labels(decision.action, decision.reason.value).inc()
        pool_id = self._pool_id or self.settings.pool
        self.events.emit("decision", pool=pool_id, tick=self.ticks, **entry)

    def status(self) -> dict[str, Any]:
        settings = self.settings
        pool = self.pool
        return {
            "pool": {
                "ref": settings.pool,
                "id": pool.id if pool else self._pool_id,
                "name": pool.name if pool else None,
                "size": pool.size if pool else None,
                "state": pool.state if pool else None,
            },
            "size": pool.size if pool else None,
            "state": pool.state if pool else None,
            "min": settings.min_size,
            "max": settings.max_size,
            "effective_max": settings.effective_max,
            "step": settings.step,
            "interval": settings.interval,
            "pending_intents": [i.to_json() for i in self.intents.pending()],
            "paused": self.paused,
            "dry_run": settings.dry_run,
            "ticks": self.ticks,
            "last_decision": self.last_decision,
            "in_flight": self.in_flight.to_json() if self.in_flight else None,
            "auth": "none" if settings.no_auth else "token",
        }
