"""The course grader's criterion, drains and the course, signal and evict targets, on
synthetic poll traces and figures (the sweep's tables and targets: test_bench_sweep.py)."""

from __future__ import annotations

from pathlib import Path

from exo_lab.bench.analysis import (
    CourseVerdict,
    Poll,
    course_table,
    grade_course,
    longest_drains,
    target_checks,
    targets_table,
)


def _polls(*running: int | None, every: float = 10.0) -> list[Poll]:
    return [Poll(t=i * every, running=r, size=r) for i, r in enumerate(running)]


# -- the course grader's criterion -----------------------------------------------------------------


def test_course_passes_when_a_poll_sees_exactly_two_within_300_s() -> None:
    verdict = grade_course(_polls(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3))
    assert verdict.passed and verdict.two_at == 160.0


def test_course_fails_when_the_jump_to_two_is_never_visible() -> None:
    verdict = grade_course(_polls(1, 1, 1, 3, 3))
    assert not verdict.passed
    assert "saw 3 running" in verdict.detail


def test_course_fails_when_two_comes_after_the_window() -> None:
    polls = _polls(*([1] * 31), 2)  # t = 0..300 at 1, 2 at 310 s
    verdict = grade_course(polls)
    assert not verdict.passed and "never 2 members running within 300 s" in verdict.detail
    assert grade_course(_polls(*([1] * 30), 2)).passed  # 2 at exactly 300 s still counts


def test_course_skips_failed_polls_and_needs_at_least_one() -> None:
    polls = [Poll(0, 1), Poll(10, None, error="503"), Poll(20, 2, 2)]
    assert grade_course(polls).passed
    assert not grade_course([Poll(0, None, error="timeout")]).passed
    assert not grade_course([]).passed


def test_course_table_lists_the_trace_and_verdicts() -> None:
    traces = {"naive": _polls(1, 3), "exo-scaler": _polls(1, 2)}
    verdicts = {n: grade_course(t) for n, t in traces.items()}
    table = course_table(traces, verdicts)
    assert "| naive | FAIL |" in table
    assert "| exo-scaler | pass |" in table
    assert "| 10 | 3 (3) | 2 (2) |" in table


# -- drains --------------------------------------------------------------------------------------


def test_longest_drains_ends_a_drain_when_the_member_leaves_or_resumes() -> None:
    samples = [
        (0.0, {"a": False, "b": False}),
        (1.0, {"a": True, "b": True}),
        (2.0, {"a": True, "b": False}),  # b resumed
        (3.0, {"b": True}),  # a evicted: its drain ended with it
        (9.0, {"b": True}),  # b left drained
    ]
    assert longest_drains(samples) == {"a": 1.0, "b": 6.0}


# -- targets ---------------------------------------------------------------------------------------


def _by_target(checks: list) -> dict[tuple[str, str], object]:
    return {(c.target, c.scope): c for c in checks}


def test_targets_report_met_not_met_and_not_measured() -> None:
    checks = _by_target(
        target_checks(
            signals={"injected": 5, "scaled_by_signals": 0},
            evict={"failed_evicts": 1, "left_drained": 1},
        )
    )
    course = checks["course criterion at production timing", "exo-scaler"]
    assert course.met is None
    assert checks[
        "0 scaling actions caused by NoData, Error or test notifications", "exo-scaler"
    ].met
    drained = checks["0 members left drained after a failed evict operation", "exo-scaler"]
    assert drained.met is False and drained.figure.startswith("1 left drained")


def test_targets_not_met_and_not_exercised() -> None:
    course = {
        "naive": CourseVerdict(False, None, "saw 3"),
        "exo-scaler": CourseVerdict(True, 160.0, "2 at 160 s"),
    }
    checks = _by_target(
        target_checks(
            course=course,
            signals={"injected": 4, "scaled_by_signals": 1},
            evict={"failed_evicts": 0, "left_drained": 0},
        )
    )
    c = checks["course criterion at production timing", "exo-scaler"]
    assert c.met is True and "naive fail" in c.figure
    signals = checks[
        "0 scaling actions caused by NoData, Error or test notifications", "exo-scaler"
    ]
    assert signals.met is False
    # An evict that never failed has not exercised the target.
    assert checks["0 members left drained after a failed evict operation", "exo-scaler"].met is None
    table = targets_table(list(checks.values()))
    assert "| NOT MET |" in table and "| met |" in table and "| not measured |" in table


# -- what the lab runs do, as pure parts -------------------------------------------------------


def test_load_begins_where_the_course_workers_start() -> None:
    from exo_lab.bench.lab import load_begins_at
    from exo_lab.load.profiles import make_profile

    course = make_profile("course", base_rps=0, peak_rps=0, duration=640).scaled(20)
    assert load_begins_at(course) == 4.0  # 80 production seconds at ×20
    step = make_profile("step", base_rps=1, peak_rps=5, duration=640)
    assert load_begins_at(step) == 0.0


def test_actions_are_blamed_on_grafana_signals_only_through_their_intents() -> None:
    from exo_lab.bench.outcomes import scaled_by_sources
    from exo_scaler import Decision, DecisionRecord, Direction, Intent, Reason

    def record(source: str, reason: Reason) -> DecisionRecord:
        intent = Intent(Direction.UP, 1.0, 2.0, source)
        decision = Decision(Direction.UP, 1, 2, reason, (intent,))
        return DecisionRecord.of(decision, wall_time=3.0, pool="p", tick=1)

    records = [
        record("alertmanager", Reason.SCALED),
        record("up-grafana", Reason.SCALED),
        record("grafana", Reason.AT_MAX),  # not an action
    ]
    assert scaled_by_sources(records, "grafana") == 1


def test_scaler_events_are_counted_from_its_log(tmp_path: Path) -> None:
    from exo_lab.bench.lab import scaler_events

    log = tmp_path / "exo-scaler.log"
    log.write_text(
        '{"event":"decision","tick":1}\n'
        "INFO exo_scaler: a stderr line\n"
        '{"event":"drain","members":["a"]}\n'
        '{"event":"resume","ok":1}\n'
        '{"event":"drain","members":["a"]}\n'
        "{not json\n"
    )
    assert scaler_events(log) == {"decision": 1, "drain": 2, "resume": 1}
    assert scaler_events(tmp_path / "missing.log") == {}
