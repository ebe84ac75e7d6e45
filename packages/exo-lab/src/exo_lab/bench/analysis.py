"""The benchmark's arithmetic and tables: pure functions over figures and series.

Kept apart from the runs so every number the suite prints can be checked on synthetic input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: (key in RunReport.figures(), label, format) — the quality table, in order
QUALITY_METRICS: tuple[tuple[str, str, str], ...] = (
    ("theta_u", "θ_U %", ".1f"),
    ("theta_o", "θ_O %", ".1f"),
    ("tau_u", "τ_U %", ".1f"),
    ("tau_o", "τ_O %", ".1f"),
    ("scaling_actions", "scaling actions", "d"),
    ("reversals", "reversals", "d"),
    ("instance_seconds_ratio", "instance-s / oracle", ".2f"),
    ("max_pool_size", "max pool", "d"),
    ("failed_requests", "failed requests", "d"),
    ("failed_during_scale_in", "failed in scale-in", "d"),
    ("latency_p95_ms", "p95 ms", ".0f"),
)


def fmt(value: Any, spec: str = "") -> str:
    """A table cell: `—` for missing or NaN, else `value` in `spec`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if spec == "d" and isinstance(value, float):
        return f"{value:.0f}"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; cells already formatted or formatted with str()."""
    widths = len(headers)
    if any(len(r) != widths for r in rows):
        raise ValueError("every row needs one cell per header")
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" for _ in headers) + " |",
    ]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def ratio(value: Any, reference: Any) -> float | None:
    """value / reference, or None when either is missing or the reference is zero."""
    if not isinstance(value, int | float) or not isinstance(reference, int | float):
        return None
    if math.isnan(value) or math.isnan(reference) or reference == 0:
        return None
    return float(value) / float(reference)


def quality_table(figures_by_run: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per run (e.g. `step / exo-scaler`), one column per quality metric."""
    headers = ["run", *(label for _, label, _ in QUALITY_METRICS)]
    rows = [
        [name, *(fmt(figures.get(key), spec) for key, _, spec in QUALITY_METRICS)]
        for name, figures in figures_by_run.items()
    ]
    return markdown_table(headers, rows)


def comparison(ours: Mapping[str, Any], naive: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per metric: exo-scaler's value, the naive scaler's, and naive / exo-scaler."""
    return [
        {
            "metric": key,
            "label": label,
            "exo_scaler": ours.get(key),
            "naive": naive.get(key),
            "naive_over_exo_scaler": ratio(naive.get(key), ours.get(key)),
        }
        for key, label, _ in QUALITY_METRICS
    ]


def comparison_table(profile: str, rows: Sequence[Mapping[str, Any]]) -> str:
    specs = {key: spec for key, _, spec in QUALITY_METRICS}
    return markdown_table(
        [f"{profile}: metric", "exo-scaler", "naive", "naive / exo-scaler"],
        [
            [
                r["label"],
                fmt(r["exo_scaler"], specs[r["metric"]]),
                fmt(r["naive"], specs[r["metric"]]),
                fmt(r["naive_over_exo_scaler"], ".2f"),
            ]
            for r in rows
        ],
    )


# -- faults ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionMatch:
    decisions: int  # scaled decisions the scaler logged
    operations: int  # scaling operations the zone recorded
    matched: int
    missed: int  # a scaled decision with no operation behind it
    doubled: int  # an operation no decision accounts for (a second call for one decision)

    def to_json(self) -> dict[str, int]:
        return {
            "scaled_decisions": self.decisions,
            "operations": self.operations,
            "matched": self.matched,
            "missed": self.missed,
            "doubled": self.doubled,
        }


def match_decisions(
    decision_times: Sequence[float],
    operation_times: Sequence[float],
    *,
    before: float,
    after: float = 0.5,
) -> DecisionMatch:
    """Pair each scaled decision with the earliest unpaired operation created within
    [t - before, t + after] (a decision is logged once its API call has returned, so its
    operation normally comes first)."""
    free = sorted(operation_times)
    used = [False] * len(free)
    matched = 0
    for t in sorted(decision_times):
        for i, op_t in enumerate(free):
            if not used[i] and t - before <= op_t <= t + after:
                used[i] = True
                matched += 1
                break
    return DecisionMatch(
        decisions=len(decision_times),
        operations=len(operation_times),
        matched=matched,
        missed=len(decision_times) - matched,
        doubled=len(operation_times) - matched,
    )


def bound_violations(sizes: Sequence[int], min_size: int, max_size: int) -> int:
    """Samples whose pool size lies outside [min_size, max_size]."""
    return sum(1 for s in sizes if not min_size <= s <= max_size)


def recovery_time(
    event_t: float, times: Sequence[float], supply: Sequence[int], pool_size: Sequence[int]
) -> float | None:
    """After an event (a member kill): from the event until supply is back to the pool size,
    counted from the first sample that shows the loss. 0.0 when no loss was ever seen;
    None when supply never came back within the series."""
    if not len(times) == len(supply) == len(pool_size):
        raise ValueError("times, supply and pool sizes must be sampled together")
    lost = False
    for t, s, p in zip(times, supply, pool_size, strict=True):
        if t < event_t:
            continue
        if not lost:
            lost = s < p
        elif s >= p:
            return t - event_t
    return None if lost else 0.0


# -- reaction ------------------------------------------------------------------------------------

#: stage name, the mark it ends at, and the reaction-floor entries (stack.reaction_floor) it holds
REACTION_STAGES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "load step → alert pending (scrape, rate window, evaluation)",
        "alert_pending",
        (
            "scrape (half an interval on average)",
            "rate window filling past the line (about half the window)",
            "rule evaluation (half an interval)",
        ),
    ),
    ("pending → firing (pending period)", "alert_firing", ("pending period",)),
    ("firing → webhook at the scaler (group_wait)", "webhook", ("notification (group_wait)",)),
    ("webhook → scale decision (tick)", "decision", ("scaler tick (half on average)",)),
    (
        "decision → member's VM running",
        "member_running",
        ("new members appear (instances lag size)", "VM boot (starting → running)"),
    ),
    (
        "running → serving behind the NLB (guest boot, provisioning, health check)",
        "member_serving",
        (
            "guest boot",
            "packages (apt; node_exporter up at their end)",
            "Python wheels (pip), then slow-web starts",
            "first health check",
        ),
    ),
)


def reaction_breakdown(
    step_t: float, marks: Mapping[str, float | None], speed: float, floor: Mapping[str, float]
) -> list[dict[str, Any]]:
    """Per stage: production seconds spent (from lab-time marks) next to the timers' floor.

    A missing mark leaves its stage and the next one unmeasured; the total row is the time
    from the step to the last mark that was seen."""
    rows: list[dict[str, Any]] = []
    previous: float | None = step_t
    for name, mark, floor_keys in REACTION_STAGES:
        at = marks.get(mark)
        spent = None if at is None or previous is None else (at - previous) * speed
        rows.append(
            {
                "stage": name,
                "seconds": spent,
                "floor_seconds": math.fsum(floor.get(k, 0.0) for k in floor_keys),
                "at_lab_s": at,
            }
        )
        previous = at
    last = next((marks.get(m) for _, m, _ in reversed(REACTION_STAGES) if marks.get(m)), None)
    rows.append(
        {
            "stage": "total: load step → new member serving",
            "seconds": None if last is None else (last - step_t) * speed,
            "floor_seconds": floor.get("total", math.fsum(r["floor_seconds"] for r in rows)),
            "at_lab_s": last,
        }
    )
    return rows


def reaction_table(rows: Sequence[Mapping[str, Any]]) -> str:
    return markdown_table(
        ["stage", "measured s", "floor s (configured timers)"],
        [[r["stage"], fmt(r["seconds"], ".1f"), fmt(r["floor_seconds"], ".1f")] for r in rows],
    )
