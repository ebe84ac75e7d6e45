"""The tick loop: take the intents, read the pool once, evaluate, act, record.

Size and state are read from the API every tick (one `PoolStatus`), so a restarted scaler
never repeats a step; the local state is what is ours alone: pending intents, pause, the
warm-up of our last scale-up (warmup.py), the conditions surfaced (conditions.py), and, in
the target, the one operation in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping

from exo_client import ConflictError, ExoApiError, QuotaExceededError

from .acting import Actuator
from .conditions import Conditions
from .decision import Decision, Direction, Reason, action_label, evaluate
from .events import EventLog
from .intents import Intent, IntentBook, fresh_intents
from .metrics import ScalerMetrics
from .record import DecisionRecord
from .settings import ScalerSettings
from .strategy import NeedWindow
from .target import InFlight, Launched, OnEnd, PoolStatus, PoolTarget
from .warmup import WarmUpTracker

log = logging.getLogger("exo_scaler")

#: Decisions kept in memory for GET /decisions: a day of one-minute ticks.
DECISION_RING = 1440


class Scaler:
    def __init__(
        self,
        settings: ScalerSettings,
        target: PoolTarget,
        metrics: ScalerMetrics,
        actuator: Actuator,
        *,
        events: EventLog,
        intents: IntentBook | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.target = target
        self.metrics = metrics
        self.actuator = actuator
        self.events = events
        self.intents = intents or IntentBook(clock)
        self.clock = clock
        self.paused = False
        self.ticks = 0
        self.last_tick: float | None = None
        self.last_status: PoolStatus | None = None
        self.quota_left: int | None = None  # at the last read; None: unlimited or unread
        self.decisions: deque[DecisionRecord] = deque(maxlen=DECISION_RING)
        self.warm_up = WarmUpTracker(settings)
        self.needs = NeedWindow()  # the demand policy's, for scale-in
        self.conditions = Conditions(settings.unhealthy_after)
        self._quota_error: str | None = None
        # A tick and a follow-up never interleave their read, decision and call.
        self._deciding = asyncio.Lock()
        self._follow_up: asyncio.Task[Decision | None] | None = None
        self.closing = False  # the loop stopped: no follow-up may start a call

    @property
    def in_flight(self) -> InFlight | None:
        return self.actuator.in_flight

    @property
    def last_decision(self) -> DecisionRecord | None:
        return self.decisions[-1] if self.decisions else None

    def record_intents(
        self,
        directions: Iterable[Direction],
        source: str,
        values: Mapping[Direction, float] | None = None,
        *,
        signals: Mapping[Direction, Mapping[str, float]] | None = None,
    ) -> tuple[Direction, ...]:
        """One request naming `directions`; returns each direction recorded, once."""
        return self.intents.record(directions, source, values, signals)

    def record_intent(self, direction: Direction, source: str) -> None:
        self.record_intents((direction,), source)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.events.emit("paused" if paused else "resumed", time=self.clock())

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every `interval` seconds until `stop` is set; nothing in a tick ends the loop."""
        loop = asyncio.get_running_loop()
        interval = self.settings.interval
        next_at = loop.time() + interval
        try:
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
        finally:
            self.closing = True  # whatever ended the loop, no follow-up may start a call

    async def tick(self) -> Decision:
        async with self._deciding:
            return await self._decide(follow_up=False)

    async def _decide(self, *, follow_up: bool) -> Decision:
        now = self.clock()
        taken, stale = fresh_intents(self.intents.take(), now, self.settings.intent_ttl)
        for intent in stale:  # a sustained alert re-sends long before --carry-ticks
            self.metrics.intents_expired.labels(intent.direction.value).inc()
        if not follow_up:
            self.ticks += 1
            self.last_tick = now
        launched: Launched | None = None
        wants = {i.direction for i in taken}
        try:
            status = await self.target.status(
                members=Direction.DOWN in wants or self.warm_up.needs_members(now),
                quota=Direction.UP in wants and not self.paused,
            )
        except ExoApiError as exc:
            size = self.last_status.size if self.last_status is not None else None
            decision = Decision(None, size, size, Reason.API_ERROR, taken, str(exc),
                                self.settings.policy)  # fmt: skip
        else:
            self._observe(status, now)
            warming = self.warm_up.warming(taken, status, now)
            history = self.needs.within(now, self.settings.scale_in_window)
            decision = evaluate(taken, status, self.settings, paused=self.paused, now=now,
                                warming=warming, provisioning=self.warm_up.provisioning,
                                history=history)  # fmt: skip
            self.needs.remember(decision.wish, now, status.size)
            if decision.acts:
                decision, launched = await self._act(decision, status, taken)
            if decision.reason is Reason.SCALED:
                assert decision.action is not None and decision.to_size is not None
                self.warm_up.scaled(decision.action, status.size, decision.to_size, now)
        if decision.reason is Reason.POOL_BUSY:
            # Kept for the first tick that can act (the pool stays busy about a minute per
            # member on Exoscale, so dropping them would lose whole steps); --carry-ticks bounds it.
            self.intents.restore(taken)
        self._record(decision, launched, follow_up=follow_up)
        return decision

    def _then(self, decision: Decision, taken: tuple[Intent, ...]) -> OnEnd | None:
        """For a first step that is not the whole way (the demand policy's 2 first): go on
        as soon as its operation ends in success. On Exoscale that is when the pool has
        converged — the new member `running` (exo_zone/timings.py) — so a poll of running
        members sees the 2 for at least the next members' boot, and the need is not a tick
        (60 s) late. The tick's intents are put back for it, merged with any newer one."""
        wish = decision.wish
        if (
            wish is None
            or wish.then is None
            or decision.action is not Direction.UP
            or decision.to_size is None
            # a cap (max, quota) that held the first step also holds the second
            or min(wish.then, self.settings.max_size) <= decision.to_size
        ):
            return None
        ups = tuple(i for i in taken if i.direction is Direction.UP)
        tick = self.ticks

        async def on_end(result: str) -> None:
            if result != "success" or self.closing:
                return  # the next tick reads the pool as it is and decides again
            if any(i.direction is Direction.DOWN for i in self.intents.pending()):
                return  # the load fell while the pool grew: not a time to go on up
            self.intents.restore(ups)
            # Awaited before the target clears its operation (and with no await between
            # that and the clearing), so the task's first step comes after it.
            self._follow_up = asyncio.create_task(self._go_on(tick))

        return on_end

    async def _go_on(self, tick: int) -> Decision | None:
        await asyncio.sleep(0)
        try:
            async with self._deciding:
                if self.closing or self.ticks != tick:
                    return None  # a tick came first and took the intents: it decided
                return await self._decide(follow_up=True)
        except Exception:
            log.exception("follow-up failed; the next tick decides")
            return None

    def _observe(self, status: PoolStatus, now: float) -> None:
        """What the status read says beyond the decision: conditions and the quota."""
        self.last_status = status
        self.conditions.pool_state(status.state, status.error_reason, now)
        if status.health_read or status.health_refused is not None:
            self.conditions.nlb_health(status.health_refused, now,
                                       warm_up_limit=self.settings.warm_up_limit)  # fmt: skip
        if status.quota_room is not None:
            self.quota_left = status.quota_room
        if status.quota_error != self._quota_error and status.quota_error is not None:
            log.warning("cannot read the instance quota (%s); scaling up without it",
                        status.quota_error)  # fmt: skip
        if status.quota_room is not None or status.quota_error is not None:
            self._quota_error = status.quota_error

    async def _act(
        self, decision: Decision, status: PoolStatus, taken: tuple[Intent, ...]
    ) -> tuple[Decision, Launched | None]:
        try:
            on_grown = self._then(decision, taken)
            return decision, await self.actuator.act(decision, status, on_grown=on_grown)
        except QuotaExceededError as exc:
            # Not busy: the next tick would be refused the same way (exo_client.errors).
            return decision.with_failure(Reason.QUOTA, str(exc)), None
        except ConflictError as exc:
            return decision.with_failure(Reason.POOL_BUSY, str(exc)), None
        except ExoApiError as exc:
            return decision.with_failure(Reason.API_ERROR, str(exc)), None

    def _record(
        self, decision: Decision, launched: Launched | None, *, follow_up: bool = False
    ) -> None:
        record = DecisionRecord.of(
            decision,
            wall_time=self.clock(),
            pool=self.target.pool_id,
            tick=self.ticks,
            operation_id=launched.operation_id if launched else None,
            members=launched.members if launched else (),
            dry_run=self.settings.dry_run,
            follow_up=follow_up,
        )
        self.decisions.append(record)
        self.metrics.decisions.labels(action_label(decision.action), decision.reason.value).inc()
        self.events.decision(record)

    def decisions_since(self, since: float | None) -> list[DecisionRecord]:
        """The kept decisions (newest last), those taken at or after `since` when given."""
        return [r for r in self.decisions if since is None or r.wall_time >= since]

    async def close(self) -> None:
        self.closing = True
        if self._follow_up is not None:
            self._follow_up.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._follow_up
        await self.target.close()
