"""The suite's sections ask for the right lab runs (the runs themselves replaced by a stub)."""

from __future__ import annotations

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
