"""`ExoPoolTarget`: the target (target.py) for an Exoscale instance pool, behind exo-client.

One status read per tick (get-instance-pool; with list-instances and get-load-balancer when
the members are asked for; get-quota when a scale-up is wanted), the two verbs
(scale-instance-pool, evict-instance-pool-members), and the one operation followed to its end.
Every blocking call runs in a daemon worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from exo_client import (
    AuthError,
    ExoApiError,
    ExoClient,
    InstancePool,
    NotFoundError,
    Operation,
    PoolMember,
    sdk_poll_interval,
)

from .events import EventLog
from .intents import Direction
from .metrics import ScalerMetrics
from .settings import ScalerSettings
from .target import InFlight, Launched, Member, MemberState, OnEnd, PoolStatus
from .threads import in_worker_thread

log = logging.getLogger("exo_scaler.target")

T = TypeVar("T")

_LEAVING_STATES = frozenset({"destroying", "destroyed", "expunging"})


class ExoPoolTarget:
    """An Exoscale instance pool."""

    def __init__(
        self,
        settings: ScalerSettings,
        client: ExoClient,
        metrics: ScalerMetrics,
        *,
        events: EventLog,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.client = client
        self.metrics = metrics
        self.events = events
        self.clock = clock
        self._pool_id: str | None = None
        self._size: int | None = None  # at the last read: where an operation starts from
        self._in_flight: InFlight | None = None
        self._tracker: asyncio.Task[None] | None = None

    @property
    def pool_id(self) -> str:
        return self._pool_id or self.settings.pool

    @property
    def in_flight(self) -> InFlight | None:
        return self._in_flight

    # -- reading -------------------------------------------------------------------------------

    def read_pool(self) -> InstancePool:
        """The pool now (blocking). The first read resolves a name to the id; later reads use
        the id, which never changes, where a name costs a list call."""
        pool: InstancePool = self.client.get_pool(self.pool_id)
        self._pool_id, self._size = pool.id, pool.size
        return pool

    def read_health(self) -> dict[str, bool]:
        """{member address: the NLB's health check passes} (blocking); --nlb must be set."""
        assert self.settings.nlb is not None
        return self.client.pool_health(self.settings.nlb, self.pool_id)

    async def status(self, *, members: bool = False, quota: bool = False) -> PoolStatus:
        pool = await self._call(self.read_pool)
        reason = pool.error_reason or {}
        found = PoolStatus(
            size=pool.size,
            state=pool.state,
            id=pool.id,
            name=pool.name,
            error_reason=": ".join(v for v in (reason.get("type"), reason.get("cause")) if v),
            serving_from="nlb" if self.settings.nlb else "vm-state",
            in_flight=self._in_flight,
        )
        if members:
            found = await self._with_members(found)
        if quota and found.is_running and self._in_flight is None:
            try:
                room = (await self._call(self.client.get_quota, "instance")).available
            except ExoApiError as exc:
                return replace(found, quota_error=str(exc))
            return replace(found, quota_room=room)
        return found

    async def _with_members(self, found: PoolStatus) -> PoolStatus:
        try:
            listed = await self._call(self.client.list_members, found.id)
        except ExoApiError as exc:
            return replace(found, members_error=str(exc))
        health: dict[str, bool] | None = None
        refused: str | None = None
        if self.settings.nlb is not None:
            try:
                health = await self._call(self.read_health)
            except (AuthError, NotFoundError) as exc:
                refused = str(exc)
            except ExoApiError:
                pass  # transient: unknown this tick, counted and logged by _call
        leaving = set(self._in_flight.members) if self._in_flight is not None else set()
        states = tuple(
            _member(m, self._state_of(m, health, leaving)) for m in listed
        )  # fmt: skip
        return replace(found, members=states, health_refused=refused,
                       health_read=health is not None)  # fmt: skip

    def _state_of(
        self, member: PoolMember, health: dict[str, bool] | None, leaving: set[str]
    ) -> MemberState:
        if member.state in _LEAVING_STATES or member.id in leaving:
            return MemberState.DRAINING
        if not member.is_running:
            return MemberState.WARMING
        if self.settings.nlb is None:
            return MemberState.SERVING
        if health is None:
            return MemberState.UNKNOWN
        # The member's own address as the NLB reports it (openapi.json load-balancer-server-
        # status.public-ip): an address the NLB does not list is not checked yet.
        ok = member.public_ip is not None and health.get(member.public_ip, False)
        return MemberState.SERVING if ok else MemberState.WARMING

    # -- the two verbs -------------------------------------------------------------------------

    async def grow(self, to: int, *, on_end: OnEnd | None = None) -> Launched:
        return await self._launch(Direction.UP, to, (), lambda: self.client.scale_pool(
            self.pool_id, to), on_end)  # fmt: skip

    async def evict(self, members: Sequence[Member], *, on_end: OnEnd | None = None) -> Launched:
        ids = [m.id for m in members]
        if not ids:
            raise ExoApiError("no member to evict", operation="evict-instance-pool-members")
        to = None if self._size is None else max(0, self._size - len(ids))
        return await self._launch(
            Direction.DOWN, to, ids, lambda: self.client.evict_members(self.pool_id, ids), on_end
        )

    async def _launch(
        self,
        action: Direction,
        to: int | None,
        members: Sequence[str],
        call: Callable[[], Operation],
        on_end: OnEnd | None = None,
    ) -> Launched:
        if self._in_flight is not None:
            raise RuntimeError("an operation of ours is still in flight")
        flight = InFlight(action, "calling", self.clock(), self._size, to, members=list(members))
        self._in_flight = flight
        started = time.monotonic()
        try:
            operation = await self._call(call)
        except BaseException:
            self._in_flight = None
            raise
        flight.phase, flight.operation_id = "waiting", operation.id
        self._tracker = asyncio.create_task(self._track(operation, flight, started, on_end))
        return Launched(operation.id, tuple(members))

    async def close(self) -> None:
        if self._tracker is not None:
            self._tracker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._tracker

    # -- following the operation ---------------------------------------------------------------

    async def _track(
        self, operation: Operation, flight: InFlight, started: float, on_end: OnEnd | None
    ) -> None:
        """Follow our operation to its end (or the timeout); only then may the loop act again."""
        deadline = started + self.settings.operation_timeout
        result = "timeout"
        try:
            while time.monotonic() < deadline:
                with contextlib.suppress(ExoApiError):  # counted and logged by _call
                    current = await self._call(self.client.get_operation, operation.id)
                    if current.is_done:
                        result = current.state
                        break
                await asyncio.sleep(self._poll_delay(time.monotonic() - started))
            if on_end is not None:
                await on_end(result)
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
            self._in_flight = None

    def _poll_delay(self, elapsed: float) -> float:
        """A fixed poll when configured, else the official SDKs' schedule (3 s, backing off),
        shrunk with the tick when it is under a minute so the sped-up lab keeps its ratios."""
        fixed = self.settings.operation_poll
        if fixed is not None:
            return fixed
        scale = min(1.0, self.settings.interval / 60.0)
        return sdk_poll_interval(elapsed * (1 / scale if scale else 1)) * scale

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        try:
            return await in_worker_thread(function, *args)
        except ExoApiError as exc:
            self.metrics.api_errors.labels(exc.operation or "unknown").inc()
            log.warning("API call failed: %s", exc)
            raise


def _member(member: PoolMember, state: MemberState) -> Member:
    return Member(member.id, state, member.public_ip, member.created_at, member.name)
