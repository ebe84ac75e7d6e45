"""The one measured-run loop against a real loopback server and a probe written for the test:
the load runs as a child process, every lab second is sampled and handed to the hooks, a fixed
window keeps exactly its seconds, and the report carries the probe's decisions and members."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from exo_lab.load.plan import LoadPlan
from exo_lab.measure import MeasuredRun, RunClock, RunFailed, RunHooks, SettlePlan
from exo_lab.report.run_report import MemberLife, Observation
from exo_scaler import DecisionRecord
from exo_zone import serve_in_thread


async def _answer(_: Request) -> JSONResponse:
    return JSONResponse({"instance": "only-member"})


@pytest.fixture
def url() -> Iterator[str]:
    with serve_in_thread(Starlette(routes=[Route("/", _answer)])) as served:
        yield served + "/"


class CountingProbe:
    """A pool of one member that always serves; fails `check()` when told to."""

    def __init__(self, out: Path, url: str, *, broken_at: float | None = None) -> None:
        self.out = out
        self.url = url
        self.broken_at = broken_at
        self.lines: list[str] = []
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        self.lines.append(text)

    def load_plan(self) -> LoadPlan:
        # 40 production seconds at ×20: 2 lab seconds of load at 5 rps.
        return LoadPlan(self.url, "step", 40.0, 20.0, base_rps=5.0, peak_rps=5.0)

    def settle_plan(self) -> SettlePlan:
        return SettlePlan(min_size=1, hold=0.0, bound=1.0)

    def check(self) -> None:
        if self.broken_at is not None and time.monotonic() - self.started > self.broken_at:
            raise RuntimeError("the system under test broke")

    def observe(self, t: float) -> Observation:
        return Observation(t=t, pool_size=1, supply=1, avg_cpu=50.0)

    def latest_decision(self) -> DecisionRecord | None:
        return None

    def decisions(self, load_start_wall: float) -> list[DecisionRecord]:
        return []

    def member_lives(self, clock: RunClock) -> list[MemberLife]:
        return [MemberLife("only-member", -10.0, None)]

    def demand_for(self, rps: float) -> int:
        return 1

    def config(self) -> dict[str, Any]:
        return {"speed": 20.0, "max_size": 1, "tick_seconds": 60.0}


class Recorder(RunHooks):
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def before_load(self) -> None:
        self.calls.append("before_load")

    def started(self, clock: RunClock) -> None:
        self.calls.append("started")

    def sampled(self, t: float, observation: Observation) -> None:
        self.calls.append(t)

    def finished(self) -> None:
        self.calls.append("finished")


def test_a_run_samples_each_second_within_its_window_and_reports(tmp_path: Path, url: str) -> None:
    probe, hooks = CountingProbe(tmp_path, url), Recorder()
    report = MeasuredRun(probe, [hooks], window=4.0).run()
    assert hooks.calls[:2] == ["before_load", "started"] and hooks.calls[-1] == "finished"
    assert [s.t for s in report.samples] == [0, 1, 2, 3]  # the window's seconds, once each
    assert all(r.scheduled < 4.0 for r in report.results) and report.results
    f = report.figures()
    assert f["failed_requests"] == 0 and f["requests"] == len(report.results) == 10
    # One member billed over the whole window: 4 lab s × 20.
    assert f["billed_instance_seconds"] == pytest.approx(80.0)
    assert report.config["evaluation_window_lab_s"] == 4.0
    assert (tmp_path / "logs" / "load.log").exists()
    assert any(line.startswith("t=") for line in probe.lines)


def test_a_broken_system_stops_the_load_and_ends_the_hooks(tmp_path: Path, url: str) -> None:
    probe, hooks = CountingProbe(tmp_path, url, broken_at=0.0), Recorder()
    with pytest.raises(RuntimeError, match="broke"):
        MeasuredRun(probe, [hooks]).run()
    assert hooks.calls[-1] == "finished"


def test_a_load_that_fails_is_a_run_failure(tmp_path: Path) -> None:
    probe = CountingProbe(tmp_path, "not-a-url")  # `exo-lab load` refuses it: exit 2
    with pytest.raises(RunFailed, match="the load generator failed"):
        MeasuredRun(probe).run()
