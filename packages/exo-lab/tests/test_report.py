from __future__ import annotations

import json
from pathlib import Path

import pytest

from exo_lab.load.generator import RequestResult
from exo_lab.report.run_report import Decision, RunReport, Sample


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
        Decision(16, "up", 1, 2, "scaled"),
        Decision(22, "up", 2, 3, "scaled"),
        Decision(28, "none", 3, 3, "no-intent"),
        Decision(58, "down", 3, 2, "scaled"),
        Decision(68, "down", 2, 1, "scaled"),
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
