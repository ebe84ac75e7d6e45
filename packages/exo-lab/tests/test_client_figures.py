"""What the client judges, from constructed runs whose answers are worked out by hand: billed
instance-seconds from the members' lifecycle, failed requests and their share, the time from a
load change to demand met, and the report that carries them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exo_lab.load.generator import RequestResult
from exo_lab.report.quality import (
    back_at_min_after,
    billed_seconds,
    demand_met_after,
    failure_kind,
)
from exo_lab.report.run_report import MemberLife, RunReport, Sample


def test_billed_seconds_count_every_member_from_create_to_delete_within_the_window() -> None:
    lives = [
        (-50.0, None),  # the initial member: billed over the whole window [0, 100)
        (10.0, 70.0),  # created and deleted inside: 60 s
        (90.0, None),  # created near the end: 10 s
        (-30.0, -5.0),  # gone before the window: nothing
    ]
    assert billed_seconds(lives, 0.0, 100.0) == pytest.approx(100 + 60 + 10)


def test_billed_seconds_refuse_an_impossible_lifecycle() -> None:
    with pytest.raises(ValueError, match="before it was created"):
        billed_seconds([(10.0, 5.0)], 0.0, 20.0)
    with pytest.raises(ValueError, match="ends before it starts"):
        billed_seconds([], 5.0, 0.0)


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (503, "", "shed (503)"),
        (0, "ReadTimeout", "timeout"),
        (0, "ConnectTimeout", "timeout"),
        (0, "ConnectError", "connection"),
        (0, "client-overload", "connection"),
        (500, "", "other"),
    ],
)
def test_failure_kind(status: int, error: str, kind: str) -> None:
    assert failure_kind(status, error) == kind


def test_demand_met_needs_supply_to_hold_the_demand() -> None:
    times = [float(t) for t in range(10)]
    demand = [1, 1, 3, 3, 3, 3, 3, 3, 3, 3]
    # At t=4 supply reaches 3 but drops at t=5; it holds from t=6 on.
    supply = [1, 1, 1, 2, 3, 2, 3, 3, 3, 3]
    assert demand_met_after(times, demand, supply, hold=2.0) == [(2.0, 4.0)]
    # A shorter hold accepts the brief t=4.
    assert demand_met_after(times, demand, supply, hold=1.0) == [(2.0, 2.0)]


def test_demand_never_met_and_a_second_rise_judged_on_its_own() -> None:
    times = [float(t) for t in range(8)]
    demand = [1, 2, 2, 2, 4, 4, 4, 4]
    supply = [1, 1, 2, 2, 2, 3, 3, 3]
    assert demand_met_after(times, demand, supply, hold=1.0) == [(1.0, 1.0), (4.0, None)]
    with pytest.raises(ValueError, match="sampled together"):
        demand_met_after(times, demand, supply[:-1], hold=1.0)


def test_back_at_min_counts_from_the_load_end_to_the_pool_at_min_for_good() -> None:
    times = [float(t) for t in range(10)]
    demand = [1, 3, 3, 3, 1, 1, 1, 1, 1, 1]  # the load ends at t=4
    # At min at t=6 for a moment, back up, at min for good from t=8.
    pool = [1, 2, 3, 3, 3, 2, 1, 2, 1, 1]
    assert back_at_min_after(times, demand, pool, min_size=1) == 4.0
    assert back_at_min_after(times, demand, [*pool[:-1], 2], min_size=1) is None  # not back
    assert back_at_min_after(times, [1] * 10, pool, min_size=1) is None  # demand never fell
    with pytest.raises(ValueError, match="sampled together"):
        back_at_min_after(times, demand, pool[:-1], min_size=1)


def _sample(t: float, demand: int, supply: int) -> Sample:
    return Sample(t, 1.0, 1.0, 0, None, None, None, supply, supply, demand)


def test_report_figures_carry_billed_cost_failed_share_and_demand_met(tmp_path: Path) -> None:
    # 10 lab seconds at speed 10 = 100 production seconds; the pool at most 2.
    samples = [_sample(t, 1 if t < 2 else 2, 1 if t < 5 else 2) for t in range(10)]
    members = [MemberLife("a", -20.0, None), MemberLife("b", 3.0, 9.0)]
    results = [
        RequestResult(0.5, 0.2, 200),
        RequestResult(1.5, 0.3, 200),
        RequestResult(2.5, 0.0, 503),
        RequestResult(3.5, 2.0, 0, error="ReadTimeout"),
    ]
    config = {
        "speed": 10.0,
        "max_size": 5,
        "tick_seconds": 60.0,
        "cost_estimate_eur_per_hour": {"pool_member": 0.036},
    }
    report = RunReport(config, samples, [], results, members)
    f = report.figures()
    # Billed: a for the whole window (10 lab s), b from 3 to 9 (6) → 16 lab s × 10.
    assert f["billed_instance_seconds"] == pytest.approx(160.0)
    # Serving: supply 1 for 5 s, 2 for 5 s = 15 lab s × 10; the oracle: 1×2 + 2×8 = 18 × 10.
    assert f["serving_instance_seconds"] == pytest.approx(150.0)
    assert f["billed_ratio"] == pytest.approx(160 / 180)
    assert f["billed_cost_eur"] == pytest.approx(160 / 3600 * 0.036)
    assert (f["failed_requests"], f["requests"], f["failed_share"]) == (2, 4, 0.5)
    assert f["failed_by_kind"]["shed (503)"] == 1 and f["failed_by_kind"]["timeout"] == 1
    # Demand rose at t=2, supply met it at t=5 and held (60 s = 6 lab s, or to the end): 30 s.
    assert f["demand_met_s"] == pytest.approx(30.0)
    assert f["oracle_peak"] == 2 and f["evaluation_window_s"] == pytest.approx(100.0)
    body = json.loads(report.write(tmp_path)["json"].read_text())
    assert body["figures"]["billed_instance_seconds"] == pytest.approx(160.0)
    assert body["members"][1] == {"member": "b", "created": 3.0, "deleted": 9.0}
    text = (tmp_path / "report.md").read_text()
    assert "## What the client sees" in text and "2 of 4 (50.0 %)" in text


def test_demand_above_the_pools_max_is_met_at_the_max() -> None:
    samples = [_sample(t, 1 if t < 2 else 7, 1 if t < 4 else 5) for t in range(12)]
    config = {"speed": 1.0, "max_size": 5, "tick_seconds": 60.0}
    f = RunReport(config, samples, []).figures()
    assert f["demand_met_s"] == pytest.approx(2.0)
    assert f["billed_instance_seconds"] is None  # no lifecycle known: no bill, not a zero
