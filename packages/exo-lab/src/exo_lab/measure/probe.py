"""The seam between the measured run and the system under test: `Probe`.

A probe answers what the run asks once a second (pool size, members serving, the alert's CPU)
and what the report needs (the load to offer, when to stop watching scale-in, the scaler's
decisions, the run's configuration). Two implementations: `stack.lab_probe.LabProbe` (a lab
stack in this process) and `deployment.probe.DeploymentProbe` (a deployment, from Terraform's
outputs and its APIs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from exo_scaler import DecisionRecord

from ..load.plan import LoadPlan
from ..report.run_report import MemberLife, Observation


@dataclass(frozen=True)
class RunClock:
    """When the load started: monotonic (the zone's and the sampler's clock) and wall (the
    scaler's log, the API's created-at)."""

    mono: float
    wall: float

    def since(self) -> float:
        return time.monotonic() - self.mono


@dataclass(frozen=True)
class SettlePlan:
    """After the load: watch the pool until it has held `min_size` (size and serving) for
    `hold` lab seconds, for at most `bound` lab seconds."""

    min_size: int
    hold: float
    bound: float


class Probe(Protocol):
    out: Path

    def say(self, text: str) -> None: ...

    def load_plan(self) -> LoadPlan: ...

    def settle_plan(self) -> SettlePlan: ...

    def check(self) -> None:
        """Raise if the system under test broke (a lab child died); called every second."""

    def observe(self, t: float) -> Observation:
        """What the system shows at `t` (lab seconds since the load started)."""

    def latest_decision(self) -> DecisionRecord | None: ...

    def decisions(self, load_start_wall: float) -> list[DecisionRecord]:
        """The scaler's decisions of this run, wall-clock times as it recorded them."""

    def member_lives(self, clock: RunClock) -> list[MemberLife]:
        """Every member the pool had during the run, from create to delete."""

    def demand_for(self, rps: float) -> int:
        """The oracle's member count for `rps` offered."""

    def config(self) -> dict[str, Any]:
        """The report's `config`: what ran, with what bounds, timings and capacity."""


def query_scalar(
    get: Callable[..., httpx.Response], prometheus_url: str, expr: str
) -> float | None:
    """The first value of an instant PromQL query, or None (no data, Prometheus down)."""
    try:
        body = get(
            prometheus_url.rstrip("/") + "/api/v1/query", params={"query": expr}, timeout=2
        ).json()
        result = body["data"]["result"]
        return float(result[0]["value"][1]) if result else None
    except (httpx.HTTPError, KeyError, ValueError, IndexError, TypeError):
        return None
