"""Lab runs for the benchmark: one measured run with what the suite observes and does.

`BenchHooks` (hooks on the measured run, measure/loop.py) samples, once per lab second after
the run's own sample: member records (first
seen, running, serving behind the NLB), the RSS of every long-running process, optionally the
members' drain state (from their admin API), and scheduled faults (API errors, a failed evict
operation, a member kill, component restarts, Grafana signals that must never scale). For the
course scenario it polls the API every 10 production seconds from the load's start, as the
course's grader does. After the load it reads the scaler's decision log (exo-scaler's
`DecisionRecord`s) and the zone's operations, so decisions are counted exactly.

One concept, a benchmark lab run: the hooks, the faults they inject and the `LabOutcome` they
leave, kept together because each fault and observation reads the same stack and clock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from exo_client import NO_RETRY, ClientSettings, ExoApiError, ExoClient
from exo_scaler import DecisionRecord
from exo_zone import FaultPlan, OperationOutcome, OutcomeFault

from ..load.profiles import LoadProfile
from ..measure import MeasuredRun, RunClock, RunHooks
from ..report.run_report import Observation, RunReport
from ..stack.lab_probe import LabProbe
from ..stack.lab_stack import LabStack
from ..stack.run import lab_hooks
from ..stack.settings import LabSettings
from .analysis import COURSE_POLL_EVERY, COURSE_WINDOW, Poll

log = logging.getLogger("exo_lab.bench")

EVICT = "evict-instance-pool-members"
SCALING_COMMANDS = ("scale-instance-pool", EVICT)
RESTARTABLE = ("exo-sd", "exo-scaler", "prometheus", "alertmanager")


def load_begins_at(profile: LoadProfile) -> float:
    """Seconds into `profile` at which load is first offered (the course's workers start)."""
    begins = 0.0
    for segment in profile.segments:
        if segment.start_rps > 0 or segment.end_rps > 0:
            return begins
        begins += segment.duration
    return begins


@dataclass
class FaultEvent:
    at: float  # lab seconds since the load started
    kind: str  # api-faults | api-faults-off | evict-failure | kill-member | restart | signals
    target: str = ""  # the child to restart
    #: api-faults: a FaultPlan's JSON; signals: {"payloads": [{"name", "path", "body"}]}
    plan: dict[str, Any] = field(default_factory=dict)
    done_at: float | None = None
    ready_at: float | None = None  # restart: the component answers again
    detail: str = ""
    #: signals: the scaler's answer to each payload
    answers: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "kind": self.kind,
            "target": self.target,
            "plan": self.plan,
            "done_at": self.done_at,
            "ready_at": self.ready_at,
            "detail": self.detail,
            "answers": self.answers,
        }


@dataclass
class MemberTrack:
    instance_id: str
    address: str
    seen_at: float
    running_at: float | None = None
    serving_at: float | None = None


class BenchHooks(RunHooks):
    def __init__(
        self,
        stack: LabStack,
        events: list[FaultEvent] | None = None,
        *,
        rss_every: float = 5.0,
        watch_alerts: bool = False,
        watch_drains: bool = False,
        course_polls: bool = False,
    ) -> None:
        self.stack = stack
        self.s = stack.s
        self.events = sorted(events or [], key=lambda e: e.at)
        self.rss_every = rss_every
        self.watch_alerts = watch_alerts
        self.watch_drains = watch_drains
        self.course_polls = course_polls
        self.clock: RunClock | None = None
        #: (lab t, {member id: draining}) for the pool's running members, when watched
        self.drain_samples: list[tuple[float, dict[str, bool]]] = []
        #: the grader's polls (production seconds since the load began) and their lateness
        self.polls: list[Poll] = []
        self.poll_lateness: list[float] = []
        self._poller: threading.Thread | None = None
        self._stop_polls = threading.Event()
        self.members: dict[str, MemberTrack] = {}
        self.rss_mib: dict[str, dict[str, float]] = {}  # name -> {max, last, count}
        self.alert_active_at: dict[str, float] = {}  # state:action -> wall time
        self._next_rss = 0.0
        self._threads: list[threading.Thread] = []

    # -- the run's hooks ----------------------------------------------------------------------

    def started(self, clock: RunClock) -> None:
        self.clock = clock
        if self.course_polls:
            begins = load_begins_at(self.s.load_profile())
            self._poller = threading.Thread(
                target=self._poll_course, args=(clock.mono + begins,), daemon=True
            )
            self._poller.start()

    def sampled(self, t: float, observation: Observation) -> None:
        self._track_members(t)
        if self.watch_drains:
            self._sample_drains(t)
        if t >= self._next_rss:
            self._next_rss = t + self.rss_every
            self._sample_rss()
        if self.watch_alerts:
            self._poll_alerts()
        for event in self.events:
            if event.done_at is None and t >= event.at:
                self._fire(event, t)

    def finished(self) -> None:
        self._stop_polls.set()
        if self._poller is not None:
            self._poller.join(timeout=15)
        for thread in self._threads:
            thread.join(timeout=65)

    def _track_members(self, t: float) -> None:
        zone = self.stack.zone
        assert zone is not None
        states = {i.id: (i.address, i.state) for i in zone.instance_snapshots()}
        serving = self.stack.serving()
        for instance_id, (address, state) in states.items():
            track = self.members.get(instance_id)
            if track is None:
                track = self.members[instance_id] = MemberTrack(instance_id, address, t)
            if track.running_at is None and state == "running":
                track.running_at = t
            if track.serving_at is None and serving.get(address):
                track.serving_at = t

    def _sample_drains(self, t: float) -> None:
        """Each running member's drain state, from its own admin API (the data plane)."""
        zone, plane = self.stack.zone, self.stack.plane
        assert zone is not None and plane is not None
        running = [i.id for i in zone.members(self.stack.pool_id) if i.state == "running"]
        runtime = plane.runtime
        states: dict[str, bool] = {}
        for instance_id in running:
            try:
                body = httpx.get(
                    f"{runtime.admin_url(instance_id)}/admin/status",
                    headers={"Authorization": f"Bearer {runtime.admin_token}"},
                    timeout=0.5,
                ).json()
            except (httpx.HTTPError, ValueError, KeyError):
                continue  # not answering (booting, killed): no drain state to read
            states[instance_id] = bool(body.get("draining"))
        self.drain_samples.append((t, states))

    def _poll_course(self, begins: float) -> None:
        """The course grader: list the pool's members through the API every 10 production
        seconds from the load's start, a few polls past the 300 s window. Bounded; stops with
        the lab."""
        assert self.stack.local_zone is not None
        client = ExoClient(ClientSettings.from_env(self.stack.local_zone.env), retry=NO_RETRY)
        every = self.s.lab(COURSE_POLL_EVERY)
        try:
            for k in range(int(COURSE_WINDOW // COURSE_POLL_EVERY) + 4):
                due = begins + k * every
                if self._stop_polls.wait(max(0.0, due - time.monotonic())):
                    return
                self.poll_lateness.append((time.monotonic() - due) * self.s.speed)
                t = k * COURSE_POLL_EVERY
                try:
                    members = client.list_members(self.stack.pool_id)
                except ExoApiError as exc:
                    self.polls.append(Poll(t, None, error=f"{type(exc).__name__}: {exc}"[:80]))
                    continue
                running = sum(1 for m in members if m.is_running)
                self.polls.append(Poll(t, running, len(members)))
        finally:
            client.close()

    def _poll_alerts(self) -> None:
        try:
            alerts = httpx.get(f"{self.stack.prometheus_url}/api/v1/alerts", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return
        for alert in alerts.get("data", {}).get("alerts", []):
            if alert.get("labels", {}).get("trigger"):
                continue  # the CPU rules' marks, beside the CPU rule's reaction floor
            action = alert.get("labels", {}).get("action", "")
            key = f"{alert.get('state')}:{action}"
            if key not in self.alert_active_at and alert.get("activeAt"):
                self.alert_active_at[key] = _parse_rfc3339(alert["activeAt"])

    # -- RSS ----------------------------------------------------------------------------------

    def _sample_rss(self) -> None:
        by_pid = {c.process.pid: c.name for c in self.stack.children.children if c.alive()}
        totals: dict[str, float] = {}
        me = psutil.Process()
        with contextlib.suppress(psutil.Error):
            totals["exo-lab (zone, NLB, sampler)"] = me.memory_info().rss
        members = 0
        for child in me.children():
            name = by_pid.get(child.pid)
            try:
                tree = [child, *child.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in tree)
                if name is None and _is_load_generator(child):
                    name = "load"  # the measured run's own child
            except psutil.Error:
                continue
            if name is None:
                members += 1
                name = "members (all)"
            totals[name] = totals.get(name, 0.0) + rss
        if members:
            totals["members (each, mean)"] = totals["members (all)"] / members
        for name, total in totals.items():
            entry = self.rss_mib.setdefault(name, {"max": 0.0, "last": 0.0, "samples": 0.0})
            mib = total / 2**20
            entry["max"] = max(entry["max"], round(mib, 1))
            entry["last"] = round(mib, 1)
            entry["samples"] += 1

    # -- faults -------------------------------------------------------------------------------

    def _fire(self, event: FaultEvent, t: float) -> None:
        event.done_at = t
        try:
            if event.kind == "api-faults":
                assert self.stack.zone_api is not None
                self.stack.zone_api.faults = FaultPlan.from_json(event.plan)
                event.detail = json.dumps(event.plan)
            elif event.kind == "api-faults-off":
                api = self.stack.zone_api
                assert api is not None
                event.detail = f"{api.faults.injected} faults injected"
                # An armed evict failure that no evict has met yet stays armed.
                api.faults = FaultPlan(outcome=api.faults.outcome)
            elif event.kind == "evict-failure":
                assert self.stack.zone_api is not None
                # Added to the plan in force (API errors may be on): the next evict operation
                # is accepted, then ends `failure` — the drained member must be resumed.
                self.stack.zone_api.faults.outcome = OutcomeFault(
                    OperationOutcome("failure", "unavailable"), commands=frozenset({EVICT})
                )
                event.detail = "the next evict operation ends in failure (unavailable)"
            elif event.kind == "signals":
                event.detail = self._send_signals(event)
            elif event.kind == "kill-member":
                event.detail = self._kill_a_member()
            elif event.kind == "restart":
                self._restart(event)
            else:
                event.detail = f"unknown fault kind {event.kind}"
        except Exception as exc:
            event.detail = f"failed: {type(exc).__name__}: {exc}"
            log.warning("fault %s %s failed: %s", event.kind, event.target, exc)
        self.stack.say(f"fault at t={t:.0f}s: {event.kind} {event.target} {event.detail}".rstrip())

    def _send_signals(self, event: FaultEvent) -> str:
        """Post Grafana payloads that must never scale (NoData, Error, state reason, the
        contact-point test) to the scaler, with its token, as Grafana would."""
        headers = {"Authorization": f"Bearer {self.stack.scaler_token}"}
        for payload in event.plan.get("payloads", []):
            answer: dict[str, Any] = {"name": payload["name"], "path": payload["path"]}
            try:
                response = httpx.post(
                    f"{self.stack.scaler_url}{payload['path']}",
                    json=payload["body"],
                    headers=headers,
                    timeout=5,
                )
                answer["status"] = response.status_code
                with contextlib.suppress(ValueError):
                    body = response.json()
                    answer["recorded"] = body.get("recorded", [])
                    answer["ignored"] = body.get("ignored", [])
            except httpx.HTTPError as exc:
                answer["error"] = f"{type(exc).__name__}: {exc}"
            event.answers.append(answer)
        statuses = ", ".join(f"{a['name']} {a['path']} → {a.get('status', 'error')}"
                             for a in event.answers)  # fmt: skip
        return f"posted {len(event.answers)} Grafana signals ({statuses})"

    def _kill_a_member(self) -> str:
        zone = self.stack.zone
        assert zone is not None
        running = [i for i in zone.members(self.stack.pool_id) if i.state == "running"]
        if not running:
            return "no running member to kill"
        victim = running[0]  # the oldest: it carries load since the start
        zone.kill_member(victim.id)
        return f"killed {victim.name} ({victim.address})"

    def _restart(self, event: FaultEvent) -> None:
        children = self.stack.children
        old = next((c for c in children.children if c.name == event.target and c.alive()), None)
        if old is None:
            event.detail = "not running"
            return
        args = old.process.args
        argv = [str(a) for a in args] if isinstance(args, list | tuple) else [str(args)]
        if argv and argv[0].endswith("setpriv"):
            argv = argv[argv.index("--") + 1 :]
        # Out of the list first: the probe's liveness check must not see the stopped child.
        children.children.remove(old)
        stopped = time.monotonic()
        children.stop(old)
        env = self.stack.service_env.get(event.target)  # exo-sd, exo-scaler: each its own key
        children.start(event.target, argv, env=env)
        event.detail = f"stopped in {time.monotonic() - stopped:.2f}s and started again"
        ready = self._readiness(event.target, argv)
        if ready is not None:
            thread = threading.Thread(target=self._await_ready, args=(event, ready), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _readiness(self, name: str, argv: list[str]) -> Callable[[], bool] | None:
        urls = {
            "exo-scaler": f"{self.stack.scaler_url}/healthz",
            "prometheus": f"{self.stack.prometheus_url}/-/ready",
        }
        if name == "exo-sd" and "--metrics-port" in argv:
            urls[name] = f"http://127.0.0.1:{argv[argv.index('--metrics-port') + 1]}/metrics"
        url = urls.get(name)
        if url is None:
            return None
        return lambda: httpx.get(url, timeout=1).is_success

    def _await_ready(self, event: FaultEvent, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if ready():
                    assert self.clock is not None
                    event.ready_at = self.clock.since()
                    return
            time.sleep(0.05)

    # -- after the load ---------------------------------------------------------------------

    def failed_evicts(self) -> int:
        """Evict operations the zone ended in failure (the injected ones)."""
        zone = self.stack.zone
        assert zone is not None
        return sum(
            1 for op in zone.operation_snapshots() if op.command == EVICT and op.state == "failure"
        )

    def lab_time(self, wall: float) -> float:
        assert self.clock is not None
        return wall - self.clock.wall

    def operation_times(self) -> list[float]:
        """Lab time each scaling operation was created at (the zone's own clock)."""
        zone = self.stack.zone
        assert zone is not None and self.clock is not None
        return sorted(
            op.started_at - self.clock.mono
            for op in zone.operation_snapshots()
            if op.command in SCALING_COMMANDS
        )

    def alert_ranges(self, action: str) -> dict[str, float | None]:
        """First lab time the CPU rule with `action` was pending and firing after the load
        began, from Prometheus' ALERTS series (resolution: one rule evaluation). The shedding
        rule (labelled `trigger`) is left out: the reaction floor beside these marks is the CPU
        rule's, and a demand-policy decision it triggered comes before them."""
        assert self.clock is not None
        step = max(0.05, self.s.lab(15) / 2)
        found: dict[str, float | None] = {"pending": None, "firing": None}
        try:
            body = httpx.get(
                f"{self.stack.prometheus_url}/api/v1/query_range",
                params={
                    "query": f'ALERTS{{action="{action}",trigger=""}}',
                    "start": f"{self.clock.wall:.3f}",
                    "end": f"{time.time():.3f}",
                    "step": f"{step:.3f}",
                },
                timeout=10,
            ).json()
        except (httpx.HTTPError, ValueError):
            return found
        for series in body.get("data", {}).get("result", []):
            state = series["metric"].get("alertstate")
            if state in found and series["values"]:
                first = self.lab_time(float(series["values"][0][0]))
                current = found[state]
                found[state] = first if current is None else min(current, first)
        return found


@dataclass
class LabOutcome:
    """One finished run: its report and the raw material the suite's tables need."""

    name: str
    settings: LabSettings
    report: RunReport
    figures: dict[str, Any]
    decisions_logged: list[DecisionRecord]  # wall-clock times, as logged
    operation_times: list[float]
    members: list[MemberTrack]
    events: list[FaultEvent]
    rss_mib: dict[str, dict[str, float]]
    reaction_floor: dict[str, float]
    alert_marks: dict[str, float | None]
    alert_active_at: dict[str, float]
    wall_seconds: float
    load_start_wall: float
    paths: dict[str, Path] = field(default_factory=dict)
    drain_samples: list[tuple[float, dict[str, bool]]] = field(default_factory=list)
    polls: list[Poll] = field(default_factory=list)
    poll_lateness: list[float] = field(default_factory=list)  # production seconds
    failed_evicts: int = 0
    #: the scaler's non-decision log lines by event (drain, resume, operation, ...)
    scaler_events: dict[str, int] = field(default_factory=dict)


def run_bench_lab(
    name: str,
    settings: LabSettings,
    events: list[FaultEvent] | None = None,
    *,
    watch_alerts: bool = False,
    watch_drains: bool = False,
    course_polls: bool = False,
    settle: bool = True,
    window: float | None = None,
) -> LabOutcome:
    started = time.monotonic()
    with LabStack(settings) as stack:
        stack.start()
        bench = BenchHooks(
            stack,
            events,
            watch_alerts=watch_alerts,
            watch_drains=watch_drains,
            course_polls=course_polls,
        )
        probe = LabProbe(stack)
        run = MeasuredRun(probe, [*lab_hooks(probe), bench], settle=settle, window=window)
        report = run.run()
        assert run.clock is not None
        alert_marks = bench.alert_ranges("scale_up")
        figures = report.figures()
        outcome = LabOutcome(
            name=name,
            settings=settings,
            report=report,
            figures=figures,
            decisions_logged=stack.logged_decisions(),
            operation_times=bench.operation_times(),
            members=sorted(bench.members.values(), key=lambda m: m.seen_at),
            events=bench.events,
            rss_mib=bench.rss_mib,
            reaction_floor=stack.reaction_floor(),
            alert_marks=alert_marks,
            alert_active_at={k: bench.lab_time(v) for k, v in bench.alert_active_at.items()},
            wall_seconds=0.0,
            load_start_wall=run.clock.wall,
            drain_samples=bench.drain_samples,
            polls=list(bench.polls),
            poll_lateness=list(bench.poll_lateness),
            failed_evicts=bench.failed_evicts(),
            scaler_events=scaler_events(stack.scaler_log()),
        )
    outcome.paths = report.write(settings.out)
    outcome.wall_seconds = time.monotonic() - started
    return outcome


def scaler_events(path: Path) -> dict[str, int]:
    """How many lines of each `event` the scaler logged (exo-scaler's drain and resume lines
    show what it did about a failed evict; the naive scaler logs decisions only)."""
    counts: dict[str, int] = {}
    if not path.exists():
        return counts
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue  # stderr's log lines share the file
        with contextlib.suppress(ValueError, AttributeError):
            event = str(json.loads(line).get("event", ""))
            if event:
                counts[event] = counts.get(event, 0) + 1
    return counts


def _is_load_generator(process: psutil.Process) -> bool:
    command = process.cmdline()
    return "exo_lab" in command and "load" in command


def _parse_rfc3339(text: str) -> float:
    from datetime import datetime

    # Prometheus gives nanoseconds; Python takes microseconds.
    head, _, rest = text.partition(".")
    if rest:
        digits = "".join(ch for ch in rest if ch.isdigit())[:6]
        zone = rest[len("".join(ch for ch in rest if ch.isdigit())) :]
        text = f"{head}.{digits}{zone}"
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
