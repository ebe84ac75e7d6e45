"""Real lab members: one slow-web process per instance, CPU-capped, with a node exporter.

`ProcessRuntime` implements the zone's MemberRuntime. Each member runs slow-web on its own
loopback address (`<address>:8080`, admin API on `<address>:8081`) inside its own cgroup with
a cap of vCPUs × cpu_per_vcpu host cores, and gets a node_exporter-compatible endpoint on
`<address>:9100` served from the lab's event loop. Members are session leaders, so a process
group kill reaches their worker processes too.

Two-stage lifecycle (lifecycle.py has the stages and their sources): the zone reports a member
`running` from its boot timer (`running_at_boot`: the VM's state, as on Exoscale); the member
then boots its guest, provisions (packages, then Python wheels) and only then starts slow-web.
The provisioning burns CPU for real inside the member's cgroup, and the exporter, up from the
end of the packages stage, reads that cgroup like it always does: its first scrapes show a
busy member, as a real node_exporter reading /proc/stat would. Real burn rather than numbers
made up in the exporter, so the cgroup cap, the exporter's counters and the host's load all
tell the same story and nothing in the exporter differs between a booting and a serving
member.

State left by a lab that died without cleaning up (SIGKILL) is found through the lab prefix:
member pidfiles under `<runtime_dir>/<prefix>/members/` and cgroups named `<prefix>/<member>`.
A new runtime with the same prefix kills those processes and removes those cgroups first; a
lock file makes sure that never happens to a lab that is still alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

from ..files import write_atomically
from .cgroups import UNCAPPED, CpuUsage, MemberCgroup, V1Driver, V2Driver, detect_driver
from .lifecycle import BURN_SCRIPT, MemberLifecycle, StagePlan, compensated
from .lock import LabLock
from .loop_thread import LoopThread
from .node_exporter import CpuAccount, start_exporter
from .probes import http_check
from .process_groups import create_time, kill_groups, signal_group

log = logging.getLogger(__name__)

# Joins every cgroup given before `--`, then becomes the member: no window in which the
# member (or a worker it forks) runs outside its cap.
_JOIN_CGROUPS = (
    'while [ "$1" != "--" ]; do echo $$ > "$1" || exit 97; shift; done; shift; exec "$@"'
)


def default_runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"exo-lab-{os.getuid()}"


def lab_prefix_for(member_network: str) -> str:
    """One prefix per member network: two zones cannot share a network anyway."""
    net = ipaddress.ip_network(member_network)
    return "exo-lab-" + str(net.network_address).replace(".", "-") + f"-{net.prefixlen}"


@dataclass(frozen=True)
class MemberSettings:
    lab_prefix: str
    cpu_per_vcpu: float = 0.25
    workers_per_vcpu: int = 1
    work_ms: int = 100
    web_port: int = 8080
    admin_port: int = 8081
    exporter_port: int = 9100
    #: SIGTERM → SIGKILL bound when stopping a member; slow-web drains for a little less.
    stop_timeout: float = 10.0
    runtime_dir: Path = field(default_factory=default_runtime_dir)
    cgroup_root: Path = Path("/sys/fs/cgroup")
    use_cgroups: bool = True
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    slow_web_command: tuple[str, ...] = (sys.executable, "-m", "slow_web.cli")
    ready_poll_interval: float = 0.05
    #: stages after `running`, lab seconds. Instant by default: this object is in lab seconds
    #: and knows no speed; `exo-lab run` passes the realistic model divided by --speed.
    lifecycle: MemberLifecycle = field(default_factory=MemberLifecycle.instant)
    #: the lab's --speed, to pay slow-web's real start back from the stages (lifecycle.
    #: compensated) after the median start measured on this runtime's members; None: not
    #: sped up, the real start counts as it is
    compensate_start_at_speed: float | None = None

    def __post_init__(self) -> None:
        if not self.lab_prefix or "/" in self.lab_prefix or self.lab_prefix.startswith("."):
            raise ValueError(f"invalid lab prefix {self.lab_prefix!r}")
        if not 0 < self.cpu_per_vcpu <= 64:
            raise ValueError(f"cpu_per_vcpu must be within (0, 64], got {self.cpu_per_vcpu}")
        if self.workers_per_vcpu < 1:
            raise ValueError("workers_per_vcpu must be >= 1")
        if self.stop_timeout <= 0:
            raise ValueError("stop_timeout must be > 0")

    @property
    def state_dir(self) -> Path:
        return self.runtime_dir / self.lab_prefix


@dataclass
class Member:
    instance_id: str
    name: str
    address: str
    vcpus: int
    cgroup: MemberCgroup | None
    account: CpuAccount
    usage: MemberUsage | None
    pidfile: Path
    log_file: IO[bytes]
    plan: StagePlan
    #: slow-web, once provisioning is over
    process: subprocess.Popen[bytes] | None = None
    #: the provisioning's CPU burn, while it lasts
    burner: subprocess.Popen[bytes] | None = None
    exporter: asyncio.Server | None = None
    lifecycle: Future[None] | None = None
    ready: bool = False
    killed: bool = False
    #: set (under `lock`) once stopping began: no process starts after that
    stopping: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: stage -> time.monotonic() when it was reached (see ProcessRuntime.timeline)
    timeline: dict[str, float] = field(default_factory=dict)

    def reached(self, stage: str) -> None:
        self.timeline[stage] = time.monotonic()

    @property
    def alive(self) -> bool:
        """False once the member crashed or was killed.

        slow-web exits 0 after an admin drain: the app stopped, but on Exoscale the VM would
        still be a pool member (failing its health check) until evicted, so that is alive.
        A member still provisioning is alive: its VM runs.
        """
        if self.killed:
            return False
        code = self.process.poll() if self.process is not None else None
        return code is None or code == 0

    @property
    def serving(self) -> bool:
        return not self.killed and self.process is not None and self.process.poll() is None


class ProcessTreeUsage:
    """CPU used by a process and its descendants (uncapped mode: no cgroup to ask)."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._last = CpuUsage(0.0, 0.0)

    def __call__(self) -> CpuUsage:
        try:
            root = psutil.Process(self._pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return self._last
        user = system = 0.0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                user += times.user + times.children_user
                system += times.system + times.children_system
        # Workers that exit take their time with them; never report less than before.
        self._last = CpuUsage(max(user, self._last.user), max(system, self._last.system))
        return self._last


class MemberUsage:
    """Uncapped mode: CPU of every process a member ran (provisioning, then slow-web)."""

    def __init__(self) -> None:
        self._trees: list[ProcessTreeUsage] = []
        self._lock = threading.Lock()

    def add(self, pid: int) -> None:
        with self._lock:
            self._trees.append(ProcessTreeUsage(pid))

    def __call__(self) -> CpuUsage:
        with self._lock:
            # A finished process answers its last reading: its time stays counted.
            readings = [tree() for tree in self._trees]
        return CpuUsage(sum(r.user for r in readings), sum(r.system for r in readings))


class ProcessRuntime:
    """MemberRuntime whose members are real slow-web processes (see module docstring)."""

    #: the zone reports `running` from its boot timer (the VM), not when the app answers
    running_at_boot = True

    def __init__(self, settings: MemberSettings, loop: LoopThread) -> None:
        self.settings = settings
        self.loop = loop
        self._members: dict[str, Member] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._rng = random.Random(settings.lifecycle.seed)  # noqa: S311 (jitter, not secrets)
        #: members stopped lately, for `timeline` (bounded)
        self._gone: dict[str, Member] = {}
        #: slow-web's real start on each member (app started → /health answers), lab seconds
        self.app_starts: list[float] = []
        #: per member started: lab seconds of real start no stage could pay back (compensated)
        self.uncompensated: list[float] = []
        # Locked before anything is created: a lab refused here leaves no trace.
        self._lab_lock = LabLock(settings.runtime_dir, settings.lab_prefix)
        self._lab_lock.acquire()
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        (settings.state_dir / "members").mkdir(exist_ok=True)
        (settings.state_dir / "logs").mkdir(exist_ok=True)
        self.driver: V1Driver | V2Driver | None = (
            detect_driver(settings.lab_prefix, settings.cgroup_root)
            if settings.use_cgroups
            else None
        )
        self.cleaned_up = self._sweep_leftovers()
        if self.driver is None:
            log.warning(
                "NO CPU CAP: no writable cgroup cpu controller under %s%s; members run "
                "uncapped, so one member can use every host core and CPU percentages overstate "
                "capacity (CPU is measured from each member's process tree)",
                settings.cgroup_root,
                "" if settings.use_cgroups else " (cgroups disabled)",
            )
        else:
            log.info(
                "members capped with %s at %g host cores per vCPU",
                self.cpu_cap,
                settings.cpu_per_vcpu,
            )

    @property
    def cpu_cap(self) -> str:
        return self.driver.mode if self.driver is not None else UNCAPPED

    @property
    def admin_token(self) -> str:
        return self.settings.admin_token

    # -- lab prefix ownership ---------------------------------------------------------------

    def _sweep_leftovers(self) -> list[str]:
        """Kill members and remove cgroups a dead lab with this prefix left behind."""
        leftovers: dict[int, float] = {}
        names: list[str] = []
        for pidfile in (self.settings.state_dir / "members").glob("*.json"):
            try:
                record = json.loads(pidfile.read_text())
                leftovers[int(record["pid"])] = float(record["create_time"])
                names.append(str(record.get("name", pidfile.stem)))
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("ignoring unreadable pidfile %s", pidfile)
            pidfile.unlink(missing_ok=True)
        if leftovers:
            kill_groups(leftovers)
        swept = self.driver.sweep() if self.driver is not None else []
        if names or swept:
            log.warning(
                "cleaned up after a lab that did not stop: killed members %s, removed cgroups %s",
                sorted(names),
                swept,
            )
        return sorted(set(names) | set(swept))

    # -- MemberRuntime ----------------------------------------------------------------------

    def start(self, instance_id: str, address: str, vcpus: int, name: str | None = None) -> None:
        """The VM is up (the zone now says `running`): boot and provision it in the background.

        Returns at once (the zone calls it under its lock); the stages run on the lab's loop.
        """
        if self._closed:
            raise RuntimeError("runtime is closed")
        settings = self.settings
        name = name or instance_id
        cores = vcpus * settings.cpu_per_vcpu
        cgroup = self.driver.create(instance_id, cores) if self.driver is not None else None
        usage: MemberUsage | None = None
        read_usage: Callable[[], CpuUsage | None]
        if cgroup is not None:
            read_usage = cgroup.usage
        else:
            read_usage = usage = MemberUsage()
        with self._lock:
            plan = settings.lifecycle.draw(self._rng)
            if settings.compensate_start_at_speed is not None:
                starts = self.app_starts
                plan, short = compensated(
                    plan, statistics.median(starts) if starts else 0.0,
                    settings.compensate_start_at_speed,
                )  # fmt: skip
                self.uncompensated.append(short)
        member = Member(
            instance_id=instance_id,
            name=name,
            address=address,
            vcpus=vcpus,
            cgroup=cgroup,
            # Created at VM boot: the counters count from boot, like /proc/stat does, so the
            # provisioning's CPU is in the exporter's first answer.
            account=CpuAccount(vcpus, settings.cpu_per_vcpu, read_usage),
            usage=usage,
            pidfile=settings.state_dir / "members" / f"{instance_id}.json",
            log_file=(settings.state_dir / "logs" / f"{name}.log").open("ab"),
            plan=plan,
        )
        member.reached("vm_running")
        with self._lock:
            self._members[instance_id] = member
        member.lifecycle = self.loop.submit(self._live(member))
        log.info(
            "member %s VM running at %s (%s %g cores); guest boot %.1fs, packages %.1fs, "
            "Python %.1fs", name, address, self.cpu_cap, cores,
            plan.guest_boot, plan.packages, plan.python,
        )  # fmt: skip

    def is_ready(self, instance_id: str) -> bool:
        member = self._members.get(instance_id)
        return member is not None and member.ready and member.serving

    def is_alive(self, instance_id: str) -> bool:
        member = self._members.get(instance_id)
        return member is not None and member.alive

    def kill(self, instance_id: str) -> None:
        """SIGKILL a member's whole process tree, as a crashed VM; the pool replaces it."""
        member = self._members.get(instance_id)
        if member is None:
            raise KeyError(instance_id)
        with member.lock:
            member.killed = True
            member.stopping = True
        if member.lifecycle is not None:
            member.lifecycle.cancel()
        for process in (member.burner, member.process):
            if process is not None:
                signal_group(process.pid, signal.SIGKILL)
        if member.cgroup is not None:
            for pid in member.cgroup.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        log.warning("member %s killed", member.name)

    def stop(self, instance_id: str) -> None:
        with self._lock:
            member = self._members.pop(instance_id, None)
            if member is not None:
                self._keep_gone(member)
        if member is None:
            return
        self._stop(member, shutdown=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            members = list(self._members.values())
            self._members.clear()
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(members)))) as pool:
            # Tear-down, not a modelled stop: no VM shutdown delay.
            list(pool.map(lambda m: self._stop(m, shutdown=False), members))
        if self.driver is not None:
            self.driver.close()
        with contextlib.suppress(OSError):
            for directory in ("members", ""):
                (self.settings.state_dir / directory).rmdir()
        self._lab_lock.release()

    # -- lab-side views, for the stack and tests --------------------------------------------

    def member_pids(self, instance_id: str) -> list[int]:
        member = self._members[instance_id]
        if member.cgroup is not None:
            return member.cgroup.pids()
        pids: list[int] = []
        for process in (member.burner, member.process):
            if process is None:
                continue
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(process.pid)
                pids += [root.pid, *(c.pid for c in root.children(recursive=True))]
        return sorted(pids)

    def cpu_usage(self, instance_id: str) -> CpuUsage | None:
        """Host CPU seconds the member used so far, provisioning included (cgroup or processes)."""
        member = self._members[instance_id]
        if member.cgroup is not None:
            return member.cgroup.usage()
        assert member.usage is not None
        return member.usage()

    def timeline(self, instance_id: str) -> dict[str, float]:
        """When the member reached each stage (time.monotonic()): vm_running, guest_up,
        exporter_up, app_started, healthy; stopping, app_stopped, gone. Kept after it is gone."""
        member = self._members.get(instance_id) or self._gone.get(instance_id)
        if member is None:
            raise KeyError(instance_id)
        return dict(member.timeline)

    def start_compensation(self) -> dict[str, float | int | None]:
        """What paying slow-web's real start back did (MemberSettings.compensate_start_at_speed):
        its median measured start, on how many members, and the most any member stayed late."""
        with self._lock:
            starts, short = list(self.app_starts), list(self.uncompensated)
        return {
            "speed": self.settings.compensate_start_at_speed,
            "app_start_lab_s": round(statistics.median(starts), 3) if starts else None,
            "members_measured": len(starts),
            "uncompensated_lab_s_max": round(max(short), 3) if short else None,
        }

    def plan(self, instance_id: str) -> StagePlan:
        """The durations drawn for this member's stages (lab seconds)."""
        member = self._members.get(instance_id) or self._gone.get(instance_id)
        if member is None:
            raise KeyError(instance_id)
        return member.plan

    def admin_url(self, instance_id: str) -> str:
        member = self._members[instance_id]
        return f"http://{member.address}:{self.settings.admin_port}"

    # -- internals --------------------------------------------------------------------------

    async def _live(self, member: Member) -> None:
        """Guest boot, packages (exporter up at their end), Python, then the app; stage order
        as cloud-init runs our user-data (lifecycle.py)."""
        plan = member.plan
        try:
            await asyncio.sleep(plan.guest_boot)
            member.reached("guest_up")
            provisioning = plan.packages + plan.python
            if provisioning > 0 and self.settings.lifecycle.provisioning_cpu > 0:
                await asyncio.to_thread(self._start_burner, member, provisioning)
            await asyncio.sleep(plan.packages)
            await self._start_exporter(member)
            await asyncio.sleep(plan.python)
            await asyncio.to_thread(self._end_burner, member)
            member.reached("provisioned")
            if not await asyncio.to_thread(self._start_app, member):
                return
            await self._await_ready(member)
        except asyncio.CancelledError:
            raise
        except Exception:
            # As a VM whose cloud-init failed: `running`, never healthy; the pool keeps it.
            log.exception("member %s: provisioning failed; it stays unhealthy", member.name)

    def _start_burner(self, member: Member, seconds: float) -> None:
        """The provisioning's CPU, burnt for real inside the member's cgroup (or, uncapped,
        duty-cycled to the share of a core the cap would allow)."""
        share = self.settings.lifecycle.provisioning_cpu * self.settings.cpu_per_vcpu
        command = [sys.executable, "-S", "-c", BURN_SCRIPT, f"{seconds:.3f}", f"{share:.4f}"]
        with member.lock:
            if member.stopping:
                return
            member.burner = self._spawn(member, command)
            if member.usage is not None:
                member.usage.add(member.burner.pid)

    def _end_burner(self, member: Member) -> None:
        burner = member.burner
        if burner is None:
            return
        if member.usage is not None:
            member.usage()  # a last reading while the process still exists
        signal_group(burner.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            burner.wait(5)

    async def _start_exporter(self, member: Member) -> None:
        settings = self.settings
        try:
            member.exporter = await start_exporter(
                member.address, settings.exporter_port, member.account
            )
            member.reached("exporter_up")
            log.info("member %s: node exporter up on %s:%d", member.name, member.address,
                     settings.exporter_port)  # fmt: skip
        except OSError as exc:
            log.error("member %s: node exporter cannot listen on %s: %s", member.name,
                      member.address, exc)  # fmt: skip

    def _start_app(self, member: Member) -> bool:
        """`systemctl enable --now slow-web`: the real process, in the member's cgroup."""
        settings = self.settings
        command = [
            *settings.slow_web_command,
            "serve",
            "--host", member.address,
            "--port", str(settings.web_port),
            "--admin-host", member.address,
            "--admin-port", str(settings.admin_port),
            "--workers", str(member.vcpus * settings.workers_per_vcpu),
            "--work-ms", str(settings.work_ms),
            "--instance-name", member.name,
            "--drain-timeout", f"{max(0.1, settings.stop_timeout - 1.0):g}",
        ]  # fmt: skip
        with member.lock:
            if member.stopping:
                return False
            try:
                process = member.process = self._spawn(member, command)
            except OSError:
                log.exception("member %s: slow-web did not start", member.name)
                return False
            if member.usage is not None:
                member.usage.add(process.pid)
            write_atomically(
                member.pidfile,
                json.dumps(
                    {
                        "pid": process.pid,
                        "create_time": create_time(process.pid),
                        "name": member.name,
                        "address": member.address,
                    }
                ),
            )
        member.reached("app_started")
        log.info("member %s: slow-web started, pid %d at %s:%d", member.name, process.pid,
                 member.address, settings.web_port)  # fmt: skip
        return True

    def _spawn(self, member: Member, command: list[str]) -> subprocess.Popen[bytes]:
        """A session leader inside the member's cgroup from its first instruction."""
        if member.cgroup is not None:
            command = ["/bin/sh", "-c", _JOIN_CGROUPS, "exo-lab-member",
                       *map(str, member.cgroup.procs_files), "--", *command]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLOW_WEB_")}
        env["SLOW_WEB_ADMIN_TOKEN"] = self.settings.admin_token
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=member.log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

    async def _await_ready(self, member: Member) -> None:
        while member.serving and not self._closed:
            if await http_check(member.address, self.settings.web_port, "/health", 1.0) is None:
                member.ready = True
                member.reached("healthy")
                with self._lock:
                    self.app_starts.append(
                        member.timeline["healthy"] - member.timeline["app_started"]
                    )
                log.info("member %s answers /health", member.name)
                return
            await asyncio.sleep(self.settings.ready_poll_interval)

    def _keep_gone(self, member: Member) -> None:
        """Keep a leaving member's timeline readable (bounded; call under `_lock`)."""
        self._gone[member.instance_id] = member
        while len(self._gone) > 256:
            self._gone.pop(next(iter(self._gone)))

    def _stop(self, member: Member, *, shutdown: bool) -> None:
        """SIGTERM drains slow-web; then (`shutdown`, a modelled stop of a VM that did not
        crash) the VM's shutdown delay passes before the member is gone."""
        member.reached("stopping")
        with member.lock:
            member.stopping = True
        if member.lifecycle is not None:
            member.lifecycle.cancel()
        self._end_burner(member)
        process = member.process
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
                try:
                    process.wait(self.settings.stop_timeout)
                except subprocess.TimeoutExpired:
                    log.warning("member %s did not stop within %gs: SIGKILL", member.name,
                                self.settings.stop_timeout)  # fmt: skip
            # Workers, or a process that ignored SIGTERM.
            signal_group(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
        member.reached("app_stopped")
        if member.exporter is not None and self.loop.running:
            with contextlib.suppress(Exception):
                self.loop.run(_close_server(member.exporter), timeout=5)
        if shutdown and not member.killed and member.plan.shutdown > 0:
            time.sleep(member.plan.shutdown)
        if member.cgroup is not None:
            member.cgroup.remove()
        member.pidfile.unlink(missing_ok=True)
        member.log_file.close()
        member.reached("gone")
        log.info("member %s stopped (exit %s)", member.name,
                 process.returncode if process is not None else "never started")  # fmt: skip


async def _close_server(server: asyncio.Server) -> None:
    server.close()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(server.wait_closed(), 2)
