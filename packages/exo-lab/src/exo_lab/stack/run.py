"""`exo-lab run`: the whole autoscaling loop on one machine, measured.

A `LabRun` is a `LabStack` plus the measuring: one observation per lab second (pool size,
members serving, average CPU), the open-loop load generator as a child process (so its work
never competes with the balancer for this interpreter), the settle back to the minimum, and the
report with exo-scaler's own decision records.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from exo_scaler import DecisionLogError, DecisionRecord, action_label, read_decision_log

from ..dataplane.lock import LabBusyError
from ..files import AppendedLines, write_atomically
from ..load.generator import RequestResult
from ..report.quality import oracle_demand
from ..report.run_report import Observation, RunReport, samples_from, since_load_start
from . import render
from .grafana import ProvisioningError, load_rules, load_webhook_route
from .lab_stack import LabStack
from .outage import OutageDriver
from .processes import ChildExited, find_binary
from .settings import LabError, LabSettings


class LabRun(LabStack):
    """One measured run; use as a context manager so everything stops on exit."""

    def __init__(self, settings: LabSettings) -> None:
        super().__init__(settings)
        self.observations: list[Observation] = []
        #: when the load started: wall clock (the scaler's log) and monotonic (the zone's)
        self.load_start_wall: float | None = None
        self.load_start_mono: float | None = None
        self.outage: OutageDriver | None = None
        # What the progress line follows, read incrementally.
        self._scaler_lines = AppendedLines(self.scaler_log())
        self._load_progress = AppendedLines(self.files.load_progress)
        self._last_load: dict[str, Any] = {}
        self._last_decision: DecisionRecord | None = None

    # -- observing ------------------------------------------------------------------------

    def observe(self, t: float) -> Observation:
        """What the lab sees at lab time `t` (seconds since the load started)."""
        assert self.zone is not None
        pool_size = self.zone.pool_snapshot(self.pool_id).size
        sample = Observation(
            t=t,
            pool_size=pool_size,
            supply=sum(self._serving().values()),
            avg_cpu=self._query_cpu(),
        )
        self.observations.append(sample)
        return sample

    def scaler_log(self) -> Path:
        return self.out / "logs" / "exo-scaler.log"

    def logged_decisions(self) -> list[DecisionRecord]:
        """Every decision the scaler logged, as written (wall-clock times).

        Read from the log, not by polling /status: a loaded machine can stretch a sampling pass
        past a sped-up tick.
        """
        path = self.scaler_log()
        return read_decision_log(path) if path.exists() else []

    def decisions_from_log(self) -> list[DecisionRecord]:
        """Every decision, in lab seconds since the load started."""
        if self.load_start_wall is None:
            return []
        return since_load_start(self.logged_decisions(), self.load_start_wall)

    # -- running --------------------------------------------------------------------------

    def run_load(self) -> list[RequestResult]:
        s = self.s
        profile = self.s.load_profile()
        progress_file = self.files.load_progress
        results_file = self.files.load_results
        for path in (progress_file, results_file):
            path.unlink(missing_ok=True)
        self.say(
            f"load: profile {s.profile}, {profile.duration:.0f} lab s "
            f"({s.duration:.0f} s at speed 1), peak {s.peak_members:g} members' worth "
            f"({s.peak_members * s.member_rps_at_line:.1f} rps of {s.work_ms} ms CPU)"
        )
        child = self.children.start("load", render.load_command(s, self.files, self.nlb_url))
        start = self.load_start_mono = time.monotonic()
        self.load_start_wall = time.time()
        hard_stop = start + profile.duration + 60
        next_sample = start
        last_print = 0.0
        self.outage = self._outage_driver()
        while child.alive() and time.monotonic() < hard_stop:
            self._outage_tick(time.monotonic() - start)
            self.children.check_alive(expected_to_exit=("load",))
            t = time.monotonic() - start
            sample = self.observe(round(t))
            if t - last_print >= max(1.0, profile.duration / 40):
                last_print = t
                self.say(self._progress_line(t, sample))
            next_sample += 1.0
            time.sleep(max(0.0, next_sample - time.monotonic()))
        if child.alive():
            self.children.stop(child)
            raise LabError("the load generator overran its time bound and was stopped")
        self._settle(start)
        if child.process.returncode != 0:
            raise LabError(f"the load generator failed:\n{child.tail()}")
        return [RequestResult(**json.loads(line)) for line in results_file.read_text().splitlines()]

    def _settle(self, start: float) -> None:
        """After the load: watch the pool come back to its minimum (bounded)."""
        s = self.s
        t = s.timings
        steps = s.max_size - s.min_size + 1
        bound = s.lab(steps * t.tick + 2 * 60 + 4 * t.scrape_interval + t.drain) + 5
        deadline = time.monotonic() + bound
        at_min_since: float | None = None
        self.say(f"load finished; watching scale-in to {s.min_size} (at most {bound:.0f} lab s)")
        while time.monotonic() < deadline:
            self._outage_tick(time.monotonic() - start)
            self.children.check_alive(expected_to_exit=("load",))
            sample = self.observe(round(time.monotonic() - start))
            if sample.pool_size == s.min_size and sample.supply == s.min_size:
                at_min_since = at_min_since or time.monotonic()
                if time.monotonic() - at_min_since >= s.lab(t.tick):
                    return
            else:
                at_min_since = None
            time.sleep(1.0)
        if self.outage is not None:
            self.outage.restore()  # an outage longer than the run ends with it

    # -- monitoring outage (stack/outage.py) -----------------------------------------------

    def _outage_driver(self) -> OutageDriver | None:
        outage = self.s.monitoring_outage
        if outage is None:
            return None
        files = self.files
        port = urlsplit(self.prometheus_url).port
        binary = find_binary("prometheus")
        assert port is not None and binary is not None

        def child() -> list[Any]:
            return [c for c in self.children.children if c.name == "prometheus"]

        def stop() -> None:
            for found in child():
                self.children.stop(found)
                self.children.children.remove(found)

        def start() -> None:
            command = render.prometheus_command(binary, self.s, files, port)
            self.children.start("prometheus", command)

        def write(config: dict[str, Any]) -> None:
            write_atomically(files.prometheus_config, yaml.safe_dump(config, sort_keys=False))

        return OutageDriver(
            outage,
            self.s.speed,
            config=yaml.safe_load(files.prometheus_config.read_text()),
            write_config=write,
            prometheus_pid=lambda: next((c.process.pid for c in child() if c.alive()), None),
            stop_prometheus=stop,
            start_prometheus=start,
            say=self.say,
        )

    def _outage_tick(self, t: float) -> None:
        if self.outage is not None:
            self.outage.tick(t)

    def _progress_line(self, t: float, sample: Observation) -> str:
        for line in self._load_progress.read():
            with contextlib.suppress(ValueError):
                self._last_load = json.loads(line)
        last = self._last_load
        p95 = last.get("p95")
        cpu = sample.avg_cpu
        with contextlib.suppress(DecisionLogError):
            decisions = read_decision_log(self._scaler_lines.read())
            if decisions:
                self._last_decision = decisions[-1]
        latest = self._last_decision
        last_decision = f"{action_label(latest.action)} {latest.reason}" if latest else "—"
        return (
            f"t={t:5.0f}s  offered {last.get('offered_rps', 0):5.1f} rps  "
            f"p95 {'—' if p95 is None else f'{p95 * 1000:5.0f} ms'}  "
            f"cpu {'—' if cpu is None else f'{cpu:5.1f} %'}  "
            f"pool {sample.pool_size} (serving {sample.supply})  "
            f"last decision: {last_decision}"
        )

    def report(self, results: list[RequestResult]) -> RunReport:
        s, t = self.s, self.s.timings
        samples = samples_from(
            self.observations,
            results,
            offered_at=s.load_profile().rate_at,
            demand_for=lambda rps: oracle_demand(
                rps, s.work_ms, s.member_cores, minimum=s.min_size
            ),
        )
        config = {
            "profile": s.profile,
            "speed": s.speed,
            "duration_s": s.duration,
            "min_size": s.min_size,
            "max_size": s.max_size,
            "work_ms": s.work_ms,
            "member_cores": s.member_cores,
            "member_rps_at_80": s.member_rps_at_line,
            "peak_members": s.peak_members,
            "cpu_cap": self.plane.runtime.cpu_cap if self.plane else "unknown",
            "tick_seconds": t.tick,
            "scale_in_window_s": t.health_interval * (t.health_retries + 1) + t.drain,
            "timings": asdict(t),
            "reaction_floor": self.reaction_floor(),
            "monitoring_outage": asdict(s.monitoring_outage) if s.monitoring_outage else None,
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        return RunReport(
            config=config, samples=samples, decisions=self.decisions_from_log(), results=results
        )

    def reaction_floor(self) -> dict[str, float]:
        """The least time the configured timers allow from a load step to new capacity."""
        rules = self.rules or load_rules(self.s.provisioning)
        route = self.route or load_webhook_route(self.s.provisioning)
        return render.reaction_floor(self.s.timings, rules, route)


def run_lab(settings: LabSettings) -> tuple[RunReport, dict[str, Path]]:
    """Run, report, stop everything. Failures come out as LabError, with nothing left running.

    A run that failed before starting any child (a held lab lock, a port taken) also removes
    the output folder it created; once a child ran, its logs are kept for the message to name.
    """
    created_out = not settings.out.exists()
    lab = LabRun(settings)
    try:
        with lab:
            lab.start()
            results = lab.run_load()
            report = lab.report(results)
            paths = report.write(settings.out)
    except BaseException as exc:
        if created_out and lab.children.started == 0:
            shutil.rmtree(settings.out, ignore_errors=True)
        if isinstance(exc, LabBusyError | ChildExited | ProvisioningError | TimeoutError | OSError):
            raise LabError(str(exc)) from exc
        raise
    return report, paths
