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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from exo_scaler import DecisionRecord, Direction

#: the CPU line a member should stay under: the scale-up alert's threshold, the oracle's sizing
TARGET_UTILISATION = 0.8


def member_rps_at_line(
    member_cores: float, work_ms: float, target_utilisation: float = TARGET_UTILISATION
) -> float:
    """Requests per second one member carries at `target_utilisation` of its CPU."""
    return member_cores * target_utilisation * 1000 / work_ms


def oracle_demand(
    offered_rps: float,
    work_ms: float,
    member_cores: float,
    *,
    target_utilisation: float = TARGET_UTILISATION,
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


# -- what the client judges: billed capacity, failed requests, time to demand met ----------------


def billed_seconds(lives: Sequence[tuple[float, float | None]], start: float, end: float) -> float:
    """Seconds of members billed within [start, end): each member from its create to its delete
    (None: still a member at the end), whatever its state, as Exoscale bills an instance."""
    if end < start:
        raise ValueError("the window ends before it starts")
    total = 0.0
    for created, deleted in lives:
        gone = end if deleted is None else deleted
        if gone < created:
            raise ValueError(f"a member deleted ({gone}) before it was created ({created})")
        total += max(0.0, min(gone, end) - max(created, start))
    return total


#: a failed request's kind, from its HTTP status or the client's error
FAILURE_KINDS = ("shed (503)", "timeout", "connection", "other")


def failure_kind(status: int, error: str) -> str:
    """What the client saw for a failed request: slow-web or the NLB answering 503, no answer
    in time (httpx's *Timeout errors), no connection or a broken one (refused, reset, the
    generator's own in-flight cap), or another HTTP status."""
    if status == 503:
        return "shed (503)"
    if status == 0 and error.endswith("Timeout"):
        return "timeout"
    if status == 0:
        return "connection"
    return "other"


def demand_met_after(
    times: Sequence[float],
    demand: Sequence[int],
    supply: Sequence[int],
    *,
    hold: float,
) -> list[tuple[float, float | None]]:
    """For each rise of demand: (when it rose, how long until supply met it), None if never.

    Demand is met at the first sample from which supply ≥ demand holds for `hold` seconds, or
    until demand changes again or the series ends, whichever comes first: a member that serves
    for a moment and drops out does not meet it. Seconds are those of `times`.
    """
    if not len(times) == len(demand) == len(supply):
        raise ValueError("times, demand and supply must be sampled together")
    rises = [i for i in range(1, len(times)) if demand[i] > demand[i - 1]]
    met: list[tuple[float, float | None]] = []
    for i in rises:
        until = next((k for k in range(i + 1, len(times)) if demand[k] != demand[i]), len(times))
        found: float | None = None
        for j in range(i, until):
            if supply[j] < demand[j]:
                continue
            stop = next((k for k in range(j, until) if times[k] - times[j] >= hold), until)
            if all(supply[k] >= demand[k] for k in range(j, stop)):
                found = times[j] - times[i]
                break
        met.append((times[i], found))
    return met


def back_at_min_after(
    times: Sequence[float], demand: Sequence[int], pool: Sequence[int], *, min_size: int
) -> float | None:
    """From the last fall of demand (the load's end) to the pool at `min_size` for good: the
    first sample from which every later one is at or below it. None if demand never falls or
    the pool is not back at the end of the series. Seconds are those of `times`."""
    if not len(times) == len(demand) == len(pool):
        raise ValueError("times, demand and pool must be sampled together")
    falls = [i for i in range(1, len(times)) if demand[i] < demand[i - 1]]
    if not falls or pool[-1] > min_size:
        return None
    last = falls[-1]
    back = len(times) - 1
    while back > last and pool[back - 1] <= min_size:
        back -= 1
    return times[back] - times[last]


# -- the oracle's size over a run (the reactive limit's knowledge) ---------------------------------


@dataclass(frozen=True)
class DemandSchedule:
    """The oracle's member count over a run: from `load_start_wall` (Unix time), `points` are
    (lab seconds since the load started, size from then on), in order."""

    load_start_wall: float
    points: tuple[tuple[float, int], ...]

    def __post_init__(self) -> None:
        if not self.points or any(b[0] < a[0] for a, b in itertools.pairwise(self.points)):
            raise ValueError("a schedule needs at least one point, in time order")

    def size_at(self, wall: float) -> int:
        """The oracle's size at Unix time `wall` (its first size before the load started)."""
        t = wall - self.load_start_wall
        size = self.points[0][1]
        for at, value in self.points:
            if at > t:
                break
            size = value
        return size

    @classmethod
    def of(
        cls,
        load_start_wall: float,
        duration: float,
        size_at: Callable[[float], int],
        *,
        resolution: float = 0.05,
    ) -> DemandSchedule:
        """Change points of `size_at(t)` (t in lab seconds since the load started) over
        [0, duration], sampled every `resolution` lab seconds, and the size after the load."""
        points = [(0.0, size_at(0.0))]
        steps = int(duration / resolution) + 1
        for k in range(1, steps + 1):
            t = min(duration, k * resolution)
            size = size_at(t)
            if size != points[-1][1]:
                points.append((round(t, 6), size))
        return cls(load_start_wall, tuple(points))

    def to_json(self) -> dict[str, Any]:
        return {"load_start_wall": self.load_start_wall, "points": [list(p) for p in self.points]}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> DemandSchedule:
        try:
            points = tuple((float(t), int(n)) for t, n in body["points"])
            return cls(float(body["load_start_wall"]), points)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a demand schedule: {exc}") from None
