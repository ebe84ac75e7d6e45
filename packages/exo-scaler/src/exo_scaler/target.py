"""The pool-facing side of the scaler: read the pool, scale it, evict (drained first), track.

The loop (scaler.py) only sees `PoolTarget`, the seam nomad-autoscaler calls a Target plugin:
`status()` says what the pool is, `scale(decision)` starts the change, and the target follows
its operation until it ends, reporting it as `in_flight` meanwhile. `ExoPoolTarget` is the
Exoscale instance pool behind exo-client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from exo_client import (
    ExoApiError,
    ExoClient,
    InstancePool,
    Operation,
    PoolMember,
    sdk_poll_interval,
)

from .decision import Direction, PoolView, ScaleDecision
from .drain import request_drain, request_resume
from .events import EventLog
from .metrics import ScalerMetrics
from .selection import choose_members, query_busy
from .settings import ScalerSettings
from .threads import in_worker_thread

log = logging.getLogger("exo_scaler.target")


@dataclass
class InFlight:
    """Our one operation, from the decision to its end; /status shows it."""

    action: Direction
    phase: str  # selecting | draining | calling | waiting
    started_at: float
    from_size: int | None
    to_size: int | None
    operation_id: str | None = None
    members: list[str] = field(default_factory=list)
    # The leaving members' addresses we asked to drain: resumed if their evict does not end
    # in success, since a drained member left in the pool serves nothing.
    drained: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "phase": self.phase,
            "started_at": self.started_at,
            "from": self.from_size,
            "to": self.to_size,
            "operation_id": self.operation_id,
            "members": list(self.members),
        }


@dataclass(frozen=True)
class Launched:
    """What `scale` started: the operation and, for a scale-down, the members leaving."""

    operation_id: str
    members: tuple[str, ...] = ()


class PoolTarget(Protocol):
    @property
    def pool_id(self) -> str:
        """The pool's id once read, its configured reference before."""
        ...

    @property
    def view(self) -> PoolView | None:
        """The pool at the last successful `status()`, None before the first."""
        ...

    @property
    def in_flight(self) -> InFlight | None: ...

    async def status(self) -> PoolView:
        """Read the pool now; ExoApiError when the API cannot say."""
        ...

    async def scale(self, decision: ScaleDecision) -> Launched:
        """Start what an acting decision asks for; ExoApiError (ConflictError on a busy pool)
        when nothing was started. Until the operation ends, `in_flight` is set."""
        ...

    async def serving(self) -> int:
        """How many members serve now: the NLB's health check passes (--nlb), else the VM is
        `running`. ExoApiError when the API cannot say. Asked only while a scale-up warms."""
        ...

    async def quota_room(self) -> int | None:
        """How many more instances the organisation's quota allows, None when unlimited;
        ExoApiError when the API cannot say. Asked only when a scale-up is wanted."""
        ...

    async def close(self) -> None: ...


class ExoPoolTarget:
    """An Exoscale instance pool. Every blocking API call runs in a daemon worker thread."""

    def __init__(
        self,
        settings: ScalerSettings,
        client: ExoClient,
        metrics: ScalerMetrics,
        *,
        events: EventLog,
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.client = client
        self.metrics = metrics
        self.events = events
        self.http = http
        self.clock = clock
        self._view: PoolView | None = None
        self._in_flight: InFlight | None = None
        self._tracker: asyncio.Task[None] | None = None

    @property
    def pool_id(self) -> str:
        return self._view.id if self._view is not None else self.settings.pool

    @property
    def view(self) -> PoolView | None:
        return self._view

    @property
    def in_flight(self) -> InFlight | None:
        return self._in_flight

    # -- reading -------------------------------------------------------------------------------

    def read(self) -> PoolView:
        """The pool now (blocking). The first read resolves a name to the id; later reads use
        the id, which never changes, where a name costs a list call."""
        pool: InstancePool = self.client.get_pool(self.pool_id)
        reason = pool.error_reason or {}
        why = ": ".join(v for v in (reason.get("type"), reason.get("cause")) if v)
        self._view = PoolView(pool.size, pool.state, pool.id, pool.name, why)
        self.metrics.pool_size.set(pool.size)
        return self._view

    async def status(self) -> PoolView:
        try:
            return await in_worker_thread(self.read)
        except ExoApiError as exc:
            self._api_error(exc)
            raise

    async def serving(self) -> int:
        nlb = self.settings.nlb
        try:
            members = await in_worker_thread(self.client.list_members, self.pool_id)
            health = (
                await in_worker_thread(self.client.pool_health, nlb, self.pool_id)
                if nlb is not None
                else None
            )
        except ExoApiError as exc:
            self._api_error(exc)
            raise
        running = [m for m in members if m.is_running]
        if health is None:
            return len(running)
        # The member's own address as the NLB reports it (openapi.json load-balancer-server-
        # status.public-ip): an address the NLB does not list is not checked yet.
        return sum(1 for m in running if m.public_ip is not None and health.get(m.public_ip))

    async def quota_room(self) -> int | None:
        try:
            quota = await in_worker_thread(self.client.get_quota, "instance")
        except ExoApiError as exc:
            self._api_error(exc)
            raise
        return quota.available

    # -- acting --------------------------------------------------------------------------------

    async def scale(self, decision: ScaleDecision) -> Launched:
        if decision.action is None or decision.to_size is None or decision.from_size is None:
            raise ValueError(f"nothing to scale in a {decision.reason} decision")
        flight = InFlight(
            decision.action, "selecting", self.clock(), decision.from_size, decision.to_size
        )
        self._in_flight = flight
        self.metrics.in_flight.set(1)
        started = time.monotonic()
        try:
            if decision.action is Direction.UP:
                flight.phase = "calling"
                operation = await in_worker_thread(
                    self.client.scale_pool, self.pool_id, decision.to_size
                )
            else:
                leaving = await self.choose(decision.from_size - decision.to_size)
                flight.members = [m.id for m in leaving]
                operation = await self.evict(leaving)
        except ExoApiError as exc:
            self._api_error(exc)
            self._land()
            raise
        except BaseException:
            self._land()
            raise
        flight.phase = "waiting"
        flight.operation_id = operation.id
        self._tracker = asyncio.create_task(self._track(operation, flight, started))
        return Launched(operation.id, tuple(flight.members))

    async def choose(self, count: int) -> list[PoolMember]:
        """The `count` members to evict, per the scale-down policy."""
        members = await in_worker_thread(self.client.list_members, self.pool_id)
        settings = self.settings
        busy = None
        if settings.scale_down_policy == "least-busy" and settings.prometheus_url:
            try:
                busy = await query_busy(self.http, settings.prometheus_url, settings.busy_query)
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("Prometheus query failed (%s); evicting the newest instead", exc)
        chosen = choose_members(members, count, settings.scale_down_policy, busy)
        if not chosen:
            raise ExoApiError("the pool lists no member that can leave", operation="list-instances")
        return chosen

    async def evict(self, members: Sequence[PoolMember]) -> Operation:
        """Drain the members (when enabled), wait, then evict them; a failed evict resumes them,
        since a drained member that stays in the pool would serve nothing."""
        ids = [m.id for m in members]
        settings = self.settings
        token = settings.drain_token
        if not settings.drain_enabled or not token:
            self._phase("calling")
            return await in_worker_thread(self.client.evict_members, self.pool_id, ids)
        self._phase("draining")
        addresses = [m.public_ip for m in members if m.public_ip]
        if self._in_flight is not None:
            self._in_flight.drained = list(addresses)
        drained = await asyncio.gather(
            *(request_drain(self.http, settings.drain_url, ip, token) for ip in addresses)
        )
        self.events.emit(
            "drain",
            time=self.clock(),
            members=ids,
            accepted=sum(drained),
            wait_seconds=settings.drain_seconds,
        )
        await asyncio.sleep(settings.drain_seconds)
        self._phase("calling")
        try:
            return await in_worker_thread(self.client.evict_members, self.pool_id, ids)
        except ExoApiError:
            await self._resume(addresses, "evict refused")
            raise

    async def _resume(self, addresses: Sequence[str], why: str) -> None:
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

    async def close(self) -> None:
        if self._tracker is not None:
            self._tracker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._tracker

    # -- tracking ------------------------------------------------------------------------------

    async def _track(self, operation: Operation, flight: InFlight, started: float) -> None:
        """Follow our operation to its end (or the timeout); only then may the loop act again."""
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
                await asyncio.sleep(self._poll_delay(time.monotonic() - started))
            if flight.action is Direction.DOWN and result != "success":
                # The evict was accepted but did not end in success (failure, timeout, or our
                # own deadline): its members may stay in the pool, drained. Resuming one that
                # does leave after all costs nothing.
                await self._resume(flight.drained, f"evict operation ended {result}")
        finally:
            elapsed = time.monotonic() - started
            self.metrics.operation_seconds.labels(flight.action.value, result).observe(elapsed)
            self.events.emit(
                "operation",
                time=self.clock(),
                action=flight.action.value,
                operation_id=operation.id,
                result=result,
                seconds=round(elapsed, 3),
                **{"from": flight.from_size, "to": flight.to_size},
            )
            self._land()

    def _poll_delay(self, elapsed: float) -> float:
        """A fixed poll when configured, else the official SDKs' schedule (3 s, backing off),
        shrunk with the tick when it is under a minute so the sped-up lab keeps its ratios."""
        fixed = self.settings.operation_poll
        if fixed is not None:
            return fixed
        scale = min(1.0, self.settings.interval / 60.0)
        return sdk_poll_interval(elapsed * (1 / scale if scale else 1)) * scale

    def _phase(self, phase: str) -> None:
        if self._in_flight is not None:
            self._in_flight.phase = phase

    def _land(self) -> None:
        self._in_flight = None
        self.metrics.in_flight.set(0)

    def _api_error(self, exc: ExoApiError) -> None:
        self.metrics.api_errors.labels(exc.operation or "unknown").inc()
        log.warning("API call failed: %s", exc)
