"""The loop's own state around evaluate(): warm-up, kept intents, an unhealthy pool, quota.

A scripted PoolTarget and an injected clock: every step is explicit, nothing waits on time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from prometheus_client import CollectorRegistry

from exo_client import AuthError, ConflictError, QuotaExceededError
from exo_scaler.acting import Actuator
from exo_scaler.decision import Decision, Direction, Reason
from exo_scaler.metrics import ScalerMetrics
from exo_scaler.overview import gauges, status_json
from exo_scaler.scaler import Scaler
from exo_scaler.settings import ScalerSettings

from .conftest import Clock, EventSink, ScriptedTarget

UP, DOWN = Direction.UP, Direction.DOWN


def scaler_with(
    settings: ScalerSettings, target: ScriptedTarget, sink: EventSink
) -> tuple[Scaler, Clock]:
    clock = Clock()
    metrics = ScalerMetrics(CollectorRegistry())
    events = sink.log()
    actuator = Actuator(settings, target, events=events, http=httpx.AsyncClient(), clock=clock)
    return Scaler(settings, target, metrics, actuator, events=events, clock=clock), clock


def tick(scaler: Scaler) -> Decision:
    return asyncio.run(scaler.tick())


def test_warm_up_holds_the_next_step_until_members_serve(
    make_settings: Callable[..., ScalerSettings], sink: EventSink
) -> None:
    settings = make_settings(max_size=10, interval=60.0, warm_up=30.0, warm_up_limit=600.0)
    target = ScriptedTarget(size=1, serving_now=1)
    scaler, clock = scaler_with(settings, target, sink)
    scaler.record_intents((UP,), "test", {UP: 100.0})
    assert tick(scaler).to_size == 2  # ceil(1 × 100 / 70)
    # The new member boots: the same CPU on the one serving member adds nothing.
    clock.now += 60
    target.serving_now = 1
    scaler.record_intents((UP,), "test", {UP: 100.0})
    held = tick(scaler)
    assert (held.reason, held.warming, held.to_size) == (Reason.WARMING_UP, 1, 2)
    # ... unless the value says even the asked-for capacity is short.
    clock.now += 60
    scaler.record_intents((UP,), "test", {UP: 160.0})
    assert tick(scaler).to_size == 3  # ceil(1 × 160 / 70) = 3 > 2
    # All three serve now, but a value from inside --warm-up averages a window taken before
    # they did: the whole scale-up (1 → 3) still counts as warming, however stale the tick.
    clock.now += 60
    target.serving_now = 3
    scaler.record_intents((UP,), "test", {UP: 90.0})
    clock.now += 40
    assert (tick(scaler).reason, scaler.warm_up.current and scaler.warm_up.current.ready_at) == (
        Reason.WARMING_UP,
        clock.now,
    )
    # A value that arrived --warm-up after they served measures all three.
    clock.now += 30
    scaler.record_intents((UP,), "test", {UP: 90.0})
    decision = tick(scaler)
    assert (decision.warming, decision.to_size) == (0, 4)  # ceil(3 × 90 / 70)
    assert [r.warming for r in sink.records()] == [0, 1, 1, 2, 0]


def test_a_value_sent_before_the_warm_up_ended_does_not_end_it(
    make_settings: Callable[..., ScalerSettings], sink: EventSink
) -> None:
    settings = make_settings(max_size=10, warm_up=70.0)
    target = ScriptedTarget(size=2, serving_now=2)
    scaler, clock = scaler_with(settings, target, sink)
    scaler.record_intents((UP,), "test", {UP: 99.0})
    assert tick(scaler).to_size == 4  # saturated: twice what serves
    clock.now += 60
    target.serving_now = 4  # every member passes the NLB's check from this tick on
    assert tick(scaler).reason is Reason.NO_INTENT
    # The alert still fires with the old window's 99 %: it must not double again.
    clock.now += 60
    scaler.record_intents((UP,), "test", {UP: 99.0})
    clock.now += 30
    stale = tick(scaler)
    assert (stale.reason, stale.warming, target.size) == (Reason.WARMING_UP, 2, 4)
    clock.now += 5
    scaler.record_intents((UP,), "test", {UP: 99.0})  # 95 s after they served
    assert (tick(scaler).to_size, target.size) == (6, 6)


def test_a_value_evaluated_before_the_warm_up_ended_does_not_end_it(
    make_settings: Callable[..., ScalerSettings], sink: EventSink
) -> None:
    """A value re-sent long after its evaluation arrives late, not fresh: the signals'
    evaluation time, not the arrival, says what the window measured."""
    settings = make_settings(max_size=10, warm_up=70.0)
    target = ScriptedTarget(size=2, serving_now=2)
    scaler, clock = scaler_with(settings, target, sink)
    scaler.record_intents((UP,), "test", {UP: 99.0})
    assert tick(scaler).to_size == 4
    clock.now += 60
    target.serving_now = 4
    assert tick(scaler).reason is Reason.NO_INTENT
    served_at = clock.now
    clock.now += 100  # arrives 100 s after they served, evaluated 40 s after
    resent = {"cpu": 99.0, "evaluated_at": served_at + 40}
    scaler.record_intents((UP,), "test", {UP: 99.0}, signals={UP: resent})
    stale = tick(scaler)
    assert (stale.reason, stale.warming, target.size) == (Reason.WARMING_UP, 2, 4)
    clock.now += 10
    fresh = {"cpu": 99.0, "evaluated_at": served_at + 75}
    scaler.record_intents((UP,), "test", {UP: 99.0}, signals={UP: fresh})
    assert (tick(scaler).to_size, target.size) == (6, 6)


def test_the_larger_value_keeps_its_own_evaluation_time(
    make_settings: Callable[..., ScalerSettings], sink: EventSink
) -> None:
    """Two requests in one tick: a re-sent 99 % evaluated before the members served and a
    fresh 90 %. The kept value is the 99 %, so its time is its evaluation's, not the fresh
    one's: the warm-up does not end on it."""
    settings = make_settings(max_size=10, warm_up=70.0)
    target = ScriptedTarget(size=2, serving_now=2)
    scaler, clock = scaler_with(settings, target, sink)
    scaler.record_intents((UP,), "test", {UP: 99.0})
    assert tick(scaler).to_size == 4
    clock.now += 60
    target.serving_now = 4
    assert tick(scaler).reason is Reason.NO_INTENT
    served_at = clock.now
    clock.now += 100
    old = {"cpu": 99.0, "evaluated_at": served_at - 5}
    fresh = {"cpu": 90.0, "evaluated_at": served_at + 80}
    scaler.record_intents((UP,), "test", {UP: 99.0}, signals={UP: old})
    scaler.record_intents((UP,), "test", {UP: 90.0}, signals={UP: fresh})
    held = tick(scaler)
    assert (held.reason, held.warming, target.size) == (Reason.WARMING_UP, 2, 4)


@pytest.mark.parametrize("evaluated_at", [0.0, None])
def test_without_an_evaluation_time_a_value_counts_from_its_arrival(
    make_settings: Callable[..., ScalerSettings], sink: EventSink, evaluated_at: float | None
) -> None:
    settings = make_settings(max_size=10, warm_up=70.0)
    target = ScriptedTarget(size=2, serving_now=2)
    scaler, clock = scaler_with(settings, target, sink)
    scaler.record_intents((UP,), "test", {UP: 99.0})
    assert tick(scaler).to_size == 4
    clock.now += 60
    target.serving_now = 4
    assert tick(scaler).reason is Reason.NO_INTENT
    clock.now += 75
    carried = {"cpu": 99.0} if evaluated_at is None else {"cpu": 99.0, "evaluated_at": 0.0}
    scaler.record_intents((UP,), "test", {UP: 99.0}, signals={UP: carried})
    assert (tick(scaler).to_size, target.size) == (6, 6)


def test_a_member_that_never_serves_cannot_block_scaling(
    make_settings: Callable[..., ScalerSettings], sink: EventSink
) -> None:
    settings = make_settings(max_size=10, warm_up_limit=300.0)
    target = ScriptedTarget(size=1, serving_now=1)
    scaler, clock = scaler_with(settings, target, sink)
    scaler.record_intents((UP,), "test", {UP: 100.0})
    assert tick(scaler).reason is Reason.SCALED
    clock.now += 200
    scaler.record_intents((UP,), "test")
    assert tick(scaler).reason is Reason.WARMING_UP
    clock.now += 101  # past --warm-up-limit: the stuck member is counted as serving
    scaler.record_intents((UP,), "test")
    assert (tick(scaler).reason, target.size) == (Reason.SCALED, 3)


def test_members_are_listed_until_they_serve_and_no_longer(
    make_settings: Callable[..., ScalerSettings], sink: EventSink
) -> None:
    """Each tick asks who serves while a scale-up's members may not (so the moment they do is
    at most a tick late), and never again once they all do; a down tick is sized on what
    serves now."""
    target = ScriptedTarget(size=2, serving_now=2)
    scaler, clock = scaler_with(make_settings(max_size=10), target, sink)
    scaler.record_intents((UP,), "test", {UP: 100.0})
    tick(scaler)
    reads = target.serving_reads
    clock.now += 60
    tick(scaler)
    assert target.serving_reads == reads + 1
    target.serving_now = target.size
    clock.now += 60
    scaler.record_intents((DOWN,), "test", {DOWN: 10.0})
    down = tick(scaler)
    assert (down.warming, down.reason) == (0, Reason.SCALED)
    assert target.serving_reads == reads + 2
    clock.now += 60
    tick(scaler)
    assert target.serving_reads == reads + 2  # the scale-down ended the warm-up


def test_intents_survive_busy_ticks_for_a_bounded_time(
    make_settings: Callable[..., ScalerSettings], sink: EventSink
) -> None:
    settings = make_settings(interval=60.0, carry_ticks=2, policy="step")
    target = ScriptedTarget(size=2, state="scaling-up")
    scaler, clock = scaler_with(settings, target, sink)
    scaler.record_intents((UP,), "test")
    assert tick(scaler).reason is Reason.POOL_BUSY
    clock.now += 60
    assert tick(scaler).reason is Reason.POOL_BUSY  # kept, no new webhook
    target.state = "running"
    clock.now += 60
    acted = tick(scaler)
    assert (acted.reason, acted.to_size) == (Reason.SCALED, 3)  # the first running tick
    assert acted.intents[0].count == 1
    assert tick(scaler).reason is Reason.NO_INTENT  # one decision, then gone
    # Bounded: an intent kept past --carry-ticks intervals is stale and dropped.
    target.state = "scaling-up"
    scaler.record_intents((UP,), "test")
    tick(scaler)
    clock.now += 121
    target.state = "running"
    assert tick(scaler).reason is Reason.NO_INTENT
    assert target.scaled == [(2, 3)]


def test_an_unhealthy_pool_is_surfaced_after_the_bound(
    make_settings: Callable[..., ScalerSettings], sink: EventSink
) -> None:
    target = ScriptedTarget(size=2, state="degraded", error_reason="quota-exceeded: 1 missing")
    scaler, clock = scaler_with(make_settings(unhealthy_after=300.0), target, sink)
    scaler.record_intents((UP,), "test")
    assert tick(scaler).reason is Reason.POOL_UNHEALTHY
    assert status_json(scaler)["conditions"] == []
    clock.now += 300
    tick(scaler)
    [condition] = status_json(scaler)["conditions"]
    assert condition["type"] == "PoolUnhealthy" and condition["state"] == "degraded"
    assert "quota-exceeded" in condition["detail"]
    assert gauges(scaler).pool_unhealthy
    target.state = "running"
    tick(scaler)
    assert status_json(scaler)["conditions"] == []
    assert not gauges(scaler).pool_unhealthy


def test_quota_is_not_busy(make_settings: Callable[..., ScalerSettings], sink: EventSink) -> None:
    target = ScriptedTarget(size=2, refuse=QuotaExceededError("instance quota exceeded"))
    scaler, _ = scaler_with(make_settings(), target, sink)
    scaler.record_intents((UP,), "test")
    assert tick(scaler).reason is Reason.QUOTA
    target.refuse = ConflictError("instance pool is busy")
    scaler.record_intents((UP,), "test")
    assert tick(scaler).reason is Reason.POOL_BUSY
    assert [r.reason for r in sink.records()] == [Reason.QUOTA, Reason.POOL_BUSY]


def test_the_instance_quota_lowers_the_ceiling_and_an_unreadable_one_does_not_stop_scaling(
    make_settings: Callable[..., ScalerSettings], sink: EventSink
) -> None:
    target = ScriptedTarget(size=2, serving_now=2, quota=1)
    scaler, clock = scaler_with(make_settings(max_size=10), target, sink)
    scaler.record_intents((UP,), "test", {UP: 99.0})
    assert (tick(scaler).to_size, target.size) == (3, 3)  # wanted 4; the quota allows 1 more
    target.quota, target.serving_now = 0, 3
    clock.now += 600
    scaler.record_intents((UP,), "test", {UP: 99.0})
    used_up = tick(scaler)
    assert (used_up.reason, target.size, status_json(scaler)["quota_left"]) == (Reason.QUOTA, 3, 0)
    # A role without get-quota, or an API that cannot answer: the scale is left to the API.
    target.quota_refusal = AuthError("get-quota not allowed", status=403, operation="get-quota")
    clock.now += 80
    scaler.record_intents((UP,), "test", {UP: 99.0})
    assert (tick(scaler).reason, target.size) == (Reason.SCALED, 5)


def test_without_a_value_the_warm_up_ends_on_time_alone(
    make_settings: Callable[..., ScalerSettings], sink: EventSink
) -> None:
    """A bare GET /up carries no value to measure: once the members serve, --warm-up of time
    ends the warm-up (the step the proportional policy falls back to)."""
    target = ScriptedTarget(size=1, serving_now=1)
    scaler, clock = scaler_with(make_settings(max_size=10, warm_up=70.0), target, sink)
    scaler.record_intents((UP,), "test")
    assert (tick(scaler).to_size, target.size) == (2, 2)
    clock.now += 60
    target.serving_now = 2
    scaler.record_intents((UP,), "test")
    assert tick(scaler).reason is Reason.WARMING_UP  # they serve from now on
    clock.now += 70
    scaler.record_intents((UP,), "test")
    assert (tick(scaler).reason, target.size) == (Reason.SCALED, 3)


def test_a_pool_back_at_its_old_size_ends_the_warm_up(
    make_settings: Callable[..., ScalerSettings], sink: EventSink
) -> None:
    """The scale-up's operation failed (or someone scaled in): nothing is left to wait for."""
    target = ScriptedTarget(size=2, serving_now=2)
    scaler, clock = scaler_with(make_settings(max_size=10), target, sink)
    scaler.record_intents((UP,), "test", {UP: 99.0})
    assert tick(scaler).to_size == 4
    target.size = 2  # reverted
    clock.now += 60
    scaler.record_intents((UP,), "test", {UP: 99.0})
    again = tick(scaler)
    assert (again.reason, again.warming, again.to_size) == (Reason.SCALED, 0, 4)
