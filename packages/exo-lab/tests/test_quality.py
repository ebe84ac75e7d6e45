from __future__ import annotations

import math

import pytest

from exo_lab.report.quality import elasticity, oracle_demand, reaction_times, reversals
from exo_scaler import DecisionRecord, Direction, Reason


def scaled(t: float, direction: str, before: int, after: int) -> DecisionRecord:
    return DecisionRecord(t, Direction(direction), before, after, Reason.SCALED)


@pytest.mark.parametrize(
    ("rps", "work_ms", "cores", "expected"),
    [
        (0, 50, 0.25, 1),  # never below the pool minimum
        (4, 50, 0.25, 1),  # 0.2 cores of 0.2 allowed: exactly at the line
        (4.1, 50, 0.25, 2),
        (16, 50, 0.25, 4),  # 0.8 cores / (0.25 * 0.8)
        (10, 100, 1.0, 2),
    ],
)
def test_oracle_demand(rps: float, work_ms: float, cores: float, expected: int) -> None:
    assert oracle_demand(rps, work_ms, cores) == expected


def test_perfect_supply_scores_zero() -> None:
    result = elasticity([1, 2, 3, 3, 1], [1, 2, 3, 3, 1], dt=1)
    assert (result.theta_u, result.theta_o, result.tau_u, result.tau_o) == (0, 0, 0, 0)
    assert result.instance_seconds_ratio == 1


def test_elasticity_by_hand() -> None:
    # t0: d=2,s=1 → under 1/2 ; t1: d=2,s=2 ; t2: d=1,s=3 → over 2/1 ; t3: d=4,s=2 → under 2/4
    result = elasticity([2, 2, 1, 4], [1, 2, 3, 2], dt=2)
    assert math.isclose(result.theta_u, 100 * (0.5 + 0.5) * 2 / 8)
    assert math.isclose(result.theta_o, 100 * 2 * 2 / 8)
    assert math.isclose(result.tau_u, 50.0)
    assert math.isclose(result.tau_o, 25.0)
    assert result.supply_seconds == 16
    assert result.demand_seconds == 18


def test_elasticity_rejects_mismatched_series() -> None:
    with pytest.raises(ValueError, match="same times"):
        elasticity([1, 2], [1], dt=1)
    with pytest.raises(ValueError, match="demand"):
        elasticity([0], [1], dt=1)


def test_reversals_count_only_quick_undos() -> None:
    actions = [
        scaled(0, "up", 1, 2),
        scaled(60, "up", 2, 3),
        scaled(120, "down", 3, 2),  # undo within the window
        scaled(500, "up", 2, 3),  # far later: a new load phase, not flapping
    ]
    assert reversals(actions, window=180) == 1


def test_reaction_times() -> None:
    actions = [scaled(5, "down", 2, 1), scaled(95, "up", 1, 2)]
    times = [0, 50, 100, 150, 200]
    supply = [1, 1, 1, 2, 2]
    assert reaction_times(40, actions, times, supply) == {"to_decision": 55, "to_capacity": 110}
    assert reaction_times(160, actions, times, supply) == {
        "to_decision": None,
        "to_capacity": None,
    }
