"""The demand policy through the whole scaler: real payload shapes posted to the app's
/webhook, the loop's ticks on a scripted target (create_app takes any target)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from starlette.testclient import TestClient

from exo_scaler import DecisionRecord, create_app
from exo_scaler.decision import Reason
from exo_scaler.scaler import Scaler
from exo_scaler.settings import ScalerSettings

from .conftest import TOKEN, EventSink, ScriptedTarget

BEARER = {"Authorization": f"Bearer {TOKEN}"}


def payload(fixture_bytes: Callable[[str], bytes], name: str, **values: float) -> bytes:
    """The fixture, evaluated now (its `evaluated_at` is the rule's `time()`)."""
    body: dict[str, Any] = json.loads(fixture_bytes(name))
    body["alerts"][0]["values"].update(values, evaluated_at=time.time())
    return json.dumps(body).encode()


def test_one_member_to_the_need_in_one_round_then_scale_in_from_the_window(
    make_settings: Callable[..., ScalerSettings],
    sink: EventSink,
    fixture_bytes: Callable[[str], bytes],
) -> None:
    # A 0.2 s tick: the signals' age limit is 0.6 s and the scale-in window 1 s.
    settings = make_settings(policy="demand", max_size=10, interval=0.2)
    target = ScriptedTarget(size=1, serving_now=1)
    app = create_app(settings, target, events=sink.log())
    scaler: Scaler = app.state.scaler
    client = TestClient(app)  # no lifespan: the ticks below are the loop's

    def webhook(name: str, **values: float) -> None:
        body = payload(fixture_bytes, name, **values)
        assert client.post("/webhook", content=body, headers=BEARER).status_code == 200

    # 4.4 members' worth on one saturated member: 2 first (the course grader polls for it).
    webhook("grafana_demand_up.json")
    first = asyncio.run(scaler.tick())
    assert (first.from_size, first.to_size, first.reason) == (1, 2, Reason.SCALED)
    # That operation has ended; the new member still boots: straight to the need, 5.
    webhook("grafana_demand_up.json")
    second = asyncio.run(scaler.tick())
    assert (second.from_size, second.to_size, second.reason) == (2, 5, Reason.SCALED)
    assert target.scaled == [(1, 2), (2, 5)]
    # They all serve and the load drops to 0.8 members' worth: the window still holds the 5.
    target.serving_now = 5
    webhook("grafana_demand_down.json", serving=5)
    held = asyncio.run(scaler.tick())
    assert (held.to_size, held.reason) == (5, Reason.AT_NEED)
    # Past the window (5 ticks): down, at most 2 a tick, the CPU on 5 members asking for 2.
    time.sleep(settings.scale_in_window + 0.1)
    webhook("grafana_demand_down.json", serving=5)
    down = asyncio.run(scaler.tick())
    assert (down.from_size, down.to_size, down.reason) == (5, 3, Reason.SCALED)
    assert [c.cap for c in down.capped_by] == ["step-limit"]
    assert target.scaled[-1] == (5, 3)

    records = sink.records()
    assert [r.reason for r in records] == [Reason.SCALED, Reason.SCALED, Reason.AT_NEED,
                                          Reason.SCALED]  # fmt: skip
    for record in records:
        assert record.wish is not None and record.wish.fallback is None
        assert record.wish.signals["cpu_per_request"] == 0.1
        assert record.wish.signals_age is not None
        assert 0 <= record.wish.signals_age <= settings.signal_max_age
    assert [r.wish.need for r in records if r.wish] == [5, 5, 1, 1]
    # What /decisions serves is what the log says.
    served = client.get("/decisions", headers=BEARER).json()["decisions"]
    assert [DecisionRecord.from_json(d) for d in served] == records


def test_a_stale_or_valueless_alert_falls_back_to_the_cpu_policy_and_says_so(
    make_settings: Callable[..., ScalerSettings],
    sink: EventSink,
    fixture_bytes: Callable[[str], bytes],
) -> None:
    settings = make_settings(policy="demand", max_size=10, interval=0.2)
    target = ScriptedTarget(size=2, serving_now=2)
    app = create_app(settings, target, events=sink.log())
    scaler: Scaler = app.state.scaler
    client = TestClient(app)
    stale: dict[str, Any] = json.loads(fixture_bytes("grafana_demand_up.json"))
    stale["alerts"][0]["values"]["evaluated_at"] = time.time() - 10  # 50 ticks old
    client.post("/webhook", content=json.dumps(stale).encode(), headers=BEARER)
    decision = asyncio.run(scaler.tick())
    # The CPU policy: 99.31 % on 2 is saturated, twice what serves.
    assert (decision.to_size, decision.reason) == (4, Reason.SCALED)
    assert decision.wish is not None and decision.wish.fallback is not None
    assert decision.wish.fallback.endswith("s old, over the 0.6s limit")
    client.post("/webhook", content=fixture_bytes("grafana_demand_values_dropped.json"),
                headers=BEARER)  # fmt: skip
    target.serving_now = 4
    dropped = asyncio.run(scaler.tick())
    assert dropped.wish is not None
    assert dropped.wish.fallback == "no arrivals, cpu_per_request, serving signal"
    [line] = [d for d in sink.of("decision") if d["tick"] == 2]
    assert line["wish"]["fallback"] == dropped.wish.fallback and line["signals"] is None


def on_one_member(
    make_settings: Callable[..., ScalerSettings], sink: EventSink, **overrides: Any
) -> tuple[Scaler, ScriptedTarget, TestClient]:
    """A demand scaler on a pool of one serving member, with a 60 s tick that never comes
    here: only the end of an operation can move the pool on between the ticks run by hand."""
    settings = make_settings(policy="demand", interval=60, **{"max_size": 10, **overrides})
    target = ScriptedTarget(size=1, serving_now=1)
    app = create_app(settings, target, events=sink.log())
    return app.state.scaler, target, TestClient(app)


def post(client: TestClient, fixture_bytes: Callable[[str], bytes], name: str,
         **values: float) -> None:  # fmt: skip
    body = payload(fixture_bytes, name, **values)
    assert client.post("/webhook", content=body, headers=BEARER).status_code == 200


def test_the_2_first_step_goes_on_to_the_need_as_soon_as_its_operation_ends(
    make_settings: Callable[..., ScalerSettings],
    sink: EventSink,
    fixture_bytes: Callable[[str], bytes],
) -> None:
    scaler, target, client = on_one_member(make_settings, sink)
    post(client, fixture_bytes, "grafana_demand_up.json")

    async def scenario() -> None:
        first = await scaler.tick()
        assert (first.from_size, first.to_size, first.reason) == (1, 2, Reason.SCALED)
        assert first.wish is not None and first.wish.then == 5
        # Until it ends, nothing more: the grader's poll must be able to see the 2.
        await asyncio.sleep(0.01)
        assert target.scaled == [(1, 2)] and scaler._follow_up is None
        await target.end_operations("success")
        assert scaler._follow_up is not None
        after = await scaler._follow_up
        assert after is not None
        assert (after.from_size, after.to_size, after.reason) == (2, 5, Reason.SCALED)
        assert after.wish is not None and after.wish.then is None  # one follow-up, no chain
        await target.end_operations("success")
        assert scaler._follow_up is not None and (await scaler._follow_up) is after

    asyncio.run(scenario())
    assert target.scaled == [(1, 2), (2, 5)]
    first, after = sink.records()
    assert (first.tick, first.follow_up) == (1, False)
    assert (after.tick, after.follow_up) == (1, True)  # the same tick's second half
    assert DecisionRecord.from_json(after.to_line()) == after
    assert DecisionRecord.from_json(first.to_line()).wish == first.wish


def test_no_follow_up_when_the_2_first_operation_fails_or_2_is_the_need(
    make_settings: Callable[..., ScalerSettings],
    sink: EventSink,
    fixture_bytes: Callable[[str], bytes],
) -> None:
    scaler, target, client = on_one_member(make_settings, sink)

    def webhook(**values: float) -> None:
        post(client, fixture_bytes, "grafana_demand_up.json", **values)

    async def failed() -> None:
        await scaler.tick()
        await target.end_operations("failure")
        await asyncio.sleep(0.01)

    webhook()
    asyncio.run(failed())
    # The pool is as the failed operation left it; the next tick decides from a new read.
    assert target.scaled == [(1, 2)] and scaler._follow_up is None
    assert scaler.intents.pending() == ()

    # 1.6 members' worth (0.1 CPU-s a request, 1 core at 70 %): the need is 2, no second step.
    target.size = 1
    webhook(arrivals=11.2)

    async def at_two() -> None:
        decision = await scaler.tick()
        assert decision.to_size == 2 and decision.wish is not None
        assert (decision.wish.need, decision.wish.then) == (2, None)
        await target.end_operations("success")
        await asyncio.sleep(0.01)

    asyncio.run(at_two())
    assert target.scaled == [(1, 2), (1, 2)] and scaler._follow_up is None
    assert [r.follow_up for r in sink.records()] == [False, False]


def test_no_follow_up_after_a_down_alert_a_tick_that_came_first_a_cap_or_the_stop(
    make_settings: Callable[..., ScalerSettings],
    sink: EventSink,
    fixture_bytes: Callable[[str], bytes],
) -> None:
    # The load fell while the pool grew: a down intent waits, so no going on up.
    scaler, target, client = on_one_member(make_settings, sink)
    post(client, fixture_bytes, "grafana_demand_up.json")

    async def fell() -> None:
        await scaler.tick()
        post(client, fixture_bytes, "grafana_demand_down.json")
        await target.end_operations("success")
        await asyncio.sleep(0.01)

    asyncio.run(fell())
    assert target.scaled == [(1, 2)] and scaler._follow_up is None
    assert [i.direction.value for i in scaler.intents.pending()] == ["down"]

    # A tick took the lock first: it decided on the intents, the follow-up records nothing.
    scaler, target, client = on_one_member(make_settings, sink)
    post(client, fixture_bytes, "grafana_demand_up.json")

    async def tick_first() -> None:
        await scaler.tick()
        await target.end_operations("success")
        await scaler.tick()  # before the follow-up's first step
        assert scaler._follow_up is not None and (await scaler._follow_up) is None

    before = len(sink.records())
    asyncio.run(tick_first())
    assert target.scaled == [(1, 2), (2, 5)]
    assert [r.follow_up for r in sink.records()[before:]] == [False, False]

    # --max 2 held the first step: the second would be held the same way.
    scaler, target, client = on_one_member(make_settings, sink, max_size=2)
    post(client, fixture_bytes, "grafana_demand_up.json")

    async def capped() -> None:
        first = await scaler.tick()
        assert (first.to_size, first.wish and first.wish.then) == (2, 5)
        assert target.endings == []  # no follow-up was asked for

    asyncio.run(capped())

    # The loop stopped: an operation that ends now starts nothing.
    scaler, target, client = on_one_member(make_settings, sink)
    post(client, fixture_bytes, "grafana_demand_up.json")

    async def stopped() -> None:
        await scaler.tick()
        await scaler.close()
        await target.end_operations("success")
        await asyncio.sleep(0.01)

    asyncio.run(stopped())
    assert target.scaled == [(1, 2)] and scaler._follow_up is None
