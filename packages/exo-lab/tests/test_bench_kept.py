"""Judged runs kept beside the docs (`--keep`): a sweep split over sittings prints as one, and
docs/benchmarks.md's tables are those its kept runs give (the lab runs replaced by a stub that
writes a report as a real run does)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from exo_lab.bench.kept import keep_run
from exo_lab.bench.suite import RESUME_KEYS, BenchPlan, Suite, main
from exo_lab.bench.sweep import ScenarioResult, judged_table, sweep
from exo_lab.stack.settings import LabSettings

REPO = Path(__file__).resolve().parents[3]
KEPT = REPO / "docs" / "bench-runs"


class Stub:
    """A lab run that writes report.json into the run's folder, as run_bench_lab does;
    figures that differ per run, so a table shows which runs it was made of."""

    def __init__(self, stop_after: int | None = None, write: bool = True) -> None:
        self.asked: list[str] = []
        self.stop_after = stop_after
        self.write = write

    def __call__(self, name: str, settings: LabSettings, **kwargs: Any) -> Any:
        if self.stop_after is not None and len(self.asked) == self.stop_after:
            raise KeyboardInterrupt  # the sitting ends mid-sweep
        self.asked.append(name)
        figures = {"tau_u": float(len(name) + settings.load_seed), "failed_share": 0.1,
                   "max_pool_size": 4, "oracle_peak": 4}  # fmt: skip
        if self.write:
            config = {key: getattr(settings, field) for key, field in RESUME_KEYS.items()}
            settings.out.mkdir(parents=True, exist_ok=True)
            report = {"config": config, "figures": figures, "samples": [[0, 1]] * 50,
                      "decisions": [], "members": []}  # fmt: skip
            (settings.out / "report.json").write_text(json.dumps(report))
        return type("Outcome", (), {"figures": figures})()


def _suite(out: Path, plan: BenchPlan, keep: Path | None, lab: Stub) -> Suite:
    suite = Suite(plan, out, None, ("sweep",), say=str, keep=keep)
    suite.lab = lab  # type: ignore[method-assign]
    return suite


def test_a_sweep_split_over_sittings_prints_as_one(tmp_path: Path) -> None:
    plan = BenchPlan.for_mode(False, repeats=2, scenarios=("step-2.6",))
    kept = tmp_path / "kept"
    first = Stub(stop_after=5)
    with pytest.raises(KeyboardInterrupt):
        _suite(tmp_path / "sitting-1", plan, kept, first).sweep()
    assert len(list((kept / "runs").iterdir())) == 5
    second = Stub()
    resumed = _suite(tmp_path / "sitting-2", plan, kept, second)
    resumed.sweep()
    # Only the 3 runs the first sitting did not make are made; the kept 5 are reused.
    assert second.asked == [
        "step-2.6-seed-r2", "step-2.6-exo-scaler-r2", "step-2.6-limit-r2"
    ]  # fmt: skip
    assert resumed.results["kept_runs"] == first.asked
    whole = _suite(tmp_path / "one-sitting", plan, None, Stub())
    whole.sweep()
    assert resumed.results["sections"]["sweep"] == whole.results["sections"]["sweep"]
    # A third sitting makes nothing and prints the same table.
    third = Stub()
    _suite(tmp_path / "sitting-3", plan, kept, third).sweep()
    assert third.asked == []


def test_a_kept_run_holds_its_settings_and_figures_not_its_time_series(tmp_path: Path) -> None:
    plan = BenchPlan.for_mode(False, repeats=1, scenarios=("step-3.5",))
    _suite(tmp_path / "out", plan, tmp_path / "kept", Stub()).sweep()
    body = json.loads((tmp_path / "kept/runs/step-3.5-exo-scaler-r1/report.json").read_text())
    assert set(body) == {"config", "figures", "commit", "machine"}
    assert body["config"]["scaler"] == "exo-scaler" and body["config"]["tick_phase"] == 0
    assert body["machine"]["nproc"] >= 1


def test_a_kept_run_of_other_settings_is_made_again_and_replaced(tmp_path: Path) -> None:
    plan = BenchPlan.for_mode(False, repeats=1, scenarios=("step-3.5",))
    kept = tmp_path / "kept"
    _suite(tmp_path / "a", plan, kept, Stub()).sweep()
    path = kept / "runs" / "step-3.5-seed-r1" / "report.json"
    body = json.loads(path.read_text())
    body["config"]["speed"] = 20.0  # kept from a smoke run, say
    path.write_text(json.dumps(body))
    again = Stub()
    _suite(tmp_path / "b", plan, kept, again).sweep()
    assert again.asked == ["step-3.5-seed-r1"]
    assert json.loads(path.read_text())["config"]["speed"] == 10.0


def test_a_run_that_cannot_be_kept_is_said_and_still_counts(tmp_path: Path) -> None:
    plan = BenchPlan.for_mode(False, repeats=1, scenarios=("step-3.5",))
    suite = _suite(tmp_path / "out", plan, tmp_path / "kept", Stub(write=False))
    suite.sweep()
    assert len(suite.results["errors"]["keep"]) == 4  # the exit status says it
    assert not (tmp_path / "kept").exists()
    assert "| step-3.5: figure |" in "\n".join(suite.markdown)


def test_keeping_never_leaves_half_a_report(tmp_path: Path) -> None:
    report, into = tmp_path / "report.json", tmp_path / "kept" / "report.json"
    report.write_text(json.dumps({"config": {"speed": 10.0}, "figures": {"tau_u": 1.0}}))
    keep_run(report, into, commit="abc", machine={})
    before = into.read_text()
    for broken in ("{not json", json.dumps({"config": {"speed": 10.0}}), "[]"):
        report.write_text(broken)
        with pytest.raises(ValueError, match=r"report|Expecting"):
            keep_run(report, into, commit="abc", machine={})
        assert into.read_text() == before
    assert [p.name for p in into.parent.iterdir()] == ["report.json"]


def test_keep_is_a_folder_option(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(main, ["--only", "sweep", "--keep", str(tmp_path / "file")])
    assert result.exit_code == 2 and "--keep" in result.output
    assert "Traceback" not in result.output


def test_runs_reused_from_a_resumed_folder_are_kept_with_the_commit_they_ran_at(
    tmp_path: Path,
) -> None:
    plan = BenchPlan.for_mode(False, repeats=1, scenarios=("step-3.5",))
    out, kept = tmp_path / "out", tmp_path / "kept"
    first = _suite(out, plan, None, Stub())
    first.sweep()
    first.results["commit"] = "0ld0ld0"  # the sitting ran at another commit
    first.write()
    resumed = Suite(plan, out, None, ("sweep",), say=str, resume=True, keep=kept)
    made = Stub()
    resumed.lab = made  # type: ignore[method-assign]
    resumed.sweep()
    assert made.asked == []
    commits = {json.loads(p.read_text())["commit"] for p in (kept / "runs").glob("*/report.json")}
    assert commits == {"0ld0ld0"}


# -- the docs' tables against the runs they came from --------------------------------------


#: every folder of judged runs kept beside the docs: docs/bench-runs/ (the CPU trigger's
#: exo-scaler) and each later keep folder under it (docs/bench-runs/README.md)
KEPT_FOLDERS = sorted(p.parent for p in KEPT.rglob("runs") if p.is_dir())


def _fully_kept(kept: Path) -> list[str]:
    """The sweep scenarios whose every run (4 contestants × 3 repeats) is kept in `kept`."""
    if not (kept / "runs").is_dir():
        return []
    names = {p.name for p in (kept / "runs").iterdir()}
    return [sc.name for sc in sweep(False)
            if sum(n.startswith(f"{sc.name}-") and re.search(r"-r[123]$", n) is not None
                   for n in names) == 12]  # fmt: skip


@pytest.mark.parametrize("kept", KEPT_FOLDERS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_kept_run_is_a_whole_kept_report_of_the_judged_plan(kept: Path) -> None:
    """Whole scenarios or not: each kept run holds its settings, figures, commit and machine,
    under the name the judged plan gives a run of its scenario and contestant."""
    assert KEPT in KEPT_FOLDERS, "docs/bench-runs/runs is gone"
    names = {sc.name for sc in sweep(False)}
    runs = list((kept / "runs").iterdir())
    assert runs
    for path in runs:
        body = json.loads((path / "report.json").read_text())
        assert set(body) == {"config", "figures", "commit", "machine"} and body["commit"]
        scenario, contestant, _repeat = re.fullmatch(
            r"(.+)-(naive|seed|exo-scaler|limit)-r([123])", path.name
        ).groups()  # type: ignore[union-attr]
        assert scenario in names
        assert body["config"]["scaler"] == contestant


@pytest.mark.parametrize("kept", KEPT_FOLDERS, ids=lambda p: str(p.relative_to(REPO)))
def test_the_docs_tables_are_those_of_the_kept_runs(tmp_path: Path, kept: Path) -> None:
    """Every scenario kept whole in a folder of docs/bench-runs/ is reprinted from its kept
    runs, with no lab run, and its table is in docs/benchmarks.md as printed: a figure edited
    by hand, or a table pasted from another run, fails here."""
    scenarios = _fully_kept(kept)
    if not scenarios:
        pytest.skip(f"{kept.relative_to(REPO)} keeps no whole scenario yet")
    plan = BenchPlan.for_mode(False, repeats=3, scenarios=tuple(scenarios))
    made = Stub()
    suite = _suite(tmp_path, plan, kept, made)
    suite.sweep()
    assert made.asked == [], "a kept run does not match the judged plan's settings"
    for path in (kept / "runs").iterdir():
        body = json.loads((path / "report.json").read_text())
        assert set(body) == {"config", "figures", "commit", "machine"} and body["commit"]
    docs = (REPO / "docs" / "benchmarks.md").read_text()
    for result in suite.sweep_results:
        assert isinstance(result, ScenarioResult)
        assert judged_table(result) in docs, f"{result.scenario.name}'s table is not in the docs"
