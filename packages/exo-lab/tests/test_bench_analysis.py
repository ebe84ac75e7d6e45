"""The benchmark's arithmetic and tables, on synthetic figures and series."""

from __future__ import annotations

import math

import pytest

from exo_lab.bench.analysis import (
    QUALITY_METRICS,
    bound_violations,
    comparison,
    comparison_table,
    fmt,
    markdown_table,
    match_decisions,
    quality_table,
    ratio,
    reaction_breakdown,
    recovery_time,
)
from exo_lab.bench.outcomes import faults_markdown, reaction_markdown, rss_markdown

OURS = {
    "theta_u": 10.0,
    "theta_o": 20.0,
    "tau_u": 30.0,
    "tau_o": 40.0,
    "scaling_actions": 6,
    "reversals": 0,
    "instance_seconds_ratio": 1.25,
    "max_pool_size": 4,
    "failed_requests": 0,
    "failed_during_scale_in": 0,
    "latency_p95_ms": 200.0,
}
NAIVE = {**OURS, "theta_o": 60.0, "scaling_actions": 15, "reversals": 3, "latency_p95_ms": None}


def test_ratio_handles_missing_and_zero() -> None:
    assert ratio(60.0, 20.0) == 3.0
    assert ratio(3, 0) is None
    assert ratio(None, 2.0) is None
    assert ratio(1.0, math.nan) is None


def test_comparison_gives_naive_over_ours_per_metric() -> None:
    rows = {r["metric"]: r for r in comparison(OURS, NAIVE)}
    assert [r for r in rows] == [key for key, _, _ in QUALITY_METRICS]
    assert rows["theta_o"]["naive_over_exo_scaler"] == 3.0
    assert rows["scaling_actions"]["naive_over_exo_scaler"] == 2.5
    assert rows["reversals"]["naive_over_exo_scaler"] is None  # ours is 0: no ratio
    assert rows["latency_p95_ms"]["naive_over_exo_scaler"] is None
    assert rows["theta_u"]["naive_over_exo_scaler"] == 1.0


def test_comparison_table_formats_cells() -> None:
    table = comparison_table("step", comparison(OURS, NAIVE)).splitlines()
    assert table[0] == "| step: metric | exo-scaler | naive | naive / exo-scaler |"
    assert "| θ_O % | 20.0 | 60.0 | 3.00 |" in table
    assert "| reversals | 0 | 3 | — |" in table
    assert "| p95 ms | 200 | — | — |" in table


def test_quality_table_has_one_row_per_run() -> None:
    lines = quality_table({"step / exo-scaler": OURS, "step / naive": NAIVE}).splitlines()
    assert len(lines) == 4
    assert lines[2].startswith("| step / exo-scaler | 10.0 | 20.0 | 30.0 | 40.0 | 6 | 0 | 1.25 |")
    assert lines[0].count("|") == len(QUALITY_METRICS) + 2


def test_markdown_table_refuses_ragged_rows() -> None:
    assert markdown_table(["a", "b"], [[1, 2]]) == "| a | b |\n| --- | --- |\n| 1 | 2 |"
    with pytest.raises(ValueError, match="one cell per header"):
        markdown_table(["a", "b"], [[1]])


def test_fmt() -> None:
    assert fmt(None) == "—"
    assert fmt(math.nan, ".1f") == "—"
    assert fmt(3.0, "d") == "3"
    assert fmt(2.345, ".2f") == "2.35"
    assert fmt("text", ".1f") == "text"


def test_match_decisions_counts_missed_and_doubled() -> None:
    # Decisions at 10, 20, 30; operations just before the first two, two for the second
    # (one call repeated), none for the third.
    match = match_decisions([10.0, 20.0, 30.0], [9.8, 19.5, 19.9], before=2.0)
    assert (match.matched, match.missed, match.doubled) == (2, 1, 1)
    assert match.to_json() == {
        "scaled_decisions": 3,
        "operations": 3,
        "matched": 2,
        "missed": 1,
        "doubled": 1,
    }


def test_match_decisions_respects_the_window() -> None:
    assert match_decisions([10.0], [5.0], before=2.0).missed == 1
    assert match_decisions([10.0], [10.4], before=2.0).matched == 1
    assert match_decisions([10.0], [11.0], before=2.0).doubled == 1
    exact = match_decisions([1.0, 2.0], [0.9, 1.9], before=0.5)
    assert (exact.missed, exact.doubled) == (0, 0)


def test_bound_violations() -> None:
    assert bound_violations([1, 2, 5, 6, 0, 3], 1, 5) == 2
    assert bound_violations([], 1, 5) == 0


def test_recovery_time_counts_from_the_event_until_supply_is_back() -> None:
    times = [0, 1, 2, 3, 4, 5, 6, 7]
    pool = [3, 3, 3, 3, 3, 3, 3, 3]
    supply = [3, 3, 3, 2, 2, 2, 3, 3]  # kill at 2; the NLB notices at 3; back at 6
    assert recovery_time(2, times, supply, pool) == 4
    assert recovery_time(2, times, [3] * 8, pool) == 0.0  # no loss ever seen
    assert recovery_time(2, times, [3, 3, 3, 2, 2, 2, 2, 2], pool) is None
    # A loss before the event does not count.
    assert recovery_time(5, times, [2, 2, 3, 3, 3, 3, 3, 3], pool) == 0.0
    with pytest.raises(ValueError, match="sampled together"):
        recovery_time(0, times, supply, pool[:-1])


def test_reaction_breakdown_in_production_seconds() -> None:
    floor = {
        "scrape (half an interval on average)": 7.5,
        "rate window filling past the line (about half the window)": 30.0,
        "rule evaluation (half an interval)": 7.5,
        "pending period": 60.0,
        "notification (group_wait)": 5.0,
        "scaler tick (half on average)": 30.0,
        "new members appear (instances lag size)": 3.0,
        "VM boot (starting → running)": 30.0,
        "guest boot": 20.0,
        "packages (apt; node_exporter up at their end)": 25.0,
        "Python wheels (pip), then slow-web starts": 30.0,
        "first health check": 10.0,
        "total": 258.0,
    }
    marks = {
        "alert_pending": 12.0,
        "alert_firing": 15.0,
        "webhook": 15.5,
        "decision": 17.0,
        "member_running": 19.0,
        "member_serving": 20.0,
    }
    rows = reaction_breakdown(10.0, marks, 20.0, floor)
    assert [r["seconds"] for r in rows] == [40.0, 60.0, 10.0, 30.0, 40.0, 20.0, 200.0]
    # The two-stage member: VM boot to `running`, then guest boot and provisioning to serving.
    assert [r["floor_seconds"] for r in rows] == [45.0, 60.0, 5.0, 30.0, 33.0, 85.0, 258.0]
    # A missing mark leaves its stage and the next unmeasured; the total ends at the last mark.
    rows = reaction_breakdown(10.0, {**marks, "webhook": None, "member_serving": None}, 20.0, floor)
    assert [r["seconds"] for r in rows] == [40.0, 60.0, None, None, 40.0, None, 180.0]
    text = reaction_markdown(
        {
            "breakdown": rows,
            "report_reaction_to_decision_s": 140.0,
            "report_reaction_to_capacity_s": None,
        }
    )
    assert "| pending → firing (pending period) | 60.0 | 60.0 |" in text
    assert "→ new capacity serving — s" in text


def test_faults_markdown_and_rss_markdown() -> None:
    section = {
        "decisions": match_decisions([1.0], [0.9, 5.0], before=1.0).to_json(),
        "api_errors_in_decisions": 2,
        "bound_violations": 0,
        "samples": 50,
        "failed_requests": 3,
        "requests": 100,
        "failed_during_scale_in": 1,
        "figures": {"theta_u": 1.0, "theta_o": None},
        "events": [
            {"done_at": 4.0, "kind": "kill-member", "target": "", "detail": "killed m1",
             "recovery_s": 42.0},
            {"done_at": 8.0, "kind": "restart", "target": "exo-sd", "detail": "ok"},
        ],
    }  # fmt: skip
    text = faults_markdown(section)
    assert "| decisions doubled (operation without a decision) | 1 |" in text
    assert "| failed requests | 3 of 100 |" in text
    assert "| 4 | kill-member | killed m1 | 42.0 |" in text
    assert "| 8 | restart exo-sd | ok | — |" in text
    rss = rss_markdown(
        {"run-a": {"prometheus": {"max": 80.0}}, "run-b": {"exo-sd": {"max": 40.5}}}
    ).splitlines()
    assert "| process | run-a | run-b |" in rss
    assert "| prometheus | 80.0 | — |" in rss
    assert "| exo-sd | — | 40.5 |" in rss
