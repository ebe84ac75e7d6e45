"""How well capacity followed load: the SPEC Research Group's elasticity metrics and friends.

Supply s_t is the number of members running and serving; demand d_t is the oracle's count:
the members needed to carry the offered load with each at or under the 80 % CPU line. Over a
run of T seconds sampled every dt (Herbst et al., "Ready for Rain?", ICPE 2015):

    θ_U = 100/T · Σ max(d_t − s_t, 0) / d_t · dt      under-provisioning accuracy (%)
    θ_O = 100/T · Σ max(s_t − d_t, 0) / d_t · dt      over-provisioning accuracy (%)
    τ_U = 100/T · Σ [s_t < d_t] · dt                  under-provisioning timeshare (%)
    τ_O = 100/T · Σ [s_t > d_t] · dt                  over-provisioning timeshare (%)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from exo_scaler import DecisionRecord, Direction


def oracle_demand(
    offered_rps: float,
    work_ms: float,
    member_cores: float,
    *,
    target_utilisation: float = 0.8,
    minimum: int = 1,
) -> int:
    """Members needed so that none runs above `target_utilisation` of its CPU capacity."""
    if member_cores <= 0 or not 0 < target_utilisation <= 1:
        raise ValueError("member_cores must be > 0 and target_utilisation within (0, 1]")
    cores_needed = offered_rps * work_ms / 1000.0
    needed = math.ceil(cores_needed / (member_cores * target_utilisation) - 1e-9)
    return max(minimum, needed)


@dataclass(frozen=True)
class Elasticity:
    theta_u: float
    theta_o: float
    tau_u: float
    tau_o: float
    supply_seconds: float
    demand_seconds: float

    @property
    def instance_seconds_ratio(self) -> float:
        return self.supply_seconds / self.demand_seconds if self.demand_seconds else math.nan


def elasticity(demand: Sequence[int], supply: Sequence[int], dt: float) -> Elasticity:
    if len(demand) != len(supply):
        raise ValueError("demand and supply must be sampled at the same times")
    if not demand or dt <= 0:
        raise ValueError("need at least one sample and dt > 0")
    total = len(demand) * dt
    under = over = under_time = over_time = 0.0
    for d, s in zip(demand, supply, strict=True):
        if d <= 0:
            raise ValueError("demand must be >= 1 (the pool's minimum)")
        under += max(d - s, 0) / d * dt
        over += max(s - d, 0) / d * dt
        under_time += dt if s < d else 0.0
        over_time += dt if s > d else 0.0
    return Elasticity(
        theta_u=100 * under / total,
        theta_o=100 * over / total,
        tau_u=100 * under_time / total,
        tau_o=100 * over_time / total,
        supply_seconds=sum(supply) * dt,
        demand_seconds=sum(demand) * dt,
    )


def reversals(actions: Sequence[DecisionRecord], window: float) -> int:
    """Scaling actions that undo the previous one within `window` seconds (flapping)."""
    count = 0
    for previous, current in itertools.pairwise(actions):
        if current.action != previous.action and current.wall_time - previous.wall_time <= window:
            count += 1
    return count


def reaction_times(
    step_time: float,
    actions: Sequence[DecisionRecord],
    supply_times: Sequence[float],
    supply: Sequence[int],
) -> dict[str, float | None]:
    """From a load step to the first scale-up decision, and to the first new member serving."""
    baseline = next((s for t, s in zip(supply_times, supply, strict=True) if t >= step_time), None)
    decision = next(
        (a.wall_time for a in actions if a.action is Direction.UP and a.wall_time >= step_time),
        None,
    )
    serving = None
    if baseline is not None:
        serving = next(
            (
                t
                for t, s in zip(supply_times, supply, strict=True)
                if t >= step_time and s > baseline
            ),
            None,
        )
    return {
        "to_decision": None if decision is None else decision - step_time,
        "to_capacity": None if serving is None else serving - step_time,
    }
