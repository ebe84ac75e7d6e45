"""What one lab outcome says: fault handling, reaction by stage, memory, pool-busy refusals.

Figures from a `LabOutcome` (bench/lab.py) and the markdown tables the suite prints for them.
"""

from __future__ import annotations

from typing import Any

from exo_scaler import DecisionRecord, Direction, Reason

from .analysis import (
    bound_violations,
    fmt,
    longest_drains,
    markdown_table,
    match_decisions,
    reaction_breakdown,
    reaction_table,
    recovery_time,
)
from .lab import LabOutcome


def analyse_faults(outcome: LabOutcome) -> dict[str, Any]:
    s = outcome.settings
    samples = outcome.report.samples
    scaled_times = [d.wall_time for d in outcome.report.actions()]
    match = match_decisions(scaled_times, outcome.operation_times, before=5.0)
    times = [x.t for x in samples]
    supply = [x.supply for x in samples]
    sizes = [x.pool_size for x in samples]
    events = []
    for event in outcome.events:
        row = event.to_json()
        if event.kind == "kill-member" and event.done_at is not None:
            row["recovery_s"] = _prod(recovery_time(event.done_at, times, supply, sizes), s.speed)
        if event.kind == "restart" and event.done_at is not None and event.ready_at is not None:
            row["recovery_s"] = _prod(event.ready_at - event.done_at, s.speed)
            row["recovery_lab_s"] = round(event.ready_at - event.done_at, 2)
        events.append(row)
    f = outcome.figures
    return {
        "decisions": match.to_json(),
        "bound_violations": bound_violations(sizes, s.min_size, s.max_size),
        "samples": len(samples),
        "failed_requests": f["failed_requests"],
        "requests": f["requests"],
        "failed_during_scale_in": f["failed_during_scale_in"],
        "api_errors_in_decisions": sum(
            1 for d in outcome.report.decisions if d.reason in (Reason.API_ERROR, Reason.POOL_BUSY)
        ),
        "events": events,
        "figures": f,
        "speed": s.speed,
    }


def faults_markdown(section: dict[str, Any]) -> str:
    d = section["decisions"]
    summary = markdown_table(
        ["figure", "value"],
        [
            [
                "scaled decisions / scaling operations",
                f"{d['scaled_decisions']} / {d['operations']}",
            ],
            ["decisions missed (no operation)", d["missed"]],
            ["decisions doubled (operation without a decision)", d["doubled"]],
            ["ticks that met an API error or a busy pool", section["api_errors_in_decisions"]],
            [
                "bound violations (samples outside [min, max])",
                f"{section['bound_violations']} of {section['samples']}",
            ],
            ["failed requests", f"{section['failed_requests']} of {section['requests']}"],
            ["failed during scale-in", section["failed_during_scale_in"]],
            [
                "θ_U / θ_O %",
                f"{fmt(section['figures']['theta_u'], '.1f')} / "
                f"{fmt(section['figures']['theta_o'], '.1f')}",
            ],
        ],
    )
    events = markdown_table(
        ["lab t s", "fault", "what happened", "recovery s (production)"],
        [
            [
                fmt(e["done_at"], ".0f"),
                f"{e['kind']} {e['target']}".strip(),
                e["detail"],
                fmt(e.get("recovery_s"), ".1f"),
            ]
            for e in section["events"]
        ],
    )
    note = (
        "Recovery: after the kill, from the kill until the NLB serves as many members as the "
        "pool's size again (after the loss showed); after a restart, until the component "
        "answers its readiness endpoint."
    )
    return f"{summary}\n\n{events}\n\n{note}"


def analyse_reaction(outcome: LabOutcome) -> dict[str, Any]:
    s = outcome.settings
    step_t = outcome.figures.get("load_step_at")
    marks: dict[str, float | None] = {}
    if step_t is not None:
        ups = [e for e in outcome.decisions_logged if e.scaled and e.action is Direction.UP]
        start_wall = outcome.load_start_wall
        first = next((e for e in ups if e.wall_time - start_wall >= step_t), None)
        marks["alert_pending"] = outcome.alert_active_at.get("pending:scale_up") or (
            outcome.alert_marks.get("pending")
        )
        marks["alert_firing"] = outcome.alert_marks.get("firing") or (
            outcome.alert_active_at.get("firing:scale_up")
        )
        if first is not None:
            decision_t = first.wall_time - start_wall
            intents = [i for i in first.intents if i.direction is Direction.UP]
            marks["webhook"] = intents[0].first_at - start_wall if intents else None
            marks["decision"] = decision_t
            member = next((m for m in outcome.members if m.seen_at >= decision_t - 1.5), None)
            if member is not None:
                marks["member_running"] = member.running_at
                marks["member_serving"] = member.serving_at
    rows = (
        reaction_breakdown(step_t, marks, s.speed, outcome.reaction_floor)
        if step_t is not None
        else []
    )
    return {
        "speed": s.speed,
        "profile": s.profile,
        "duration_s": s.duration,
        "peak_members": s.peak_members,
        "load_step_at_lab_s": step_t,
        "marks_lab_s": marks,
        "breakdown": rows,
        "report_reaction_to_decision_s": outcome.figures.get("reaction_to_decision_s"),
        "report_reaction_to_capacity_s": outcome.figures.get("reaction_to_capacity_s"),
        "floor": outcome.reaction_floor,
    }


def reaction_markdown(section: dict[str, Any]) -> str:
    if not section["breakdown"]:
        return "No load step was seen in this run."
    return (
        reaction_table(section["breakdown"])
        + "\n\nFrom the run report: load step → scale-up decision "
        f"{fmt(section['report_reaction_to_decision_s'], '.0f')} s, → new capacity serving "
        f"{fmt(section['report_reaction_to_capacity_s'], '.0f')} s (production seconds). "
        "Marks: Prometheus alert activeAt / ALERTS series, the scaler's decision log "
        "(webhook = first intent's arrival), the zone's member records and the NLB's health."
    )


def rss_markdown(rss: dict[str, dict[str, dict[str, float]]]) -> str:
    names: list[str] = []
    for per_run in rss.values():
        names += [n for n in per_run if n not in names]
    runs = list(rss)
    return "RSS (MiB, max over the run, sampled every 5 lab seconds):\n\n" + markdown_table(
        ["process", *runs],
        [[n, *(fmt(rss[r].get(n, {}).get("max"), ".1f") for r in runs)] for n in names],
    )


def _prod(lab_seconds: float | None, speed: float) -> float | None:
    return None if lab_seconds is None else round(lab_seconds * speed, 1)


def pool_busy_refusals(records: list[DecisionRecord]) -> int:
    """Decisions refused because the pool was busy (the naive scaler's 409s)."""
    return sum(1 for r in records if r.reason is Reason.POOL_BUSY)


# -- signals that must never scale, and the failed evict ------------------------------------------

#: the fixtures posted by the faults section's `signals` event: Grafana payloads that must never
#: scale, with the route each goes to (real shapes, each citing its upstream file in the
#: fixtures' README)
SIGNAL_FIXTURES: tuple[tuple[str, str], ...] = (
    ("grafana_nodata.json", "/webhook"),
    ("grafana_error.json", "/webhook"),
    ("grafana_state_reason.json", "/webhook"),
    ("grafana_test_notification.json", "/webhook"),
    ("grafana_nodata.json", "/up"),
    ("grafana_test_notification.json", "/up"),
)
FIXTURES_DIR = "packages/exo-scaler/tests/fixtures"


def scaled_by_sources(records: list[DecisionRecord], marker: str) -> int:
    """Scaling actions whose intents include one from a source naming `marker`.

    In the lab every real alert comes from Alertmanager; the only Grafana-shaped sender is the
    faults section's injector, so an action with a `grafana` intent was caused by a signal that
    must never scale (exo-scaler records `grafana`, or `up-grafana` on a route)."""
    return sum(1 for r in records if r.scaled and any(marker in i.source for i in r.intents))


def analyse_signals(outcome: LabOutcome) -> dict[str, Any]:
    answers = [a for e in outcome.events if e.kind == "signals" for a in e.answers]
    return {
        "injected": len(answers),
        "answered_2xx": sum(1 for a in answers if 200 <= int(a.get("status", 0)) < 300),
        "recorded_a_direction": sum(1 for a in answers if a.get("recorded")),
        "scaled_by_signals": scaled_by_sources(outcome.decisions_logged, "grafana"),
        "answers": answers,
    }


def analyse_evict(outcome: LabOutcome) -> dict[str, Any]:
    """Members left drained: drained, still in the pool, for longer than a legitimate drain
    (drain, evict, one tick to resume after a failed operation) could last. Sampled once a lab
    second from the members' admin API, so a drain shorter than that (a resume at once) may
    not be seen at all; the scaler's own drain and resume lines say what it did."""
    s = outcome.settings
    bound = s.lab(2 * s.timings.tick + s.timings.drain + s.timings.operation_delay)
    longest = longest_drains(outcome.drain_samples)
    left = sorted(m for m, span in longest.items() if span > bound)
    return {
        "failed_evicts": outcome.failed_evicts,
        "drains": outcome.scaler_events.get("drain", 0),
        "resumes": outcome.scaler_events.get("resume", 0),
        "left_drained": len(left),
        "members_left_drained": left,
        "members_seen_draining": sum(1 for span in longest.values() if span > 0),
        "longest_drain_s": _prod(max(longest.values(), default=0.0), s.speed),
        "bound_s": _prod(bound, s.speed),
        "drain_samples": len(outcome.drain_samples),
    }


def hygiene_markdown(signals: dict[str, Any] | None, evict: dict[str, Any] | None) -> str:
    rows: list[list[Any]] = []
    if signals is not None:
        rows += [
            [
                "Grafana signals posted (NoData, Error, state reason, test; /webhook and /up)",
                f"{signals['injected']} ({signals['answered_2xx']} answered 2xx)",
            ],
            ["of them recorded as a direction", signals["recorded_a_direction"]],
            ["scaling actions with a Grafana intent", signals["scaled_by_signals"]],
        ]
    if evict is not None:
        rows += [
            ["evict operations ended in failure (injected)", evict["failed_evicts"]],
            [
                "the scaler's drains / resumes (its log)",
                f"{evict.get('drains', 0)} / {evict.get('resumes', 0)}",
            ],
            [
                f"members left drained (drained in the pool > {fmt(evict['bound_s'], '.0f')} s)",
                f"{evict['left_drained']} (longest drain {fmt(evict['longest_drain_s'], '.0f')} s,"
                f" {evict['members_seen_draining']} member(s) seen draining)",
            ],
        ]
    return markdown_table(["signal hygiene and evict lifecycle", "value"], rows)
