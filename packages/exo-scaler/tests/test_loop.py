"""The loop against a lab zone served on loopback: real API calls, real operations."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from exo_client import ExoClient, RetryPolicy
from exo_scaler.decision import Direction, Reason
from exo_scaler.overview import status_json
from exo_scaler.scaler import Scaler
from exo_scaler.settings import ScalerSettings
from exo_scaler.target import MemberState
from exo_testkit import RunningZone, running_zone
from exo_zone import RecordRuntime
from exo_zone.faults import FaultPlan, OperationOutcome, OutcomeFault

from .conftest import TOKEN, EventSink, exo_app

BEARER = {"Authorization": f"Bearer {TOKEN}"}
MUTATIONS = ("scale-instance-pool", "evict-instance-pool-members")


def scale_operations(rz: RunningZone) -> list[Any]:
    return [op for op in list(rz.zone.operations.values()) if op.command in MUTATIONS]


def build(
    rz: RunningZone,
    settings: ScalerSettings,
    sink: EventSink,
    client: ExoClient | None = None,
) -> Starlette:
    return exo_app(settings, client or rz.client(), events=sink.log())


def scaler_of(app: Starlette) -> Scaler:
    scaler: Scaler = app.state.scaler
    return scaler


async def landed(scaler: Scaler, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while scaler.in_flight is not None:
        assert time.monotonic() < deadline, "operation never landed"
        await asyncio.sleep(0.02)


@pytest.fixture
def zone_of_two() -> Iterator[RunningZone]:
    with running_zone({"web": 2}) as rz:
        yield rz


def test_sustained_webhooks_step_once_per_tick_up_to_max(
    make_settings: Callable[..., ScalerSettings],
    sink: EventSink,
    fixture_bytes: Callable[[str], bytes],
) -> None:
    body = fixture_bytes("grafana_firing_up.json")
    with running_zone({"web": 1}) as rz:
        # The seed-literal policy: one step a tick (the proportional one waits for warm-up).
        app = build(rz, make_settings(max_size=3, interval=0.4, policy="step"), sink)
        with TestClient(app) as client:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                assert client.post("/webhook", content=body, headers=BEARER).status_code == 200
                reasons = [d["reason"] for d in sink.of("decision")]
                if "at-max" in reasons:
                    break
                time.sleep(0.05)
        decisions = [d for d in sink.of("decision") if d["reason"] != "no-intent"]
        scaled = [d for d in decisions if d["reason"] == "scaled"]
        assert [(d["from"], d["to"]) for d in scaled] == [(1, 2), (2, 3)]
        assert "at-max" in [d["reason"] for d in decisions]
        assert {d["reason"] for d in decisions} <= {"scaled", "pool-busy", "at-max"}
        assert len(scale_operations(rz)) == 2
        assert rz.pools["web"].size == 3
        # The reader sees exactly what the scaler logged, typed.
        records = sink.records()
        assert [r.to_json() for r in records] == sink.of("decision")
        assert [(r.from_size, r.to_size) for r in records if r.scaled] == [(1, 2), (2, 3)]


def test_both_directions_in_one_tick_scale_up(
    make_settings: Callable[..., ScalerSettings], sink: EventSink, zone_of_two: RunningZone
) -> None:
    scaler = scaler_of(build(zone_of_two, make_settings(), sink))

    async def scenario() -> None:
        scaler.record_intent(Direction.DOWN, "test")
        scaler.record_intent(Direction.UP, "test")
        decision = await scaler.tick()
        assert (decision.action, decision.to_size, decision.reason) == ("up", 3, Reason.SCALED)
        await landed(scaler)

    asyncio.run(scenario())
    assert [op.command for op in scale_operations(zone_of_two)] == ["scale-instance-pool"]
    assert zone_of_two.pools["web"].size == 3
    line = sink.of("decision")[-1]
    assert {i["direction"] for i in line["intents"]} == {"up", "down"}


def test_bounds_at_max_and_at_min(
    make_settings: Callable[..., ScalerSettings], sink: EventSink, zone_of_two: RunningZone
) -> None:
    at_max = scaler_of(build(zone_of_two, make_settings(max_size=2), sink))
    at_min = scaler_of(build(zone_of_two, make_settings(min_size=2, max_size=4), sink))

    async def scenario() -> None:
        at_max.record_intent(Direction.UP, "test")
        assert (await at_max.tick()).reason is Reason.AT_MAX
        at_min.record_intent(Direction.DOWN, "test")
        assert (await at_min.tick()).reason is Reason.AT_MIN
        assert (await at_min.tick()).reason is Reason.NO_INTENT

    asyncio.run(scenario())
    assert scale_operations(zone_of_two) == []


def test_busy_pool_and_our_own_flight_are_skipped(
    make_settings: Callable[..., ScalerSettings], sink: EventSink, zone_of_two: RunningZone
) -> None:
    scaler = scaler_of(build(zone_of_two, make_settings(), sink))
    pool = zone_of_two.pools["web"]

    async def scenario() -> None:
        with zone_of_two.zone.lock:
            pool.state = "updating"
        scaler.record_intent(Direction.UP, "test")
        assert (await scaler.tick()).reason is Reason.POOL_BUSY
        with zone_of_two.zone.lock:
            pool.state = "running"
        scaler.record_intent(Direction.UP, "test")
        assert (await scaler.tick()).reason is Reason.SCALED
        # The operation is pending (the zone takes ~0.3 s): a second decision must wait.
        scaler.record_intent(Direction.UP, "test")
        busy = await scaler.tick()
        assert busy.reason is Reason.POOL_BUSY
        assert status_json(scaler)["in_flight"] is None or busy.detail
        await landed(scaler)

    asyncio.run(scenario())
    assert len(scale_operations(zone_of_two)) == 1
    assert sink.of("operation")[-1]["result"] == "success"


@pytest.mark.parametrize("status", [503, 429])
def test_injected_api_errors_are_reported_and_never_double_scale(
    make_settings: Callable[..., ScalerSettings],
    sink: EventSink,
    zone_of_two: RunningZone,
    status: int,
) -> None:
    zone_of_two.api.faults = FaultPlan(
        rate=1.0, statuses=(status,), operations=frozenset({"scale-instance-pool"})
    )
    scaler = scaler_of(build(zone_of_two, make_settings(), sink))

    async def scenario() -> None:
        scaler.record_intent(Direction.UP, "test")
        decision = await scaler.tick()
        assert decision.reason is Reason.API_ERROR
        assert decision.to_size == decision.from_size == 2

    asyncio.run(scenario())
    assert scale_operations(zone_of_two) == []
    tried = zone_of_two.api.faults.injected
    # 503 on a mutation is never repeated; 429 (refused before any work) is, a bounded number.
    assert tried == (1 if status == 503 else 4)


def test_flaky_api_one_operation_at_most_per_decision(
    make_settings: Callable[..., ScalerSettings], sink: EventSink
) -> None:
    with running_zone({"web": 1}) as rz:
        rz.api.faults = FaultPlan(
            rate=0.5,
            statuses=(503, 429),
            operations=frozenset({"scale-instance-pool"}),
            seed=7,
        )
        scaler = scaler_of(build(rz, make_settings(max_size=10, policy="step"), sink))

        async def scenario() -> None:
            for _ in range(8):
                scaler.record_intent(Direction.UP, "test")
                await scaler.tick()
                await landed(scaler)
                while rz.pools["web"].state != "running":
                    await asyncio.sleep(0.02)

        asyncio.run(scenario())
        reasons = [d["reason"] for d in sink.of("decision")]
        assert set(reasons) <= {"scaled", "api-error"}
        assert "api-error" in reasons
        assert len(scale_operations(rz)) == reasons.count("scaled")
        assert rz.pools["web"].size == 1 + reasons.count("scaled")


def test_api_unreachable_is_an_api_error_not_a_crash(
    make_settings: Callable[..., ScalerSettings], sink: EventSink, offline_client: ExoClient
) -> None:
    offline_client.retry = RetryPolicy(attempts=1)
    app = exo_app(make_settings(interval=0.1), offline_client, events=sink.log())
    with TestClient(app) as client:
        client.get("/up", headers=BEARER)
        deadline = time.monotonic() + 20
        while len(sink.of("decision")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.get("/healthz").status_code == 200
    reasons = [d["reason"] for d in sink.of("decision")]
    assert reasons[:2] == ["api-error", "api-error"]


def test_a_restart_never_double_scales(
    make_settings: Callable[..., ScalerSettings], sink: EventSink, zone_of_two: RunningZone
) -> None:
    first = scaler_of(build(zone_of_two, make_settings(), sink))
    second = scaler_of(build(zone_of_two, make_settings(), sink))

    async def scenario() -> None:
        first.record_intent(Direction.UP, "test")
        assert (await first.tick()).reason is Reason.SCALED
        # "Restart": a fresh scaler sees the same webhook re-sent while the pool still scales.
        second.record_intent(Direction.UP, "test")
        assert (await second.tick()).reason is Reason.POOL_BUSY
        await landed(first)
        while zone_of_two.pools["web"].state != "running":
            await asyncio.sleep(0.02)
        # No new webhook: nothing happens, whatever the first scaler did before.
        third = scaler_of(build(zone_of_two, make_settings(), sink))
        quiet = await third.tick()
        assert (quiet.reason, quiet.from_size) == (Reason.NO_INTENT, 3)

    asyncio.run(scenario())
    assert len(scale_operations(zone_of_two)) == 1
    assert zone_of_two.pools["web"].size == 3


def test_dry_run_and_pause_never_call_the_api(
    make_settings: Callable[..., ScalerSettings], sink: EventSink, zone_of_two: RunningZone
) -> None:
    dry = scaler_of(build(zone_of_two, make_settings(dry_run=True), sink))
    paused = scaler_of(build(zone_of_two, make_settings(), sink))
    paused.set_paused(True)

    async def scenario() -> None:
        dry.record_intent(Direction.UP, "test")
        decision = await dry.tick()
        assert (decision.reason, decision.to_size) == (Reason.DRY_RUN, 3)
        paused.record_intent(Direction.DOWN, "test")
        assert (await paused.tick()).reason is Reason.PAUSED

    asyncio.run(scenario())
    assert scale_operations(zone_of_two) == []


class DrainRecorder(BaseHTTPRequestHandler):
    calls: list[dict[str, Any]]

    def do_POST(self) -> None:
        self.calls.append(
            {
                "path": self.path,
                "authorization": self.headers.get("Authorization"),
                "at": time.monotonic(),
            }
        )
        self.send_response(202)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_args: Any) -> None:
        pass


@dataclass
class DrainTarget:
    """The member the scaler will evict, and what its stand-in admin API was asked."""

    member: Any
    calls: list[dict[str, Any]]
    drain_url: str

    def settings(self, make_settings: Callable[..., ScalerSettings], **more: Any) -> Any:
        return make_settings(drain_token="admin-secret", drain_url=self.drain_url, **more)


@contextlib.contextmanager
def drain_recorder(rz: RunningZone) -> Iterator[DrainTarget]:
    """slow-web's admin API, recorded, on the member a scale-in evicts: the newest (created-at,
    then id, the scaler's tie-break, since seeded members share an instant)."""
    newest = max(rz.zone.members(rz.pools["web"].id), key=lambda m: (m.created_at, m.id))
    calls: list[dict[str, Any]] = []
    recorder = type("Recorder", (DrainRecorder,), {"calls": calls})
    server = ThreadingHTTPServer((newest.address, 0), recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield DrainTarget(newest, calls, f"http://{{ip}}:{server.server_address[1]}/admin/drain")
    finally:
        server.shutdown()
        server.server_close()


def test_drain_is_called_with_the_token_before_the_evict(
    make_settings: Callable[..., ScalerSettings], sink: EventSink, zone_of_two: RunningZone
) -> None:
    with drain_recorder(zone_of_two) as target:
        settings = target.settings(make_settings, drain_seconds=0.3)
        scaler = scaler_of(build(zone_of_two, settings, sink))

        async def scenario() -> None:
            scaler.record_intent(Direction.DOWN, "test")
            decision = await scaler.tick()
            assert (decision.reason, decision.to_size) == (Reason.SCALED, 1)
            await landed(scaler)

        asyncio.run(scenario())
    newest, calls = target.member, target.calls
    [evict] = scale_operations(zone_of_two)
    assert evict.command == "evict-instance-pool-members"
    assert newest.id not in zone_of_two.pools["web"].member_ids
    [record] = sink.records()
    assert (record.action, record.reason, record.from_size, record.to_size) == (
        Direction.DOWN,
        Reason.SCALED,
        2,
        1,
    )
    assert (record.operation_id, record.members) == (evict.id, (newest.id,))
    assert record.pool == zone_of_two.pools["web"].id
    assert len(calls) == 1
    assert calls[0]["path"] == "/admin/drain?exit=false"
    assert calls[0]["authorization"] == "Bearer admin-secret"
    evict_sent_at = evict.ready_at - zone_of_two.zone.timings.operation_delay
    assert evict_sent_at - calls[0]["at"] >= 0.3
    assert "admin-secret" not in repr(sink.lines)


def test_routes_answer_while_a_slow_scale_call_is_in_flight(
    make_settings: Callable[..., ScalerSettings],
    sink: EventSink,
    fixture_bytes: Callable[[str], bytes],
    zone_of_two: RunningZone,
) -> None:
    zone_of_two.api.faults = FaultPlan(latency=3.0, operations=frozenset({"scale-instance-pool"}))
    app = build(zone_of_two, make_settings(interval=0.2), sink)
    with TestClient(app) as client:
        client.get("/up", headers=BEARER)
        deadline = time.monotonic() + 20
        while (client.get("/status").json()["in_flight"] or {}).get("phase") != "calling":
            assert time.monotonic() < deadline, "the scale call never started"
            time.sleep(0.02)
        body = fixture_bytes("alertmanager_firing_up.json")
        assert client.post("/webhook", content=body, headers=BEARER).status_code == 200
        # Answered while the (3 s) scale call is still out: the loop never blocks the routes.
        assert client.get("/status").json()["in_flight"]["phase"] == "calling"
        while not sink.of("operation"):
            assert time.monotonic() < deadline, "the operation never landed"
            time.sleep(0.05)
    assert len(scale_operations(zone_of_two)) == 1


def test_a_failed_evict_puts_the_drained_member_back_in_service(
    make_settings: Callable[..., ScalerSettings], sink: EventSink, zone_of_two: RunningZone
) -> None:
    zone_of_two.api.faults = FaultPlan(
        rate=1.0, statuses=(503,), operations=frozenset({"evict-instance-pool-members"})
    )
    with drain_recorder(zone_of_two) as target:
        settings = target.settings(make_settings, drain_seconds=0.05)
        scaler = scaler_of(build(zone_of_two, settings, sink))

        async def scenario() -> None:
            scaler.record_intent(Direction.DOWN, "test")
            decision = await scaler.tick()
            assert decision.reason == Reason.API_ERROR
            assert scaler.in_flight is None

        asyncio.run(scenario())
    newest, calls = target.member, target.calls
    assert scale_operations(zone_of_two) == []
    assert newest.id in zone_of_two.pools["web"].member_ids
    assert [c["path"] for c in calls] == ["/admin/drain?exit=false", "/admin/resume"]
    assert all(c["authorization"] == "Bearer admin-secret" for c in calls)


def test_an_evict_operation_that_fails_resumes_the_drained_member(
    make_settings: Callable[..., ScalerSettings], sink: EventSink, zone_of_two: RunningZone
) -> None:
    # The evict call is accepted (an operation, pending) and the operation then ends
    # `failure`, leaving the members in place: exo-zone's outcome fault.
    zone_of_two.api.faults = FaultPlan(
        outcome=OutcomeFault(
            OperationOutcome(state="failure", reason="unavailable"),
            commands=frozenset({"evict-instance-pool-members"}),
        )
    )
    with drain_recorder(zone_of_two) as target:
        settings = target.settings(make_settings, drain_seconds=0.05)
        scaler = scaler_of(build(zone_of_two, settings, sink))

        async def scenario() -> None:
            scaler.record_intent(Direction.DOWN, "test")
            assert (await scaler.tick()).reason is Reason.SCALED  # the evict was accepted
            await landed(scaler)

        asyncio.run(scenario())
    newest, calls = target.member, target.calls
    assert sink.of("operation")[-1]["result"] == "failure"
    assert [c["path"] for c in calls] == ["/admin/drain?exit=false", "/admin/resume"]
    [resume] = sink.of("resume")
    assert resume["addresses"] == [newest.address] and "failure" in resume["why"]


def test_busy_intents_are_kept_until_the_pool_runs_again(
    make_settings: Callable[..., ScalerSettings], sink: EventSink, zone_of_two: RunningZone
) -> None:
    scaler = scaler_of(build(zone_of_two, make_settings(policy="step"), sink))
    pool = zone_of_two.pools["web"]

    async def scenario() -> None:
        with zone_of_two.zone.lock:
            pool.state = "updating"
        scaler.record_intent(Direction.UP, "test")
        assert (await scaler.tick()).reason is Reason.POOL_BUSY
        with zone_of_two.zone.lock:
            pool.state = "running"
        # No webhook in between: the kept intent acts at the first running tick.
        decision = await scaler.tick()
        assert (decision.reason, decision.to_size) == (Reason.SCALED, 3)
        await landed(scaler)

    asyncio.run(scenario())
    assert len(scale_operations(zone_of_two)) == 1


def test_decisions_endpoint_is_authenticated_and_filters_by_time(
    make_settings: Callable[..., ScalerSettings], sink: EventSink, zone_of_two: RunningZone
) -> None:
    app = build(zone_of_two, make_settings(dry_run=True), sink)
    scaler = scaler_of(app)

    async def scenario() -> None:
        scaler.record_intent(Direction.UP, "test")
        await scaler.tick()
        await scaler.tick()

    asyncio.run(scenario())
    client = TestClient(app)  # no lifespan: the loop stays still while we read
    assert client.get("/decisions").status_code == 401
    body = client.get("/decisions", headers=BEARER).json()
    assert [d["reason"] for d in body["decisions"]] == ["dry-run", "no-intent"]
    assert body["decisions"] == [r.to_json() for r in sink.records()]
    last = body["decisions"][-1]["wall_time"]
    since = client.get(f"/decisions?since={last}", headers=BEARER).json()["decisions"]
    assert [d["tick"] for d in since] == [2]
    for bad in ("yesterday", "nan", "inf", ""):
        assert client.get(f"/decisions?since={bad}", headers=BEARER).status_code == 400


class UnreadyRuntime(RecordRuntime):
    """Members whose VM runs while the app on some of them (`unready`) never answers."""

    def __init__(self) -> None:
        super().__init__()
        self.unready: set[str] = set()

    def is_ready(self, instance_id: str) -> bool:
        return super().is_ready(instance_id) and instance_id not in self.unready


def test_serving_is_what_the_nlb_health_checks_pass(
    make_settings: Callable[..., ScalerSettings], sink: EventSink
) -> None:
    """With --nlb a member serves when the NLB's health check passes (get-load-balancer's
    healthcheck-status), not when its VM runs; without it, the VM state is all there is."""
    runtime = UnreadyRuntime()
    with running_zone({"web": 3}, runtime=runtime) as rz:
        pool = rz.pools["web"]
        lb = rz.zone.create_load_balancer("nlb", pool.id, port=8080)
        deadline = time.monotonic() + 10
        while not all(i.state == "running" for i in rz.zone.members(pool.id)):
            assert time.monotonic() < deadline, "members never ran"
            time.sleep(0.02)
        runtime.unready.add(pool.member_ids[0])
        by_nlb = build(rz, make_settings(pool=pool.id, nlb=lb.id), sink).state.target
        by_vm = build(rz, make_settings(pool=pool.id), sink).state.target
        seen = asyncio.run(by_nlb.status(members=True))
        assert (seen.serving, seen.serving_from) == (2, "nlb")
        assert seen.counted(MemberState.WARMING) == 1
        assert asyncio.run(by_vm.status(members=True)).serving == 3
        assert asyncio.run(by_vm.status()).members is None  # not asked for: not read
        # An NLB without a service for this pool: health unknown, said so, the loop survives.
        other = rz.zone.create_pool("other", 1)
        stray = rz.zone.create_load_balancer("stray", other.id, port=8081)
        wrong = build(rz, make_settings(pool=pool.id, nlb=stray.id), sink).state.target
        unknown = asyncio.run(wrong.status(members=True))
        assert unknown.serving is None
        assert "no service for instance pool" in (unknown.health_refused or "")


def test_the_zones_instance_quota_caps_a_scale_up_before_the_api_refuses_it(
    make_settings: Callable[..., ScalerSettings], sink: EventSink
) -> None:
    with running_zone({"web": 2}) as rz:
        pool = rz.pools["web"]
        rz.api.faults = FaultPlan(quota_instances=3)
        app = build(rz, make_settings(pool=pool.id, max_size=5, interval=3600.0), sink)
        with TestClient(app):
            scaler = scaler_of(app)
            scaler.record_intents((Direction.UP,), "test", {Direction.UP: 99.0})
            decision = asyncio.run(scaler.tick())
            # Saturated: twice the 2 serving; the quota (3 instances, 2 used) allows 3.
            assert (decision.desired, decision.reason, decision.to_size) == (4, Reason.SCALED, 3)
            asyncio.run(landed(scaler))
        # Nothing was asked beyond the quota, so the pool is not degraded by it.
        assert rz.zone.pools[pool.id].state != "degraded"
        assert rz.zone.pools[pool.id].size == 3
