from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from exo_lab.load.generator import OpenLoopLoad, SecondStats, summarize
from exo_lab.load.profiles import LoadProfile, Segment, make_profile
from exo_zone import serve_in_thread


@pytest.mark.parametrize("name", ["step", "ramp", "spike"])
def test_arrivals_follow_the_rate(name: str) -> None:
    profile = make_profile(name, base_rps=2, peak_rps=20, duration=80)
    arrivals = profile.arrivals()
    expected = sum((s.start_rps + s.end_rps) / 2 * s.duration for s in profile.segments)
    assert abs(len(arrivals) - expected) <= 1
    assert arrivals == sorted(arrivals)
    assert arrivals[0] >= 0 and arrivals[-1] < profile.duration
    for start in range(0, 80, 10):
        count = sum(start <= a < start + 10 for a in arrivals)
        mean_rate = sum(profile.rate_at(start + x / 10) for x in range(100)) / 100
        assert abs(count - mean_rate * 10) <= 2


def test_speed_compresses_time_not_rate() -> None:
    profile = make_profile("step", base_rps=1, peak_rps=10, duration=80)
    fast = profile.scaled(10)
    assert fast.duration == pytest.approx(8)
    assert fast.rate_at(3) == profile.rate_at(30)


def test_bad_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        make_profile("zigzag", base_rps=1, peak_rps=2, duration=10)
    with pytest.raises(ValueError, match="base_rps"):
        make_profile("step", base_rps=5, peak_rps=2, duration=10)


@pytest.fixture
def slow_server() -> Iterator[tuple[str, list[float]]]:
    """A server whose answers take 200 ms: a closed-loop client would slow down; we must not."""
    arrivals: list[float] = []

    async def home(request: Request) -> JSONResponse:
        arrivals.append(time.monotonic())
        await asyncio.sleep(0.2)
        return JSONResponse({"instance": "member-a"})

    async def load(request: Request) -> JSONResponse:
        await asyncio.sleep(float(request.query_params["seconds"]))
        return JSONResponse({"instance": "member-b"})

    app = Starlette(routes=[Route("/", home), Route("/load", load)])
    with serve_in_thread(app) as url:
        yield url, arrivals


def test_open_loop_keeps_its_schedule_against_a_slow_server(
    slow_server: tuple[str, list[float]],
) -> None:
    url, arrivals = slow_server
    profile = LoadProfile("flat", (Segment(2.0, 20, 20),))
    seconds: list[SecondStats] = []
    started = time.monotonic()
    results = asyncio.run(OpenLoopLoad(url, profile, timeout=5, on_second=seconds.append).run())
    assert time.monotonic() - started < 2.0 + 5 + 2  # bounded by duration + timeout
    assert len(results) == 40
    assert all(r.ok and r.served_by == "member-a" for r in results)
    # 20 rps offered means 20 rps arrived, although each answer took 200 ms.
    assert 35 <= sum(1 for a in arrivals if a - started < 2.2) <= 40
    assert all(0.19 <= r.latency < 1.5 for r in results)
    summary = summarize(results)
    assert summary["failed"] == 0
    assert 0.19 <= summary["latency_p50"] < 1.0
    assert seconds
    assert sum(s.completed for s in seconds) == 40


def test_refused_connections_count_as_failures() -> None:
    profile = LoadProfile("flat", (Segment(0.5, 10, 10),))
    results = asyncio.run(OpenLoopLoad("http://127.0.0.1:9/", profile, timeout=1).run())
    assert len(results) == 5
    assert all(r.status == 0 and r.error for r in results)
    assert summarize(results)["failed"] == 5


def test_in_flight_cap_fails_fast_instead_of_queueing(slow_server: tuple[str, list[float]]) -> None:
    url, _ = slow_server
    profile = LoadProfile("burst", (Segment(0.5, 40, 40),))
    results = asyncio.run(OpenLoopLoad(url, profile, timeout=5, max_in_flight=3).run())
    overloaded = [r for r in results if r.error == "client-overload"]
    assert overloaded
    assert all(r.ok for r in results if not r.error)


def test_course_profile_runs_closed_loop_workers(slow_server: tuple[str, list[float]]) -> None:
    url, _ = slow_server
    profile = LoadProfile(
        "course", (Segment(1.0, 1, 1),), closed_loop_workers=10, load_seconds=0.25
    )
    results = asyncio.run(OpenLoopLoad(url, profile, timeout=2).run())
    assert all(r.served_by == "member-b" for r in results)
    # 10 workers × ~4 calls of 0.25 s each in one second
    assert 30 <= len(results) <= 50


# -- speed fidelity: what a sped-up run pays back --------------------------------------------


def test_client_timeout_is_production_time_above_a_floor_of_real_work() -> None:
    from exo_lab.load.plan import TIMEOUT_FLOOR, client_timeout

    assert client_timeout(1.0) == 10.0
    assert client_timeout(4.0) == 2.5
    assert client_timeout(10.0) == TIMEOUT_FLOOR == 2.0  # 1 s would fail real answers
    with pytest.raises(ValueError, match="positive"):
        client_timeout(0.0)


def test_real_start_is_paid_back_from_python_then_guest_boot() -> None:
    from exo_lab.dataplane.lifecycle import StagePlan, compensated

    plan = StagePlan(guest_boot=2.0, packages=2.5, python=3.0, shutdown=1.0)
    # ×10, a 4 s real start: 3.6 s due; python gives 3.0, guest boot the other 0.6.
    paid, short = compensated(plan, real_start=4.0, speed=10.0)
    assert (paid.python, paid.guest_boot, paid.packages) == (0.0, pytest.approx(1.4), 2.5)
    assert short == 0.0
    # ×20 with short stages: what no stage can give back is said.
    paid, short = compensated(StagePlan(1.0, 1.25, 1.5, 0.5), real_start=4.0, speed=20.0)
    assert (paid.python, paid.guest_boot) == (0.0, 0.0)
    assert short == pytest.approx(4.0 * 0.95 - 2.5)
    # ×1: the real start is production time already.
    assert compensated(plan, real_start=4.0, speed=1.0) == (plan, 0.0)


def test_noisy_profile_is_poisson_around_its_rate_and_reproducible() -> None:
    profile = make_profile("noisy", base_rps=4.0, peak_rps=4.0, duration=1000.0, seed=3)
    arrivals = profile.arrivals()
    assert arrivals == profile.arrivals()  # the same seed, the same load for every contestant
    assert (
        arrivals != make_profile("noisy", base_rps=4, peak_rps=4, duration=1000, seed=4).arrivals()
    )
    # 4000 expected; a Poisson count's standard deviation is √4000 ≈ 63: within 5 of them.
    assert abs(len(arrivals) - 4000) < 5 * 63
    assert all(0 <= t < 1000 for t in arrivals)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # Exponential gaps: many shorter than the even spacing of 0.25 s (63 % of them), unlike
    # the even profiles.
    assert 0.55 < sum(g < 0.25 for g in gaps) / len(gaps) < 0.71
