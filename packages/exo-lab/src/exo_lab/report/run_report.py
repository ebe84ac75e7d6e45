"""The run report: report.json (everything), report.md (for a client), timeline.png.

Decisions are exo-scaler's own `DecisionRecord`s, read from its log; in a report their `time`
is lab seconds since the load started (`since_load_start`), like every sample.

One concept over ~400 lines: one run's report, its figures and their three renderings (JSON,
markdown, the timeline), kept together so every rendering shows the same figures.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from exo_scaler import DecisionRecord, Direction, Reason, action_label

from ..files import write_atomically
from ..load.generator import RequestResult, percentile
from .quality import (
    FAILURE_KINDS,
    back_at_min_after,
    billed_seconds,
    demand_met_after,
    elasticity,
    failure_kind,
    reaction_times,
    reversals,
)

#: production seconds supply must hold the oracle's demand to count as meeting it (one tick)
DEMAND_MET_HOLD = 60.0


@dataclass
class Sample:
    """One second of the run, in lab seconds since the load started."""

    t: float
    offered_rps: float
    ok_rps: float
    failed: int
    p50: float | None
    p95: float | None
    avg_cpu: float | None  # percent, as Prometheus computes it for the alert
    pool_size: int  # what the API says
    supply: int  # members running and serving (healthy behind the NLB)
    demand: int  # the oracle's count


@dataclass(frozen=True)
class Observation:
    """What a run saw at one lab second: pool size from the API, members serving behind the
    NLB, and the average CPU exactly as the alert computes it (None when Prometheus had none).
    """

    t: float
    pool_size: int
    supply: int
    avg_cpu: float | None


@dataclass(frozen=True)
class MemberLife:
    """One pool member from create to delete (lab seconds since the load started; `deleted`
    None: still a member when the run ended). Billed whatever its state, as Exoscale bills."""

    member: str
    created: float
    deleted: float | None = None


def samples_from(
    observations: Sequence[Observation],
    results: Sequence[RequestResult],
    offered_at: Callable[[float], float],
    demand_for: Callable[[float], int],
) -> list[Sample]:
    """One Sample per observation: the load generator's second joined to what the run saw.

    `offered_at(t)` is the profile's rate in the middle of second t; `demand_for(rps)` is the
    oracle's member count for that rate.
    """
    by_second: dict[int, list[RequestResult]] = {}
    for r in results:
        by_second.setdefault(int(r.scheduled), []).append(r)
    samples = []
    for obs in observations:
        second = by_second.get(int(obs.t), [])
        ok = [r.latency for r in second if r.ok]
        offered = offered_at(obs.t + 0.5)
        samples.append(
            Sample(
                t=obs.t,
                offered_rps=offered,
                ok_rps=float(len(ok)),
                failed=sum(not r.ok for r in second),
                p50=percentile(ok, 50),
                p95=percentile(ok, 95),
                avg_cpu=obs.avg_cpu,
                pool_size=obs.pool_size,
                supply=obs.supply,
                demand=demand_for(offered),
            )
        )
    return samples


def since_load_start(records: list[DecisionRecord], load_start: float) -> list[DecisionRecord]:
    """The scaler's records (wall-clock times) on the report's clock: seconds since the load."""
    return [replace(r, wall_time=round(r.wall_time - load_start, 3)) for r in records]


@dataclass
class RunReport:
    config: dict[str, Any]
    samples: list[Sample]
    decisions: list[DecisionRecord]
    results: list[RequestResult] = field(default_factory=list)
    #: every member the pool had, create to delete (billed instance-seconds); empty: unknown
    members: list[MemberLife] = field(default_factory=list)

    # -- figures --------------------------------------------------------------------------

    def actions(self) -> list[DecisionRecord]:
        """The decisions that started a scaling operation."""
        return [d for d in self.decisions if d.scaled]

    def figures(self) -> dict[str, Any]:
        speed = float(self.config.get("speed", 1.0))
        tick = float(self.config.get("tick_seconds", 60.0))  # production seconds
        samples = self.samples
        if not samples:
            raise ValueError("a report needs at least one sample")
        dt = samples[1].t - samples[0].t if len(samples) > 1 else 1.0
        quality = elasticity([s.demand for s in samples], [s.supply for s in samples], dt)
        actions = self.actions()
        step_time = self._first_step()
        reaction = (
            reaction_times(step_time, actions, [s.t for s in samples], [s.supply for s in samples])
            if step_time is not None
            else {"to_decision": None, "to_capacity": None}
        )
        ok = [r.latency for r in self.results if r.ok]
        failed = [r for r in self.results if not r.ok]
        kinds = {k: 0 for k in FAILURE_KINDS}
        for r in failed:
            kinds[failure_kind(r.status, r.error)] += 1
        start, end = samples[0].t, samples[-1].t + dt
        billed = (
            billed_seconds([(m.created, m.deleted) for m in self.members], start, end) * speed
            if self.members
            else None
        )
        oracle_seconds = quality.demand_seconds * speed
        # Demand above the pool's maximum cannot be met by any scaler: met means at the cap.
        top = int(self.config.get("max_size") or max(s.demand for s in samples))
        met = demand_met_after(
            [s.t for s in samples],
            [min(s.demand, top) for s in samples],
            [s.supply for s in samples],
            hold=DEMAND_MET_HOLD / speed,
        )
        low = self.config.get("min_size")
        back = (
            None
            if low is None
            else back_at_min_after(
                [s.t for s in samples],
                [s.demand for s in samples],
                [s.pool_size for s in samples],
                min_size=int(low),
            )
        )
        scale_in = self._scale_in_windows()
        during_scale_in = [
            r for r in self.results if any(a <= r.scheduled < b for a, b in scale_in)
        ]
        return {
            "theta_u": quality.theta_u,
            "theta_o": quality.theta_o,
            "tau_u": quality.tau_u,
            "tau_o": quality.tau_o,
            "instance_seconds": quality.supply_seconds * speed,
            "serving_instance_seconds": quality.supply_seconds * speed,
            "billed_instance_seconds": billed,
            "oracle_instance_seconds": oracle_seconds,
            "instance_seconds_ratio": quality.instance_seconds_ratio,
            "billed_ratio": None
            if billed is None or not oracle_seconds
            else billed / oracle_seconds,
            "billed_cost_eur": _eur(billed, self.config),
            "evaluation_window_s": (end - start) * speed,
            "oracle_peak": max(s.demand for s in samples),
            "scaling_actions": len(actions),
            "scale_ups": sum(a.action is Direction.UP for a in actions),
            "scale_downs": sum(a.action is Direction.DOWN for a in actions),
            "reversals": reversals(actions, window=3 * tick / speed),
            "max_pool_size": max(s.pool_size for s in samples),
            "final_pool_size": samples[-1].pool_size,
            "load_step_at": step_time,
            "reaction_to_decision_s": _scaled(reaction["to_decision"], speed),
            "reaction_to_capacity_s": _scaled(reaction["to_capacity"], speed),
            "requests": len(self.results),
            "failed_requests": len(failed),
            "failed_share": len(failed) / len(self.results) if self.results else None,
            "failed_by_kind": kinds,
            "demand_met_s": _scaled(met[0][1], speed) if met else None,
            "demand_met": [
                {"load_change_at": at, "met_after_s": _scaled(after, speed)} for at, after in met
            ],
            "back_to_min_s": _scaled(back, speed),
            "failed_during_scale_in": sum(not r.ok for r in during_scale_in),
            "requests_during_scale_in": len(during_scale_in),
            "latency_p50_ms": _ms(percentile(ok, 50)),
            "latency_p95_ms": _ms(percentile(ok, 95)),
            "latency_p99_ms": _ms(percentile(ok, 99)),
        }

    def _first_step(self) -> float | None:
        for before, after in zip(self.samples, self.samples[1:], strict=False):
            if after.demand > before.demand:
                return after.t
        return None

    def _scale_in_windows(self) -> list[tuple[float, float]]:
        grace = float(self.config.get("scale_in_window_s", 30.0)) / float(
            self.config.get("speed", 1.0)
        )
        return [
            (a.wall_time, a.wall_time + grace) for a in self.actions() if a.action is Direction.DOWN
        ]

    # -- output ---------------------------------------------------------------------------

    def write(self, out: Path) -> dict[str, Path]:
        out.mkdir(parents=True, exist_ok=True)
        figures = self.figures()
        paths = {
            "json": out / "report.json",
            "md": out / "report.md",
            "png": out / "timeline.png",
        }
        body = {
            "config": self.config,
            "figures": figures,
            "samples": [asdict(s) for s in self.samples],
            "decisions": [d.to_json() for d in self.decisions],
            "members": [asdict(m) for m in self.members],
        }
        write_atomically(paths["json"], json.dumps(body, indent=2, default=_json_default))
        write_atomically(paths["md"], self.markdown(figures))
        plot_timeline(self, paths["png"])
        return paths

    def markdown(self, figures: dict[str, Any]) -> str:
        c = self.config
        lines = [
            "# Autoscaling run report",
            "",
            f"Profile **{c.get('profile')}**, speed ×{c.get('speed')}, "
            f"pool bounds {c.get('min_size')}–{c.get('max_size')}, "
            f"{c.get('work_ms')} ms CPU per request, "
            f"member capacity {c.get('member_cores')} host cores "
            f"({c.get('cpu_cap', 'unknown cap')}).",
            "",
            "Times below are production-equivalent seconds (lab seconds × speed).",
            "",
            *_client_section(figures),
            "## Capacity against demand (SPEC RG elasticity metrics)",
            "",
            "| metric | value | meaning |",
            "| --- | --- | --- |",
            f"| θ_U | {figures['theta_u']:.1f} % | missing capacity, relative to demand |",
            f"| θ_O | {figures['theta_o']:.1f} % | surplus capacity, relative to demand |",
            f"| τ_U | {figures['tau_u']:.1f} % | share of time under-provisioned |",
            f"| τ_O | {figures['tau_o']:.1f} % | share of time over-provisioned |",
            f"| serving instance-seconds / oracle | {figures['instance_seconds_ratio']:.2f} | "
            "capacity in rotation against a perfect autoscaler's (not the bill: see above) |",
            f"| scaling actions | {figures['scaling_actions']} "
            f"({figures['scale_ups']} up, {figures['scale_downs']} down) | |",
            f"| reversals | {figures['reversals']} | an action undone within 3 ticks |",
            f"| max / final pool size | {figures['max_pool_size']} / "
            f"{figures['final_pool_size']} | |",
            "",
            "## Reaction to the load step",
            "",
            "| from load step to | seconds |",
            "| --- | --- |",
            f"| scale-up decision | {_fmt(figures['reaction_to_decision_s'])} |",
            f"| new capacity serving | {_fmt(figures['reaction_to_capacity_s'])} |",
            "",
        ]
        floor = c.get("reaction_floor")
        if floor:
            lines += [
                "The configured timers imply this floor (production seconds):",
                "",
                "| stage | seconds |",
                "| --- | --- |",
                *[f"| {k} | {v:g} |" for k, v in floor.items()],
                "",
            ]
        lines += [*_deployment_section(c), *_cost_section(c)]
        lines += [
            "## Requests",
            "",
            "| requests | failed | failed during scale-in | p50 | p95 | p99 |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| {figures['requests']} | {figures['failed_requests']} | "
            f"{figures['failed_during_scale_in']} of {figures['requests_during_scale_in']} | "
            f"{_fmt(figures['latency_p50_ms'])} ms | {_fmt(figures['latency_p95_ms'])} ms | "
            f"{_fmt(figures['latency_p99_ms'])} ms |",
            "",
            "## Decisions",
            "",
            "| t (lab s) | action | size | wish | capped by | reason |",
            "| --- | --- | --- | --- | --- | --- |",
            *[
                f"| {d.wall_time:.1f} | {action_label(d.action)} | {d.from_size} → {d.to_size} "
                f"| {_wish_cell(d)} | {_caps_cell(d)} | {d.reason} |"
                for d in self.decisions
                if d.reason is not Reason.NO_INTENT
            ],
            "",
            "![timeline](timeline.png)",
            "",
        ]
        return "\n".join(lines)


def _wish_cell(d: DecisionRecord) -> str:
    """The strategy's wish: its size, the demand's need or why it fell back to CPU."""
    wish = d.wish
    if wish is None:
        return "–"
    parts = [str(wish.size)]
    if wish.need is not None:
        parts.append(f"need {wish.need}")
    if wish.fallback:
        parts.append(f"CPU fallback: {wish.fallback}")
    return ", ".join(parts).replace("|", "/")


def _caps_cell(d: DecisionRecord) -> str:
    """Each cap that changed the wish, in order: `name from→to`."""
    if not d.capped_by:
        return "–"
    return "; ".join(f"{c.cap} {c.from_size}→{c.to_size}" for c in d.capped_by)


def _client_section(f: dict[str, Any]) -> list[str]:
    """What the client judges: failed requests, served latency, the bill, demand met."""
    share = f.get("failed_share")
    kinds = ", ".join(f"{n} {k}" for k, n in (f.get("failed_by_kind") or {}).items() if n)
    ratio = f.get("billed_ratio")
    cost = f.get("billed_cost_eur")
    return [
        "## What the client sees",
        "",
        "| figure | value | how |",
        "| --- | --- | --- |",
        f"| failed requests | {f['failed_requests']} of {f['requests']} "
        f"({'—' if share is None else f'{100 * share:.1f} %'}) | {kinds or 'none'} |",
        f"| p95 of served requests | {_fmt(f['latency_p95_ms'])} ms | from each request's "
        "scheduled time |",
        f"| billed instance-seconds | {_fmt(f.get('billed_instance_seconds'))} "
        f"({'—' if ratio is None else f'{ratio:.2f}'} × the oracle's) | every member from "
        "create to delete, whatever its state |",
        f"| cost of the members | {'—' if cost is None else f'{cost:.4f} EUR'} | billed "
        "instance-seconds at prices.json's member price |",
        f"| serving instance-seconds | {_fmt(f.get('serving_instance_seconds'))} | members in "
        "the NLB's rotation |",
        f"| load change → demand met | {_fmt(f.get('demand_met_s'))} s | supply ≥ the oracle's "
        f"demand (at most the pool's max) for {DEMAND_MET_HOLD:g} s |",
        f"| load end → pool back at min | {_fmt(f.get('back_to_min_s'))} s | from the last "
        "fall of demand to the pool at its minimum for good |",
        "",
    ]


def _deployment_section(c: dict[str, Any]) -> list[str]:
    """Where each series came from, for a run against a deployment (`run --target`)."""
    target = c.get("target")
    if not target:
        return []
    return [
        "## The deployment under test",
        "",
        f"{'A lab started with `exo-lab up`' if target.get('lab') else 'A deployment'} "
        f"at {target.get('app_url')} (pool `{target.get('instance_pool_id')}`).",
        "",
        "| series | from |",
        "| --- | --- |",
        "| offered / served load, latency | the open-loop generator (this machine) |",
        "| pool size | the API: get-instance-pool, every second |",
        "| members serving | the API: the NLB's healthcheck-status, every second |",
        f"| average CPU | the monitor's Prometheus: `{c.get('cpu_expression')}` |",
        f"| decisions | {c.get('decisions_source')} |",
        f"| oracle | calibration ({c.get('calibration', {}).get('source')}): "
        f"{c.get('work_ms')} ms CPU per request, {c.get('member_cores')} cores per member |",
        "",
    ]


def _cost_section(c: dict[str, Any]) -> list[str]:
    cost = c.get("cost")
    if not cost:
        return []

    def eur(value: Any) -> str:
        return "—" if value is None else f"{value:.4f} EUR"

    return [
        "## What the run cost",
        "",
        "Production-equivalent seconds (seconds × speed), at the prices of "
        "`cost_estimate_eur_per_hour` (Terraform, from infra/terraform/prices.json).",
        "",
        "| item | amount | EUR/h | EUR |",
        "| --- | --- | --- | --- |",
        f"| pool members (billed) | {cost.get('instance_seconds', 0):.0f} instance-seconds | "
        f"{cost.get('pool_member_eur_per_hour')} | {eur(cost.get('members_eur'))} |",
        f"| monitor + NLB | {cost.get('run_seconds', 0):.0f} s | "
        f"{cost.get('monitor_and_nlb_eur_per_hour')} | {eur(cost.get('fixed_eur'))} |",
        f"| **total** | | | **{eur(cost.get('total_eur'))}** |",
        "",
    ]


def plot_timeline(report: RunReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = report.samples
    t = [x.t for x in s]
    fig, axes = plt.subplots(4, 1, figsize=(11, 11), sharex=True)
    ax = axes[0]
    ax.plot(t, [x.offered_rps for x in s], label="offered rps", color="tab:blue")
    ax.plot(t, [x.ok_rps for x in s], label="served rps", color="tab:green", alpha=0.7)
    ax.bar(t, [x.failed for x in s], label="failed", color="tab:red", alpha=0.6)
    ax.set_ylabel("requests / s")
    ax.legend(loc="upper right")
    ax = axes[1]
    ax.plot(t, [_ms(x.p50) for x in s], label="p50", color="tab:blue")
    ax.plot(t, [_ms(x.p95) for x in s], label="p95", color="tab:orange")
    ax.set_ylabel("latency (ms)")
    ax.legend(loc="upper right")
    ax = axes[2]
    ax.plot(t, [x.avg_cpu for x in s], label="average pool CPU", color="tab:purple")
    ax.axhline(80, color="tab:red", linestyle="--", linewidth=1, label="80 % scale-up")
    ax.axhline(20, color="tab:green", linestyle="--", linewidth=1, label="20 % scale-down")
    ax.set_ylim(0, 105)
    ax.set_ylabel("CPU (%)")
    ax.legend(loc="upper right")
    ax = axes[3]
    ax.step(t, [x.demand for x in s], where="post", label="oracle demand", color="tab:gray")
    ax.step(t, [x.pool_size for x in s], where="post", label="pool size", color="tab:blue")
    ax.step(t, [x.supply for x in s], where="post", label="serving", color="tab:green")
    for d in report.decisions:
        if d.scaled:
            marker = "^" if d.action is Direction.UP else "v"
            ax.plot([d.wall_time], [d.to_size], marker=marker, color="black", markersize=8)
    ax.set_ylabel("members")
    ax.set_xlabel(f"lab seconds since start (speed ×{report.config.get('speed')})")
    ax.legend(loc="upper right")
    fig.suptitle(f"exo-lab run — profile {report.config.get('profile')}")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)


def _eur(billed: float | None, config: dict[str, Any]) -> float | None:
    """Billed instance-seconds at the member's price (Terraform's, prices.json), or None."""
    price = (config.get("cost_estimate_eur_per_hour") or {}).get("pool_member")
    return None if billed is None or price is None else billed / 3600 * float(price)


def _scaled(value: float | None, speed: float) -> float | None:
    return None if value is None else value * speed


def _ms(value: float | None) -> float | None:
    return None if value is None else value * 1000


def _fmt(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.0f}"


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)
