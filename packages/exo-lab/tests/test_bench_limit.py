"""The reactive limit: its schedule and its decisions as pure parts, then one scaler against a
real lab zone over the signed API."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from exo_client import NO_RETRY, ExoClient
from exo_lab.bench.limit import LimitScaler, LimitSettings, limit_decision
from exo_lab.report.quality import DemandSchedule
from exo_scaler import Direction, EventLog, Reason, read_decision_log
from exo_testkit import running_zone

UP, DOWN = Direction.UP, Direction.DOWN


def test_schedule_gives_the_oracles_size_at_a_time() -> None:
    schedule = DemandSchedule(1000.0, ((0.0, 1), (5.0, 4), (25.0, 1)))
    assert schedule.size_at(990.0) == 1  # before the load: its first size
    assert schedule.size_at(1004.9) == 1
    assert schedule.size_at(1005.0) == 4
    assert schedule.size_at(1030.0) == 1
    assert DemandSchedule.from_json(json.loads(json.dumps(schedule.to_json()))) == schedule
    with pytest.raises(ValueError, match="in time order"):
        DemandSchedule(0.0, ((5.0, 1), (1.0, 2)))
    with pytest.raises(ValueError, match="not a demand schedule"):
        DemandSchedule.from_json({"points": [[0, 1]]})


def test_schedule_of_a_profile_keeps_only_the_changes() -> None:
    def size_at(t: float) -> int:
        return 4 if 2.0 <= t < 6.0 else 1

    schedule = DemandSchedule.of(0.0, 8.0, size_at, resolution=0.5)
    assert schedule.points == ((0.0, 1), (2.0, 4), (6.0, 1))


def test_the_limit_waits_for_an_alert_that_points_the_oracles_way() -> None:
    # The oracle wants 4 of a pool of 1: a scale_down alert (idle at start) does not arm it.
    assert limit_decision(False, [DOWN], oracle=4, pool=1) == (False, None)
    assert limit_decision(False, [], oracle=4, pool=1) == (False, None)
    # The first scale_up: armed, straight to the oracle's size.
    assert limit_decision(False, [UP], oracle=4, pool=1) == (True, 4)
    # Armed: every later change is followed at the next tick, alert or not.
    assert limit_decision(True, [], oracle=1, pool=4) == (True, 1)
    assert limit_decision(True, [], oracle=4, pool=4) == (True, None)
    # Nothing to do when the pool already is the oracle's size, even with an alert.
    assert limit_decision(False, [UP], oracle=2, pool=2) == (False, None)


def test_one_tick_against_a_zone_scales_to_the_oracles_size_at_once(tmp_path: Path) -> None:
    schedule = tmp_path / "oracle-schedule.json"
    now = time.time()
    with running_zone({"web": 1}) as rz:
        pool_id = rz.pools["web"].id
        settings = LimitSettings(
            pool=pool_id, token="t", schedule=schedule, min_size=1, max_size=3, interval=1.0
        )
        lines: list[str] = []
        scaler = LimitScaler(
            settings, ExoClient(rz.settings, retry=NO_RETRY), EventLog(lines.append)
        )
        scaler.book.record([UP], "alertmanager")
        assert scaler.tick() is None  # no schedule yet: the load has not started
        # The load started 10 s ago; the oracle went to 5 at 5 s (capped at the max, 3).
        schedule.write_text(json.dumps({"load_start_wall": now - 10, "points": [[0, 1], [5, 5]]}))
        scaler.book.record([UP], "alertmanager")
        record = scaler.tick()
        assert record is not None and record.reason is Reason.SCALED
        assert (record.from_size, record.to_size) == (1, 3)
        assert rz.zone.pool_snapshot(pool_id).size == 3
        assert scaler.armed and scaler.tick() is None  # at the oracle's size: nothing to do
        logged = read_decision_log(lines)
        assert [(d.from_size, d.to_size, d.policy) for d in logged] == [(1, 3, "reactive-limit")]


def test_the_webhook_records_intents_behind_the_token_for_the_next_tick(tmp_path: Path) -> None:
    from exo_lab.bench.limit import create_app
    from exo_zone import serve_in_thread

    settings = LimitSettings(pool="p", token="secret", schedule=tmp_path / "none.json")
    with running_zone({"web": 1}) as rz:
        scaler = LimitScaler(settings, ExoClient(rz.settings, retry=NO_RETRY))
        with serve_in_thread(create_app(scaler)) as url:
            body = {
                "status": "firing",
                "alerts": [{"status": "firing", "labels": {"action": "scale_up"}}],
            }
            refused = httpx.post(f"{url}/webhook", json=body, timeout=5)
            assert refused.status_code == 401 and not scaler.book.pending()
            answer = httpx.post(f"{url}/webhook", json=body, timeout=5,
                                headers={"Authorization": "Bearer secret"})  # fmt: skip
            assert answer.status_code == 200 and answer.json() == {"recorded": ["up"]}
            assert [i.direction for i in scaler.book.pending()] == [UP]
            # The limit has exo-scaler's demand policy's triggers: the shedding rule's too.
            scaler.book.take()
            body["alerts"][0]["labels"]["trigger"] = "shedding"  # type: ignore[index]
            answer = httpx.post(f"{url}/webhook", json=body, timeout=5,
                                headers={"Authorization": "Bearer secret"})  # fmt: skip
            assert answer.json() == {"recorded": ["up"]}
            status = httpx.get(f"{url}/status", timeout=5).json()
            assert status["scaler"] == "reactive-limit" and status["armed"] is False


def test_the_limit_ticks_on_a_fixed_grid_however_long_a_tick_takes(tmp_path: Path) -> None:
    """The benchmark puts the load at a phase of this grid; a slow tick must not shift it."""
    settings = LimitSettings(pool="p", token="t", schedule=tmp_path / "none.json", interval=0.1)
    with running_zone({"web": 1}) as rz:
        scaler = LimitScaler(settings, ExoClient(rz.settings, retry=NO_RETRY))
        began: list[float] = []

        def slow_tick() -> None:
            began.append(time.monotonic())
            time.sleep(0.04)

        scaler.tick = slow_tick  # type: ignore[method-assign]
        stop = threading.Event()
        ticker = threading.Thread(target=scaler.run_ticks, args=(stop,), daemon=True)
        ticker.start()
        deadline = time.monotonic() + 10
        while len(began) < 11 and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        ticker.join(timeout=5)
    # Ten gaps of one interval each, not of an interval plus the tick's 40 ms.
    assert (began[10] - began[0]) / 10 == pytest.approx(0.1, abs=0.015)
