"""The measured run: offer the load, sample once a lab second, watch scale-in, report.

One loop for every system under test: `exo-lab run` (a lab stack), `exo-lab run --target` (a
deployment) and the benchmark. What differs is the `Probe` it samples; what a caller adds
(faults, member tracking, the course grader's polls, a monitoring outage) are `RunHooks`, called
when the load starts, after every sample and when the run is over.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from exo_scaler import DecisionLogError, action_label

from ..files import AppendedLines
from ..load.generator import RequestResult
from ..report.run_report import Observation, RunReport, samples_from, since_load_start
from ..stack.processes import ChildProcesses
from .probe import Probe, RunClock


class RunFailed(RuntimeError):
    """The measured run could not finish; one line for the terminal."""


class RunHooks:
    """What a caller adds to a run; every method is optional (override what you need)."""

    def before_load(self) -> None:
        """Just before the load generator starts (it may wait, e.g. for a tick's phase)."""

    def started(self, clock: RunClock) -> None:
        """The load generator was just started."""

    def sampled(self, t: float, observation: Observation) -> None:
        """After each sample (lab seconds since the load started), during load and settle."""

    def finished(self) -> None:
        """The load and the settle are over (also after a failure)."""


class MeasuredRun:
    """Use `run()` once: it returns the report (not written) or raises RunFailed."""

    def __init__(
        self,
        probe: Probe,
        hooks: Sequence[RunHooks] = (),
        *,
        settle: bool = True,
        window: float | None = None,
    ) -> None:
        """`settle`: after the load, watch the pool back to its minimum (the probe's plan).
        `window`: instead, sample until this many lab seconds after the load started and judge
        the run over [0, window): the benchmark's one window for every contestant."""
        self.probe = probe
        self.hooks = list(hooks)
        self.settle = settle
        self.window = window
        self.observations: list[Observation] = []
        self.clock: RunClock | None = None
        self.plan = probe.load_plan()
        self.shape = self.plan.shape()
        self._progress_file = probe.out / "load-progress.jsonl"
        self._results_file = probe.out / "load-results.jsonl"
        self._progress = AppendedLines(self._progress_file)
        self._last_load: dict[str, Any] = {}

    def run(self) -> RunReport:
        results = self.offer_load()
        return self.report(results)

    # -- the load -------------------------------------------------------------------------

    def offer_load(self) -> list[RequestResult]:
        p, plan = self.probe, self.plan
        p.out.mkdir(parents=True, exist_ok=True)
        for path in (self._progress_file, self._results_file):
            path.unlink(missing_ok=True)
        p.say(
            f"load: profile {plan.profile}, {self.shape.duration:.0f} lab s "
            f"({plan.duration:.0f} s at speed 1, ×{plan.speed:g}), peak {plan.peak_rps:.1f} rps"
        )
        children = ChildProcesses(p.out / "logs")
        try:
            for hook in self.hooks:
                hook.before_load()
            child = children.start("load", plan.command(self._progress_file, self._results_file))
            clock = self.clock = RunClock(time.monotonic(), time.time())
            for hook in self.hooks:
                hook.started(clock)
            hard_stop = clock.mono + self.shape.duration + 60
            next_sample, last_print = clock.mono, -1e9
            while child.alive() and time.monotonic() < hard_stop:
                p.check()
                t = clock.since()
                sample = self._sample(round(t))
                if t - last_print >= max(1.0, self.shape.duration / 40):
                    last_print = t
                    p.say(self._progress_line(t, sample))
                next_sample += 1.0
                time.sleep(max(0.0, next_sample - time.monotonic()))
            if child.alive():
                raise RunFailed("the load generator overran its time bound and was stopped")
            if child.process.returncode != 0:
                raise RunFailed(
                    f"the load generator failed (code {child.process.returncode}):\n{child.tail()}"
                )
            if self.window is not None:
                self._observe_until(self.window)
            elif self.settle:
                self._settle()
        finally:
            children.stop_all()
            for hook in self.hooks:
                hook.finished()
        lines = self._results_file.read_text().splitlines()
        return [RequestResult(**json.loads(line)) for line in lines]

    def _sample(self, t: float) -> Observation:
        observation = self.probe.observe(t)
        self.observations.append(observation)
        for hook in self.hooks:
            hook.sampled(t, observation)
        return observation

    def _settle(self) -> None:
        """After the load: watch the pool come back to its minimum (bounded)."""
        assert self.clock is not None
        plan = self.probe.settle_plan()
        if plan.bound <= 0:
            return
        self.probe.say(
            f"load finished; watching scale-in to {plan.min_size} (at most {plan.bound:.0f} lab s)"
        )
        deadline = time.monotonic() + plan.bound
        at_min_since: float | None = None
        while time.monotonic() < deadline:
            self.probe.check()
            sample = self._sample(round(self.clock.since()))
            if sample.pool_size == plan.min_size and sample.supply == plan.min_size:
                at_min_since = at_min_since or time.monotonic()
                if time.monotonic() - at_min_since >= plan.hold:
                    return
            else:
                at_min_since = None
            time.sleep(1.0)

    def _observe_until(self, end: float) -> None:
        """Sample on, one a lab second, until `end` lab seconds after the load started."""
        assert self.clock is not None
        self.probe.say(f"load finished; observing until t={end:.0f} lab s (the judged window)")
        next_sample = self.clock.mono + math.floor(self.clock.since()) + 1.0
        while (t := self.clock.since()) < end:
            self.probe.check()
            self._sample(round(t))
            time.sleep(max(0.0, min(next_sample, self.clock.mono + end) - time.monotonic()))
            next_sample += 1.0

    def _progress_line(self, t: float, sample: Observation) -> str:
        for line in self._progress.read():
            with contextlib.suppress(ValueError):
                self._last_load = json.loads(line)
        last = self._last_load
        p95, cpu = last.get("p95"), sample.avg_cpu
        latest = None
        with contextlib.suppress(DecisionLogError):
            latest = self.probe.latest_decision()
        decided = f"{action_label(latest.action)} {latest.reason}" if latest else "—"
        return (
            f"t={t:5.0f}s  offered {last.get('offered_rps', 0):5.1f} rps  "
            f"p95 {'—' if p95 is None else f'{p95 * 1000:5.0f} ms'}  "
            f"cpu {'—' if cpu is None else f'{cpu:5.1f} %'}  "
            f"pool {sample.pool_size} (serving {sample.supply})  last decision: {decided}"
        )

    # -- the report -----------------------------------------------------------------------

    def report(self, results: list[RequestResult]) -> RunReport:
        assert self.clock is not None, "report() after offer_load()"
        observations = self.observations
        if self.window is not None:
            # One sample per second of the window, the same seconds for every contestant.
            by_second: dict[float, Observation] = {}
            for o in observations:
                if 0 <= o.t < self.window:
                    by_second.setdefault(o.t, o)
            observations = sorted(by_second.values(), key=lambda o: o.t)
            results = [r for r in results if r.scheduled < self.window]
        samples = samples_from(
            observations,
            results,
            offered_at=self.shape.rate_at,
            demand_for=self.probe.demand_for,
        )
        config = {
            **self.probe.config(),
            "started": datetime.fromtimestamp(self.clock.wall, UTC).isoformat(timespec="seconds"),
        }
        decisions = since_load_start(self.probe.decisions(self.clock.wall), self.clock.wall)
        if self.window is not None:
            config["evaluation_window_lab_s"] = self.window
            decisions = [d for d in decisions if d.wall_time < self.window]
        return RunReport(
            config=config,
            samples=samples,
            decisions=decisions,
            results=results,
            members=self.probe.member_lives(self.clock),
        )
