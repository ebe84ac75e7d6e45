"""`LabProbe`: the measured run's view of a lab stack in this process.

Pool size from the zone, members serving from the NLB's own health checks, the alert's CPU
from the lab's Prometheus with the alert's expression, decisions from exo-scaler's log, every
member's create and delete from the zone and its runtime. `--monitoring-outage` is a hook on
the run (`OutageHook`).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict
from typing import Any

import httpx

from exo_scaler import DecisionLogError, DecisionRecord, read_decision_log

from ..deployment.cost import DEFAULT_PRICES, cost_estimate, load_prices
from ..deployment.outputs import OutputsError
from ..files import AppendedLines, write_atomically
from ..load.plan import LoadPlan
from ..measure import RunClock, RunHooks, SettlePlan
from ..measure.probe import query_scalar
from ..report.quality import DemandSchedule, oracle_demand
from ..report.run_report import MemberLife, Observation
from .lab_stack import LabStack
from .outage import OutageDriver


class LabProbe:
    def __init__(self, stack: LabStack) -> None:
        self.stack = stack
        self.s = stack.s
        self.out = stack.out
        self._scaler_lines = AppendedLines(stack.scaler_log())
        self._last_decision: DecisionRecord | None = None
        #: member id -> [created, deleted or None], the zone's clock (time.monotonic)
        self._lives: dict[str, list[float | None]] = {}

    def say(self, text: str) -> None:
        self.stack.say(text)

    def load_plan(self) -> LoadPlan:
        return self.s.load_plan(self.stack.nlb_url)

    def settle_plan(self) -> SettlePlan:
        s, t = self.s, self.s.timings
        steps = s.max_size - s.min_size + 1
        bound = s.lab(steps * t.tick + 2 * 60 + 4 * t.scrape_interval + t.drain) + 5
        return SettlePlan(min_size=s.min_size, hold=s.lab(t.tick), bound=bound)

    def check(self) -> None:
        self.stack.children.check_alive()

    def observe(self, t: float) -> Observation:
        zone = self.stack.zone
        assert zone is not None
        pool_size = zone.pool_snapshot(self.stack.pool_id).size
        present = {
            i.id: i.started_at for i in zone.instance_snapshots() if i.pool_id == self.stack.pool_id
        }
        self._track_lives(present)
        return Observation(
            t=t,
            pool_size=pool_size,
            supply=sum(self.stack.serving().values()),
            avg_cpu=query_scalar(httpx.get, self.stack.prometheus_url, self.stack.cpu_expr),
        )

    def _track_lives(self, present: dict[str, float]) -> None:
        """Create: the zone made the instance (`boot_started`, its clock). Delete: the member's
        runtime was done stopping it (`gone`), else the first sample without it."""
        now = time.monotonic()
        for member, created in present.items():
            self._lives.setdefault(member, [created, None])
        plane = self.stack.plane
        for member, life in self._lives.items():
            if life[1] is None and member not in present:
                gone = None
                with contextlib.suppress(KeyError):  # deleted before its VM ever ran
                    gone = plane.runtime.timeline(member).get("gone") if plane else None
                life[1] = gone if gone is not None else now

    def member_lives(self, clock: RunClock) -> list[MemberLife]:
        return [
            MemberLife(
                member, created - clock.mono, None if deleted is None else deleted - clock.mono
            )
            for member, (created, deleted) in self._lives.items()
            if created is not None
        ]

    def latest_decision(self) -> DecisionRecord | None:
        with contextlib.suppress(DecisionLogError):
            decisions = read_decision_log(self._scaler_lines.read())
            if decisions:
                self._last_decision = decisions[-1]
        return self._last_decision

    def decisions(self, load_start_wall: float) -> list[DecisionRecord]:
        return self.stack.logged_decisions()

    def demand_for(self, rps: float) -> int:
        s = self.s
        return oracle_demand(rps, s.work_ms, s.member_cores, minimum=s.min_size)

    def config(self) -> dict[str, Any]:
        s, t = self.s, self.s.timings
        plane = self.stack.plane
        return {
            "profile": s.profile,
            "speed": s.speed,
            "duration_s": s.duration,
            "min_size": s.min_size,
            "max_size": s.max_size,
            "work_ms": s.work_ms,
            "member_cores": s.member_cores,
            "member_rps_at_80": s.member_rps_at_line,
            "peak_members": s.peak_members,
            "base_members": s.base_members,
            "initial_size": s.initial_size,
            "scaler": s.scaler,
            "load_seed": s.load_seed,
            "tick_phase": s.tick_phase,
            # measured: production seconds from the scaler's tick to the load's start
            "load_after_tick_s": (
                None
                if self.stack.load_after_tick is None
                else round(self.stack.load_after_tick * s.speed, 2)
            ),
            "cpu_cap": plane.runtime.cpu_cap if plane else "unknown",
            "tick_seconds": t.tick,
            "scale_in_window_s": t.health_interval * (t.health_retries + 1) + t.drain,
            "timings": asdict(t),
            "reaction_floor": self.stack.reaction_floor(),
            "monitoring_outage": asdict(s.monitoring_outage) if s.monitoring_outage else None,
            "cost_estimate_eur_per_hour": self._cost_estimate(),
            # What keeps a sped-up run faithful to ×1 (docs/benchmarks.md, speed fidelity).
            "fidelity": {
                "client_timeout_wall_s": self.load_plan().timeout,
                "start_compensation": plane.runtime.start_compensation() if plane else None,
            },
        }

    def _cost_estimate(self) -> dict[str, Any]:
        """Terraform's estimate for this pool, from the repository's price table (prices.json
        beside grafana-provisioning/); empty when there is none."""
        s = self.s
        try:
            prices = load_prices(s.provisioning.parent / DEFAULT_PRICES)
        except OutputsError:
            return {}
        return cost_estimate(
            prices,
            s.instance_type,
            min_size=s.min_size,
            initial_size=s.initial_size,
            max_size=s.max_size,
        )


class OutageHook(RunHooks):
    """`--monitoring-outage`: applied and undone on the run's clock, undone when it ends."""

    def __init__(self, stack: LabStack) -> None:
        self.stack = stack
        self.driver: OutageDriver | None = None

    def started(self, clock: RunClock) -> None:
        self.driver = self.stack.outage_driver()

    def sampled(self, t: float, observation: Observation) -> None:
        if self.driver is not None:
            self.driver.tick(t)

    def finished(self) -> None:
        if self.driver is not None:
            self.driver.restore()  # an outage longer than the run ends with it


class TickPhaseHook(RunHooks):
    """The settings' `tick_phase`: the load starts at that phase of the scaler's tick."""

    def __init__(self, stack: LabStack) -> None:
        self.stack = stack

    def before_load(self) -> None:
        self.stack.align_to_tick()

    def started(self, clock: RunClock) -> None:
        alignment = self.stack.tick_alignment
        if alignment is not None:
            self.stack.load_after_tick = clock.mono - alignment.tick_seen_monotonic


class OracleScheduleHook(RunHooks):
    """The reactive limit's knowledge: the oracle's size over the run, written (atomically) as
    the load starts, from the load's own profile and the probe's oracle, within the bounds."""

    def __init__(self, probe: LabProbe) -> None:
        self.probe = probe

    def started(self, clock: RunClock) -> None:
        s, shape = self.probe.s, self.probe.load_plan().shape()

        def size_at(t: float) -> int:
            return max(s.min_size, min(s.max_size, self.probe.demand_for(shape.rate_at(t))))

        schedule = DemandSchedule.of(clock.wall, shape.duration, size_at)
        write_atomically(self.probe.stack.files.oracle_schedule, json.dumps(schedule.to_json()))
