"""The benchmark's arithmetic and tables: pure functions over figures and series.

Kept apart from the runs so every number the suite prints can be checked on synthetic input.
One concept over ~400 lines: the arithmetic of the non-judged sections (quality tables, faults,
reaction, the course grader, drains, their targets); the judged sweep's is sweep.py.
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


# -- three contestants -------------------------------------------------------------------------

#: the course section's contestants, the reference (naive) first (the sweep's, with the
#: reactive limit, are bench/sweep.py's)
CONTESTANTS: tuple[str, ...] = ("naive", "seed", "exo-scaler")

# -- the course grader's criterion ----------------------------------------------------------------

#: seconds after the load's start by which the grader wants exactly 2 members running
COURSE_WINDOW = 300.0
#: the grader polls the API this often (production seconds)
COURSE_POLL_EVERY = 10.0


@dataclass(frozen=True)
class Poll:
    """One poll of the API, as the course's grader makes it."""

    t: float  # production seconds since the load started
    running: int | None  # members in state `running`; None when the call failed
    size: int | None = None  # the pool's size, for the trace
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"t": self.t, "running": self.running, "size": self.size, "error": self.error}


@dataclass(frozen=True)
class CourseVerdict:
    passed: bool
    two_at: float | None  # the first poll that showed exactly 2 running
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "two_at": self.two_at, "detail": self.detail}


def grade_course(polls: Sequence[Poll], *, window: float = COURSE_WINDOW) -> CourseVerdict:
    """The course grader's criterion over a poll trace: exactly 2 members `running` within
    `window` seconds of the load's start, the jump to 2 seen by a poll before any further step
    (a poll that first shows more than 1 must show 2, not 3). A failed poll is skipped, as a
    grader that retries would."""
    seen = [p for p in sorted(polls, key=lambda p: p.t) if p.running is not None]
    within = [p for p in seen if p.t <= window + 1e-9]
    if not within:
        return CourseVerdict(False, None, f"no successful poll within {window:g} s")
    first = next((p for p in within if p.running is not None and p.running >= 2), None)
    if first is None:
        most = max(p.running or 0 for p in within)
        return CourseVerdict(
            False, None, f"never 2 members running within {window:g} s (at most {most})"
        )
    if first.running != 2:
        return CourseVerdict(
            False,
            None,
            f"the poll at {first.t:.0f} s saw {first.running} running: the jump to 2 was "
            "never visible",
        )
    return CourseVerdict(True, first.t, f"2 members running at the poll at {first.t:.0f} s")


def course_table(
    traces: Mapping[str, Sequence[Poll]], verdicts: Mapping[str, CourseVerdict]
) -> str:
    """The poll trace side by side: members running (pool size) per contestant, then the
    verdict per contestant."""
    names = list(traces)
    times = sorted({round(p.t) for trace in traces.values() for p in trace})
    by_name = {n: {round(p.t): p for p in traces[n]} for n in names}

    def cell(p: Poll | None) -> str:
        if p is None:
            return "—"
        if p.running is None:
            return f"error ({p.error})" if p.error else "error"
        return f"{p.running} ({fmt(p.size, 'd')})"

    trace = markdown_table(
        ["t s after load start", *(f"{n}: running (size)" for n in names)],
        [[t, *(cell(by_name[n].get(t)) for n in names)] for t in times],
    )
    verdict = markdown_table(
        ["contestant", "course criterion", "why"],
        [
            [n, "pass" if verdicts[n].passed else "FAIL", verdicts[n].detail]
            for n in names
            if n in verdicts
        ],
    )
    return f"{verdict}\n\n{trace}"


# -- drains ---------------------------------------------------------------------------------------


def longest_drains(samples: Sequence[tuple[float, Mapping[str, bool]]]) -> dict[str, float]:
    """Per member, the longest time it stayed draining while still a pool member.

    `samples` are (time, {member: draining}) with one entry per member of the pool at that
    time; a member missing from a sample has left the pool, which ends its drain. A member
    never seen draining gets 0."""
    longest: dict[str, float] = {}
    since: dict[str, float] = {}
    for t, states in sorted(samples, key=lambda s: s[0]):
        for member in list(since):
            if member not in states:
                del since[member]  # left the pool: evicted, as a drain should end
        for member, draining in states.items():
            longest.setdefault(member, 0.0)
            if draining:
                start = since.setdefault(member, t)
                longest[member] = max(longest[member], t - start)
            else:
                since.pop(member, None)
    return longest


# -- targets ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetCheck:
    """One of the issue's targets, the figure this run measured for it, and whether it was met
    (None: not measured in this run). Printed, never asserted: figures are not tests."""

    target: str
    scope: str
    figure: str
    met: bool | None

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "scope": self.scope, "figure": self.figure, "met": self.met}


def target_checks(
    *,
    course: Mapping[str, CourseVerdict] | None = None,
    signals: Mapping[str, Any] | None = None,
    evict: Mapping[str, Any] | None = None,
) -> list[TargetCheck]:
    """The targets of the course, signals and evict sections (the sweep's are
    sweep.sweep_targets).

    `signals` {"injected", "scaled_by_signals"} and `evict` {"failed_evicts", "left_drained"}
    come from the faults section; any may be missing (a section not run, quick mode), which
    gives `met` None."""
    checks: list[TargetCheck] = []
    ours = "exo-scaler"

    def not_run(target: str, scope: str, why: str) -> None:
        checks.append(TargetCheck(target, scope, why, None))

    if course is None or ours not in course:
        not_run("course criterion at production timing", ours, "not run (full mode only)")
    else:
        others = ", ".join(
            f"{c} {'pass' if v.passed else 'fail'}" for c, v in course.items() if c != ours
        )
        checks.append(
            TargetCheck(
                "course criterion at production timing",
                ours,
                f"{'pass' if course[ours].passed else 'fail'}: {course[ours].detail}"
                + (f" ({others})" if others else ""),
                course[ours].passed,
            )
        )
    if signals is None:
        not_run("0 scaling actions caused by NoData, Error or test notifications", ours, "not run")
    else:
        caused = int(signals.get("scaled_by_signals", 0))
        checks.append(
            TargetCheck(
                "0 scaling actions caused by NoData, Error or test notifications",
                ours,
                f"{caused} of {signals.get('injected', 0)} injected signals",
                caused == 0 if signals.get("injected") else None,
            )
        )
    if evict is None:
        not_run("0 members left drained after a failed evict operation", ours, "not run")
    else:
        failed, left = int(evict.get("failed_evicts", 0)), int(evict.get("left_drained", 0))
        checks.append(
            TargetCheck(
                "0 members left drained after a failed evict operation",
                ours,
                f"{left} left drained after {failed} failed evict operation(s)",
                None if failed == 0 else left == 0,
            )
        )
    return checks


def targets_table(checks: Sequence[TargetCheck]) -> str:
    def met(value: bool | None) -> str:
        return "not measured" if value is None else ("met" if value else "NOT MET")

    return markdown_table(
        ["target", "where", "figure", "met?"],
        [[c.target, c.scope, c.figure, met(c.met)] for c in checks],
    )
