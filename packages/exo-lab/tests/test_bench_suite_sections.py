"""The suite's sections ask for the right lab runs (the runs themselves replaced by a stub)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from exo_lab.bench.analysis import Poll
from exo_lab.bench.suite import BenchPlan, Suite
from exo_lab.stack.settings import LabSettings


def _suite(tmp_path: Path, quick: bool, course_speed: float | None) -> tuple[Suite, list[Any]]:
    asked: list[Any] = []
    suite = Suite(BenchPlan.for_mode(quick, course_speed), tmp_path, None, ("course",), say=str)

    def lab(name: str, settings: LabSettings, **kwargs: Any) -> Any:
        asked.append((name, settings, kwargs))
        polls = [Poll(0, 1, 1), Poll(10, 2, 2)]
        return SimpleNamespace(polls=polls, poll_lateness=[0.1])

    suite.lab = lab  # type: ignore[method-assign]
    return suite, asked


def test_course_runs_each_contestant_without_settling(tmp_path: Path) -> None:
    suite, asked = _suite(tmp_path, quick=False, course_speed=None)
    suite.course()
    assert [s.scaler for _, s, _ in asked] == ["naive", "seed", "exo-scaler"]
    assert all(s.speed == 1 and s.profile == "course" and s.initial_size == 1 for _, s, _ in asked)
    assert all(k == {"course_polls": True, "settle": False} for _, _, k in asked)
    verdicts = suite.results["sections"]["course"]["verdicts"]
    assert verdicts["exo-scaler"]["passed"] is True


@pytest.mark.parametrize(("speed", "runs"), [(None, 0), (20.0, 3)])
def test_course_is_skipped_in_quick_mode_unless_a_speed_is_given(
    tmp_path: Path, speed: float | None, runs: int
) -> None:
    suite, asked = _suite(tmp_path, quick=True, course_speed=speed)
    suite.course()
    assert len(asked) == runs
    if runs:
        assert all(name.endswith("-x20") for name, _, _ in asked)  # labelled sped up


def _sweep_suite(tmp_path: Path, plan: BenchPlan, section: str) -> tuple[Suite, list[Any]]:
    asked: list[Any] = []
    suite = Suite(plan, tmp_path, None, (section,), say=str)

    def lab(name: str, settings: LabSettings, **kwargs: Any) -> Any:
        asked.append((name, settings, kwargs))
        figures = {"tau_u": 10.0, "failed_share": 0.1, "max_pool_size": 4, "oracle_peak": 4}
        return SimpleNamespace(figures=figures)

    suite.lab = lab  # type: ignore[method-assign]
    return suite, asked


def test_sweep_runs_every_contestant_per_repeat_over_one_window(tmp_path: Path) -> None:
    plan = BenchPlan.for_mode(False, repeats=3, scenarios=("step-2.6", "kill-3.5"))
    suite, asked = _sweep_suite(tmp_path, plan, "sweep")
    suite.sweep()
    assert len(asked) == 2 * 3 * 4
    first = asked[:4]
    assert [s.scaler for _, s, _ in first] == ["naive", "seed", "exo-scaler", "limit"]
    # One window per scenario, the same for every contestant: the load plus the tail.
    windows = {k["window"] for name, _, k in asked if name.startswith("step-2.6")}
    assert windows == {(1200 + 490) / 10}
    assert {s.peak_members for name, s, _ in asked if name.startswith("step-2.6")} == {2.6}
    # The repeats draw other Poisson seeds; the kill scenario kills a member at 45 % of its load.
    assert {s.load_seed for _, s, _ in asked} == {1, 2, 3}
    # Each repeat starts the load at another third of the tick; naive has no tick.
    phases = {(s.scaler, s.load_seed): s.tick_phase for n, s, _ in asked if "step" in n}
    assert [phases["exo-scaler", r] for r in (1, 2, 3)] == pytest.approx([0, 1 / 3, 2 / 3])
    assert [phases["limit", r] for r in (1, 2, 3)] == [phases["seed", r] for r in (1, 2, 3)]
    assert {phases["naive", r] for r in (1, 2, 3)} == {None}
    kills = [k["events"] for name, _, k in asked if name.startswith("kill")]
    assert all(e[0].kind == "kill-member" and e[0].at == pytest.approx(54.0) for e in kills)
    section = suite.results["sections"]["sweep"]["step-2.6"]
    assert section["spreads"]["limit"]["failed_pct"]["median"] == pytest.approx(10.0)


def test_a_sweep_cut_short_keeps_every_scenario_it_finished(tmp_path: Path) -> None:
    plan = BenchPlan.for_mode(False, repeats=1, scenarios=("step-2.6", "step-3.5"))
    suite, _ = _sweep_suite(tmp_path, plan, "sweep")
    stub = suite.lab

    def lab(name: str, settings: LabSettings, **kwargs: Any) -> Any:
        if name.startswith("step-3.5"):
            raise KeyboardInterrupt  # the session ends mid-scenario
        return stub(name, settings, **kwargs)

    suite.lab = lab  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        suite.sweep()
    summary = (tmp_path / "summary.md").read_text()
    assert "partial: the suite is still running" in summary
    assert "| step-2.6: figure |" in summary and "step-3.5:" not in summary
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["partial"] is True and list(results["sections"]["sweep"]) == ["step-2.6"]


def _kept_report(folder: Path, name: str, **config: Any) -> None:
    run = folder / "runs" / name
    run.mkdir(parents=True)
    figures = {"tau_u": 99.0, "failed_share": 0.5, "max_pool_size": 4, "oracle_peak": 4}
    (run / "report.json").write_text(json.dumps({"config": config, "figures": figures}))


def test_resume_reuses_the_runs_made_with_the_same_settings(tmp_path: Path) -> None:
    plan = BenchPlan.for_mode(False, repeats=1, scenarios=("step-2.6",))
    same = {"profile": "step", "speed": 10.0, "duration_s": 1200.0, "peak_members": 2.6,
            "scaler": "naive", "load_seed": 1, "max_size": 5}  # fmt: skip
    _kept_report(tmp_path, "step-2.6-naive-r1", **same)
    _kept_report(tmp_path, "step-2.6-seed-r1", **{**same, "scaler": "seed", "speed": 20.0})
    # A run made before the repeats were put at a phase of the tick (no `tick_phase`).
    _kept_report(tmp_path, "step-2.6-exo-scaler-r1", **{**same, "scaler": "exo-scaler"})
    (tmp_path / "runs" / "step-2.6-limit-r1").mkdir()
    (tmp_path / "runs" / "step-2.6-limit-r1" / "report.json").write_text("{not json")
    asked: list[str] = []
    suite = Suite(plan, tmp_path, None, ("sweep",), say=str, resume=True)

    def lab(name: str, settings: LabSettings, **kwargs: Any) -> Any:
        asked.append(name)
        figures = {"tau_u": 10.0, "failed_share": 0.1, "max_pool_size": 4, "oracle_peak": 4}
        return SimpleNamespace(figures=figures)

    suite.lab = lab  # type: ignore[method-assign]
    suite.sweep()
    # naive's kept run is reused (it has no tick); seed's was made at another speed,
    # exo-scaler's at no phase of its tick, limit's cannot be read.
    assert asked == ["step-2.6-seed-r1", "step-2.6-exo-scaler-r1", "step-2.6-limit-r1"]
    assert suite.results["reused_runs"] == ["step-2.6-naive-r1"]
    spreads = suite.results["sections"]["sweep"]["step-2.6"]["spreads"]
    assert spreads["naive"]["tau_u"]["median"] == 99.0
    # Without --resume, nothing is reused.
    fresh = Suite(plan, tmp_path, None, ("sweep",), say=str)
    fresh.lab = lab  # type: ignore[method-assign]
    asked.clear()
    fresh.sweep()
    assert len(asked) == 4


def test_quick_mode_sweeps_the_step_once_per_contestant_at_smoke_speed(tmp_path: Path) -> None:
    suite, asked = _sweep_suite(tmp_path, BenchPlan.for_mode(True), "sweep")
    suite.sweep()
    assert [(n, s.speed) for n, s, _ in asked] == [
        (f"step-3.5-{c}-r1", 20.0) for c in ("naive", "seed", "exo-scaler", "limit")
    ]


def test_fidelity_runs_naive_and_exo_scaler_at_both_speeds(tmp_path: Path) -> None:
    suite, asked = _sweep_suite(tmp_path, BenchPlan.for_mode(False, repeats=1), "fidelity")
    suite.fidelity()
    assert sorted((s.scaler, s.speed) for _, s, _ in asked) == [
        ("exo-scaler", 1.0), ("exo-scaler", 10.0), ("naive", 1.0), ("naive", 10.0)
    ]  # fmt: skip
    rows = suite.results["sections"]["fidelity"]["rows"]
    assert all(r["passed"] for r in rows if r["figure"] == "tau_u")  # the stub's equal figures


def test_unknown_scenarios_are_refused_before_anything_runs(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from exo_lab.bench.suite import main

    result = CliRunner().invoke(main, ["--scenarios", "step-9", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown scenario(s) step-9" in result.output
    assert not any(tmp_path.iterdir())


def test_resume_needs_a_benchmark_folder(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from exo_lab.bench.suite import main

    result = CliRunner().invoke(main, ["--only", "sweep", "--resume", str(tmp_path)])
    assert result.exit_code == 2
    assert "holds no runs/ folder of a benchmark" in result.output
