from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from exo_lab.files import AppendedLines
from exo_lab.load.generator import RequestResult
from exo_lab.report.run_report import RunReport, Sample, since_load_start
from exo_scaler import Capped, DecisionRecord, Direction, Reason, Wish, read_decision_log


def decision(t: float, action: str, before: int, after: int, reason: str) -> DecisionRecord:
    return DecisionRecord(
        wall_time=t,
        action=None if action == "none" else Direction(action),
        from_size=before,
        to_size=after,
        reason=Reason(reason),
    )


def synthetic_run() -> RunReport:
    # 1 member until t=10, load steps up, pool grows to 3 by t=30, load drops at t=50.
    demand = [1] * 10 + [3] * 40 + [1] * 30
    supply = [1] * 20 + [2] * 10 + [3] * 30 + [2] * 10 + [1] * 10
    samples = [
        Sample(
            t=float(i),
            offered_rps=20.0 if 10 <= i < 50 else 2.0,
            ok_rps=18.0 if 10 <= i < 50 else 2.0,
            failed=1 if i == 15 else 0,
            p50=0.05,
            p95=0.2,
            avg_cpu=90.0 if 10 <= i < 30 else 15.0,
            pool_size=supply[i],
            supply=supply[i],
            demand=demand[i],
        )
        for i in range(80)
    ]
    decisions = [
        decision(16, "up", 1, 2, "scaled"),
        decision(22, "up", 2, 3, "scaled"),
        decision(28, "none", 3, 3, "no-intent"),
        decision(58, "down", 3, 2, "scaled"),
        decision(68, "down", 2, 1, "scaled"),
    ]
    results = [RequestResult(float(i) / 10, 0.05, 200, "m") for i in range(700)]
    results.append(RequestResult(59.0, 1.0, 0, error="ReadTimeout"))
    config = {"speed": 10, "tick_seconds": 60, "profile": "step", "scale_in_window_s": 30}
    return RunReport(config=config, samples=samples, decisions=decisions, results=results)


def test_figures_agree_with_the_series() -> None:
    figures = synthetic_run().figures()
    assert figures["scaling_actions"] == 4
    assert (figures["scale_ups"], figures["scale_downs"]) == (2, 2)
    assert figures["reversals"] == 0  # the down steps come long after the last up
    assert figures["max_pool_size"] == 3
    assert figures["final_pool_size"] == 1
    assert figures["load_step_at"] == 10
    assert figures["reaction_to_decision_s"] == pytest.approx(60)  # 6 lab s × speed 10
    assert figures["reaction_to_capacity_s"] == pytest.approx(100)
    assert figures["failed_requests"] == 1
    assert figures["failed_during_scale_in"] == 1  # at t=59, inside 58 + 30/10
    assert figures["latency_p50_ms"] == pytest.approx(50)
    # under-provisioned from t=10 to t=30 (20 of 80 s); over-provisioned 50..70
    assert figures["tau_u"] == pytest.approx(100 * 20 / 80)
    assert figures["tau_o"] == pytest.approx(100 * 20 / 80)


def test_report_files_are_written(tmp_path: Path) -> None:
    paths = synthetic_run().write(tmp_path / "out")
    body = json.loads(paths["json"].read_text())
    assert body["figures"]["scaling_actions"] == 4
    assert len(body["samples"]) == 80
    md = paths["md"].read_text()
    assert "θ_U" in md
    assert "1 → 2" in md
    assert "no-intent" not in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "out").glob("*.tmp*"))


def test_empty_run_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one sample"):
        RunReport(config={}, samples=[], decisions=[]).figures()


def test_secrets_are_never_readable_by_others(tmp_path: Path) -> None:
    from exo_lab.files import write_atomically

    secret = tmp_path / "token"
    write_atomically(secret, "s3cret", mode=0o600)
    assert secret.stat().st_mode & 0o777 == 0o600
    write_atomically(secret, "rotated", mode=0o600)
    assert secret.read_text() == "rotated"
    assert [p.name for p in tmp_path.iterdir()] == ["token"]


def test_decisions_travel_from_the_scaler_log_to_the_report_as_one_type(tmp_path: Path) -> None:
    """The scaler's log lines, read back, put on the load's clock and written into report.json."""
    load_start = 1_700_000_000.0
    logged = [
        decision(load_start + d.wall_time, action, d.from_size or 0, d.to_size or 0, d.reason.value)
        for d, action in zip(
            synthetic_run().decisions, ["up", "up", "none", "down", "down"], strict=True
        )
    ]
    log = tmp_path / "exo-scaler.log"
    log.write_text("INFO exo_scaler: starting\n" + "".join(d.to_line() + "\n" for d in logged))
    records = since_load_start(read_decision_log(log), load_start)
    assert records == synthetic_run().decisions
    report = synthetic_run()
    report.decisions = records
    body = json.loads(report.write(tmp_path / "out")["json"].read_text())
    assert [DecisionRecord.from_json(d) for d in body["decisions"]] == records


def test_a_followed_log_gives_each_complete_line_once(tmp_path: Path) -> None:
    log = tmp_path / "exo-scaler.log"
    follow = AppendedLines(log)
    assert follow.read() == []  # not written yet
    log.write_text('{"a": 1}\n{"b": ')
    assert follow.read() == ['{"a": 1}']
    assert follow.read() == []  # the half-written line waits for its newline
    with log.open("a") as handle:
        handle.write("2}\nINFO plain\n")
    assert follow.read() == ['{"b": 2}', "INFO plain"]
    log.write_text("new\n")  # replaced by a shorter file: read from its start
    assert follow.read() == ["new"]


def test_the_decision_table_shows_the_wish_and_each_cap_that_changed_it(tmp_path: Path) -> None:
    """Issue 19: the reader sees what the strategy wanted and which caps moved it, in order."""
    wish = Wish(Direction.UP, 6, "demand", need=6)
    capped = (Capped("bounds", 6, 5, "max is 5"), Capped("quota", 5, 4, "1 left"))
    report = synthetic_run()
    report.decisions = [
        replace(report.decisions[0], to_size=4, wish=wish, capped_by=capped),
        replace(
            report.decisions[1],
            wish=Wish(Direction.UP, 3, "cpu", fallback="arrivals is stale"),
        ),
    ]
    md = report.write(tmp_path / "out")["md"].read_text()
    rows = [line for line in md.splitlines() if line.startswith("| 16.0 ") or
            line.startswith("| 22.0 ")]  # fmt: skip
    assert rows[0] == "| 16.0 | up | 1 → 4 | 6, need 6 | bounds 6→5; quota 5→4 | scaled |"
    assert rows[1] == "| 22.0 | up | 2 → 3 | 3, CPU fallback: arrivals is stale | – | scaled |"
