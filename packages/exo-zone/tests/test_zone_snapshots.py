"""The zone's read methods: frozen copies taken under the lock, never live records."""

from __future__ import annotations

import dataclasses
import threading

import pytest

import exo_zone
from exo_zone import HealthCheck, RecordRuntime, Zone, ZoneError, ZoneTimings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_zone() -> tuple[Zone, Clock]:
    clock = Clock()
    timings = ZoneTimings(boot_delay=30.0, operation_delay=5.0, converge_timeout=600)
    zone = Zone(
        timings=timings, runtime=RecordRuntime(), clock=clock, member_network="127.78.0.0/24"
    )
    return zone, clock


def test_snapshots_are_frozen_copies_of_the_moment() -> None:
    zone, clock = make_zone()
    pool = zone.create_pool("web", 2, "standard.small")
    before = zone.pool_snapshot(pool.id)
    members = zone.members(pool.id)
    assert (before.name, before.size, before.state) == ("web", 2, "running")
    assert before.instance_type == "standard.small"
    assert before.member_ids == tuple(m.id for m in members)
    assert {m.state for m in members} == {"starting"}
    assert [m.address for m in members] == ["127.78.0.2", "127.78.0.3"]

    op = zone.scale(pool.id, 3)
    clock.now += 30
    zone.tick()
    # The snapshots taken before did not move with the zone.
    assert (before.size, before.state) == (2, "running")
    assert {m.state for m in members} == {"starting"}
    now = zone.pool_snapshot(pool.id)
    assert (now.size, len(now.member_ids)) == (3, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        now.size = 1  # type: ignore[misc]

    (scaled,) = zone.operation_snapshots()
    assert (scaled.id, scaled.command, scaled.reference_id) == (op.id, op.command, pool.id)
    assert scaled.started_at == 1000.0  # the zone clock when the scale was asked
    assert {i.id for i in zone.instance_snapshots()} == set(now.member_ids)


def test_instance_snapshots_keep_the_leaving_members_members_does_not() -> None:
    zone, clock = make_zone()
    runtime = zone.runtime
    assert isinstance(runtime, RecordRuntime)
    gate = threading.Event()
    original_stop = runtime.stop

    def slow_stop(instance_id: str) -> None:
        assert gate.wait(timeout=10)
        original_stop(instance_id)

    runtime.stop = slow_stop  # type: ignore[method-assign]
    pool = zone.create_pool("web", 2)
    clock.now += 30
    zone.tick()
    newest = zone.members(pool.id)[-1]
    zone.scale(pool.id, 1)
    try:
        assert newest.id not in {m.id for m in zone.members(pool.id)}
        leaving = {i.id: i.state for i in zone.instance_snapshots()}
        assert leaving[newest.id] == "destroying"
        assert zone.pool_snapshot(pool.id).leaving_ids == (newest.id,)
    finally:
        gate.set()
        zone.close()


def test_service_snapshots_carry_the_pools_members_and_the_adopted_port() -> None:
    zone, _ = make_zone()
    pool = zone.create_pool("web", 2)
    check = HealthCheck(interval=1, timeout=1)
    lb = zone.create_load_balancer("nlb", pool.id, port=0, healthcheck=check)
    (service,) = zone.service_snapshots()
    assert (service.load_balancer_id, service.pool_id, service.port) == (lb.id, pool.id, 0)
    assert service.healthcheck == check
    assert service.members == tuple((m.id, m.address) for m in zone.members(pool.id))
    zone.set_service_port(service.id, 18123)
    assert zone.service_snapshots()[0].port == 18123


def test_a_health_source_is_what_get_load_balancer_reports_until_detached() -> None:
    zone, clock = make_zone()
    pool = zone.create_pool("web", 1)
    lb = zone.create_load_balancer("nlb", pool.id, port=18002)
    clock.now += 30
    zone.tick()
    service_id = lb.services[0].id
    assert zone.health(lb)[service_id] == {zone.members(pool.id)[0].address: True}

    def source(_: str) -> dict[str, bool]:
        return {"127.78.0.9": False}

    def other(_: str) -> dict[str, bool]:
        return {}

    zone.attach_health_source(source)
    assert zone.health(lb)[service_id] == {"127.78.0.9": False}
    zone.detach_health_source(other)  # not the one attached: changes nothing
    assert zone.health(lb)[service_id] == {"127.78.0.9": False}
    zone.detach_health_source(source)
    assert zone.health(lb)[service_id] == {zone.members(pool.id)[0].address: True}


def test_an_unknown_pool_is_a_404() -> None:
    zone, _ = make_zone()
    with pytest.raises(ZoneError) as refused:
        zone.pool_snapshot("no-such-pool")
    assert refused.value.status == 404


def test_every_exported_name_resolves() -> None:
    missing = [name for name in exo_zone.__all__ if not hasattr(exo_zone, name)]
    assert missing == []
