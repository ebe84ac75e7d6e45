"""Pool state and operations follow member convergence, on a zone driven by a manual clock
(no sleeps: each test moves time and calls tick() itself)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest

from exo_zone import RecordRuntime, Zone, ZoneTimings
from exo_zone.bodies import operation_body, pool_body

TIMINGS = ZoneTimings(boot_delay=30.0, operation_delay=5.0, create_delay=0.0, converge_timeout=600)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class GatedRuntime(RecordRuntime):
    """Members whose app becomes ready only when the test says so; stops that wait on a gate."""

    def __init__(self, *, running_at_boot: bool) -> None:
        super().__init__()
        self.running_at_boot = running_at_boot  # type: ignore[misc]
        self.ready: set[str] = set()
        self.stop_gate = threading.Event()
        self.stop_gate.set()

    def is_ready(self, instance_id: str) -> bool:
        return instance_id in self.started and instance_id in self.ready

    def stop(self, instance_id: str) -> None:
        # Bounded: a test that forgets to open the gate fails instead of hanging.
        assert self.stop_gate.wait(timeout=10)
        super().stop(instance_id)


def make_zone(
    runtime: RecordRuntime | None = None, timings: ZoneTimings = TIMINGS
) -> tuple[Zone, Clock]:
    clock = Clock()
    zone = Zone(timings=timings, runtime=runtime, clock=clock, member_network="127.77.0.0/24")
    return zone, clock


def advance(zone: Zone, clock: Clock, seconds: float) -> None:
    clock.now += seconds
    zone.tick()


def settle_stops(zone: Zone) -> None:
    """Wait (bounded) for the background stops the zone submitted to finish."""
    zone._stopper.submit(lambda: None).result(timeout=10)
    for _ in range(100):
        with zone.lock:
            if not any(i.state == "destroying" for i in zone.instances.values()):
                return
        threading.Event().wait(0.01)
    raise AssertionError("members still destroying")


def test_presets_cover_unit_tests_and_speed_one() -> None:
    instant = ZoneTimings.instant()
    assert (instant.boot_delay, instant.operation_delay, instant.create_delay) == (0, 0, 0)
    fast = ZoneTimings.fast()
    assert 0 < fast.boot_delay < 1 and 0 < fast.operation_delay < 1
    real = ZoneTimings.realistic()
    assert real.boot_delay >= 30 and real.create_delay > 0
    halved = real.scaled(2)
    assert halved.create_delay == real.create_delay / 2
    assert halved.converge_timeout == real.converge_timeout / 2


def test_pool_stays_scaling_up_until_members_serve() -> None:
    runtime = GatedRuntime(running_at_boot=False)
    zone, clock = make_zone(runtime)
    pool = zone.create_pool("web", 1)
    advance(zone, clock, 30)
    runtime.ready.update(zone.instances)
    advance(zone, clock, 0)
    assert pool_body(pool)["state"] == "running"

    op = zone.scale(pool.id, 3)
    assert pool_body(pool)["state"] == "scaling-up"
    advance(zone, clock, 5)  # operation_delay passed, members still booting
    assert (op.state, pool.state) == ("pending", "scaling-up")
    advance(zone, clock, 25)  # booted, but the app is not ready: not `running` in this mode
    assert {i.state for i in zone.members(pool.id)} == {"running", "starting"}
    assert (op.state, pool.state) == ("pending", "scaling-up")
    runtime.ready.update(zone.instances)
    advance(zone, clock, 0)
    assert (op.state, pool.state) == ("success", "running")


def test_running_at_boot_reports_the_vm_before_the_app() -> None:
    runtime = GatedRuntime(running_at_boot=True)
    zone, clock = make_zone(runtime)
    pool = zone.create_pool("web", 1)
    lb = zone.create_load_balancer("nlb", pool.id, port=18001)
    advance(zone, clock, 29)
    assert [i.state for i in zone.members(pool.id)] == ["starting"]
    advance(zone, clock, 1)
    # The VM runs (and the pool converged), but the app does not answer yet: the NLB says so.
    assert [i.state for i in zone.members(pool.id)] == ["running"]
    assert zone.converged(pool)
    assert set(zone.health(lb)[lb.services[0].id].values()) == {False}
    runtime.ready.update(zone.instances)
    assert set(zone.health(lb)[lb.services[0].id].values()) == {True}


def test_operation_lasts_a_boot_not_a_fixed_delay() -> None:
    zone, clock = make_zone(RecordRuntime())
    pool = zone.create_pool("web", 1)
    advance(zone, clock, 30)
    op = zone.scale(pool.id, 2)
    advance(zone, clock, 5)
    assert op.state == "pending"  # the old lab ended every operation here
    advance(zone, clock, 25)
    assert (op.state, pool.state) == ("success", "running")


def test_instances_lag_size_on_scale_up() -> None:
    timings = ZoneTimings(boot_delay=30, operation_delay=5, create_delay=10, converge_timeout=600)
    zone, clock = make_zone(RecordRuntime(), timings)
    pool = zone.create_pool("web", 2)
    advance(zone, clock, 30)
    op = zone.scale(pool.id, 4)
    body = pool_body(pool)
    assert (body["size"], len(body["instances"]), body["state"]) == (4, 2, "scaling-up")
    advance(zone, clock, 10)
    assert len(pool_body(pool)["instances"]) == 4
    assert op.state == "pending"
    advance(zone, clock, 30)
    assert (op.state, pool.state) == ("success", "running")


def test_scale_down_before_creation_cancels_the_newest() -> None:
    timings = ZoneTimings(boot_delay=30, operation_delay=5, create_delay=10, converge_timeout=600)
    zone, clock = make_zone(RecordRuntime(), timings)
    pool = zone.create_pool("web", 2)
    advance(zone, clock, 30)
    zone.scale(pool.id, 4)
    advance(zone, clock, 5)
    pool.state = "running"  # as if the lab let a second scale through (test the bookkeeping)
    zone.scale(pool.id, 3)
    advance(zone, clock, 10)
    assert len(pool_body(pool)["instances"]) == 3


def test_leaving_members_stay_listed_until_gone() -> None:
    runtime = GatedRuntime(running_at_boot=True)
    zone, clock = make_zone(runtime)
    pool = zone.create_pool("web", 3)
    advance(zone, clock, 30)
    runtime.stop_gate.clear()
    op = zone.scale(pool.id, 1)
    advance(zone, clock, 5)
    body = pool_body(pool)
    assert (body["size"], len(body["instances"]), body["state"]) == (1, 3, "scaling-down")
    assert op.state == "pending"
    runtime.stop_gate.set()
    settle_stops(zone)
    advance(zone, clock, 0)
    body = pool_body(pool)
    assert (len(body["instances"]), body["state"], op.state) == (1, "running", "success")


def test_operation_times_out_and_the_pool_stays_busy_until_it_converges(
    strict_spec: Callable[[str, Any], None],
) -> None:
    runtime = GatedRuntime(running_at_boot=False)
    zone, clock = make_zone(runtime)
    pool = zone.create_pool("web", 1)
    advance(zone, clock, 30)
    runtime.ready.update(zone.instances)
    op = zone.scale(pool.id, 2)
    advance(zone, clock, 599)
    assert op.state == "pending"
    advance(zone, clock, 1)
    assert (op.state, op.reason, pool.state) == ("timeout", "unavailable", "scaling-up")
    strict_spec("operation", operation_body(op))
    strict_spec("instance-pool", pool_body(pool))
    runtime.ready.update(zone.instances)
    advance(zone, clock, 0)
    assert (op.state, pool.state) == ("timeout", "running")


def test_every_timing_state_validates(strict_spec: Callable[[str, Any], None]) -> None:
    timings = ZoneTimings(boot_delay=30, operation_delay=5, create_delay=10, converge_timeout=600)
    zone, clock = make_zone(RecordRuntime(), timings)
    pool = zone.create_pool("web", 1)
    bodies = [pool_body(pool)]
    advance(zone, clock, 30)
    op = zone.scale(pool.id, 2)
    bodies.append(pool_body(pool))
    for step in (10, 30):
        advance(zone, clock, step)
        bodies.append(pool_body(pool))
    for body in bodies:
        strict_spec("instance-pool", body)
    strict_spec("operation", operation_body(op))
    assert [b["state"] for b in bodies] == ["running", "scaling-up", "scaling-up", "running"]


def test_strict_check_rejects_what_the_shipped_spec_lacks(
    strict_spec: Callable[[str, Any], None], spec_2026: Callable[[str, Any], None]
) -> None:
    body = {"id": "00000000-0000-4000-8000-000000000000", "state": "running"}
    strict_spec("instance-pool", body)
    with pytest.raises(jsonschema.ValidationError):
        strict_spec("instance-pool", {**body, "error_reason": {"type": "quota-exceeded"}})
    with pytest.raises(jsonschema.ValidationError):
        strict_spec("instance-pool", {**body, "state": "degraded"})
    spec_2026("instance-pool", {**body, "state": "degraded", "error_reason": {"type": "x"}})
    with pytest.raises(jsonschema.ValidationError):
        spec_2026("instance-pool", {**body, "error_reason": {"kind": "x"}})


def test_a_same_size_scale_repairs_a_degraded_pool(strict_spec: Callable[[str, Any], None]) -> None:
    zone, clock = make_zone(RecordRuntime())
    pool = zone.create_pool("web", 1)
    advance(zone, clock, 30)
    zone.set_pool_fault(frozenset(), "degraded", {"type": "quota-exceeded", "cause": "x"})
    assert pool_body(pool)["error_reason"]["type"] == "quota-exceeded"
    op = zone.scale(pool.id, 1)
    body = pool_body(pool)
    assert body["state"] == "running" and "error_reason" not in body
    strict_spec("instance-pool", body)
    advance(zone, clock, 5)
    assert op.state == "success"
