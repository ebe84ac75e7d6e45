"""Real lab members: one slow-web process per instance, CPU-capped, with a node exporter.

`ProcessRuntime` implements the zone's MemberRuntime. Each member runs slow-web on its own
loopback address (`<address>:8080`, admin API on `<address>:8081`) inside its own cgroup with
a cap of vCPUs × cpu_per_vcpu host cores, and gets a node_exporter-compatible endpoint on
`<address>:9100` served from the lab's event loop. Members are session leaders, so a process
group kill reaches their worker processes too.

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
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

from ..files import write_atomically
from .cgroups import UNCAPPED, CpuUsage, MemberCgroup, V1Driver, V2Driver, detect_driver
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
    process: subprocess.Popen[bytes]
    cgroup: MemberCgroup | None
    account: CpuAccount
    pidfile: Path
    log_file: IO[bytes]
    exporter: asyncio.Server | None = None
    probe: Future[None] | None = None
    ready: bool = False
    killed: bool = False

    @property
    def alive(self) -> bool:
        """False once the member crashed or was killed.

        slow-web exits 0 after an admin drain: the app stopped, but on Exoscale the VM would
        still be a pool member (failing its health check) until evicted, so that is alive.
        """
        code = self.process.poll()
        return not self.killed and (code is None or code == 0)

    @property
    def serving(self) -> bool:
        return not self.killed and self.process.poll() is None


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


class ProcessRuntime:
    """MemberRuntime whose members are real slow-web processes (see module docstring)."""

    def __init__(self, settings: MemberSettings, loop: LoopThread) -> None:
        self.settings = settings
        self.loop = loop
        self._members: dict[str, Member] = {}
        self._lock = threading.Lock()
        self._closed = False
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
        if self._closed:
            raise RuntimeError("runtime is closed")
        settings = self.settings
        name = name or instance_id
        cores = vcpus * settings.cpu_per_vcpu
        cgroup = self.driver.create(instance_id, cores) if self.driver is not None else None
        command = [
            *settings.slow_web_command,
            "serve",
            "--host", address,
            "--port", str(settings.web_port),
            "--admin-host", address,
            "--admin-port", str(settings.admin_port),
            "--workers", str(vcpus * settings.workers_per_vcpu),
            "--work-ms", str(settings.work_ms),
            "--instance-name", name,
            "--drain-timeout", f"{max(0.1, settings.stop_timeout - 1.0):g}",
        ]  # fmt: skip
        if cgroup is not None:
            command = ["/bin/sh", "-c", _JOIN_CGROUPS, "exo-lab-member",
                       *map(str, cgroup.procs_files), "--", *command]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("SLOW_WEB_")}
        env["SLOW_WEB_ADMIN_TOKEN"] = settings.admin_token
        log_file = (settings.state_dir / "logs" / f"{name}.log").open("ab")
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        except OSError:
            log_file.close()
            if cgroup is not None:
                cgroup.remove()
            raise
        pidfile = settings.state_dir / "members" / f"{instance_id}.json"
        write_atomically(
            pidfile,
            json.dumps(
                {
                    "pid": process.pid,
                    "create_time": create_time(process.pid),
                    "name": name,
                    "address": address,
                }
            ),
        )
        read_usage = cgroup.usage if cgroup is not None else ProcessTreeUsage(process.pid)
        member = Member(
            instance_id=instance_id,
            name=name,
            address=address,
            vcpus=vcpus,
            process=process,
            cgroup=cgroup,
            account=CpuAccount(vcpus, settings.cpu_per_vcpu, read_usage),
            pidfile=pidfile,
            log_file=log_file,
        )
        try:
            member.exporter = self.loop.run(
                start_exporter(address, settings.exporter_port, member.account), timeout=10
            )
        except OSError as exc:
            log.error("member %s: node exporter cannot listen on %s: %s", name, address, exc)
        member.probe = self.loop.submit(self._await_ready(member))
        with self._lock:
            self._members[instance_id] = member
        log.info(
            "member %s started: pid %d at %s:%d, %s %g cores",
            name, process.pid, address, settings.web_port, self.cpu_cap, cores,
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
        member.killed = True
        signal_group(member.process.pid, signal.SIGKILL)
        if member.cgroup is not None:
            for pid in member.cgroup.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        log.warning("member %s killed (pid %d)", member.name, member.process.pid)

    def stop(self, instance_id: str) -> None:
        with self._lock:
            member = self._members.pop(instance_id, None)
        if member is None:
            return
        self._stop(member)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._lock:
            members = list(self._members.values())
            self._members.clear()
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(members)))) as pool:
            list(pool.map(self._stop, members))
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
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(member.process.pid)
            return sorted([root.pid, *(c.pid for c in root.children(recursive=True))])
        return []

    def cpu_usage(self, instance_id: str) -> CpuUsage | None:
        """Host CPU seconds the member used so far (cgroup or process tree)."""
        member = self._members[instance_id]
        if member.cgroup is not None:
            return member.cgroup.usage()
        return ProcessTreeUsage(member.process.pid)()

    def admin_url(self, instance_id: str) -> str:
        member = self._members[instance_id]
        return f"http://{member.address}:{self.settings.admin_port}"

    # -- internals --------------------------------------------------------------------------

    async def _await_ready(self, member: Member) -> None:
        while member.serving and not self._closed:
            if await http_check(member.address, self.settings.web_port, "/health", 1.0) is None:
                member.ready = True
                log.info("member %s answers /health", member.name)
                return
            await asyncio.sleep(self.settings.ready_poll_interval)

    def _stop(self, member: Member) -> None:
        process = member.process
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
        if member.cgroup is not None:
            member.cgroup.remove()
        if member.probe is not None:
            member.probe.cancel()
        if member.exporter is not None and self.loop.running:
            with contextlib.suppress(Exception):
                self.loop.run(_close_server(member.exporter), timeout=5)
        member.pidfile.unlink(missing_ok=True)
        member.log_file.close()
        log.info("member %s stopped (exit %s)", member.name, process.returncode)


async def _close_server(server: asyncio.Server) -> None:
    server.close()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(server.wait_closed(), 2)
