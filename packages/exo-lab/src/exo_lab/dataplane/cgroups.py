"""CPU caps and CPU accounting for lab members through Linux cgroups (v1 or v2).

Each lab owns one directory per controller, named with its lab prefix, and one child per
member: `<mount>/<prefix>/<member>`. A lab that was SIGKILLed leaves those directories (and
maybe processes) behind; `sweep()` kills what is left in them and removes them.

The CFS period is short (10 ms) on purpose: a member that used its quota is throttled until
the period ends, and a 100 ms default period would stall its /health answers for up to
100 ms × (1 − share). With 10 ms the worst stall is a few milliseconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

CFS_PERIOD_US = 10_000
MIN_QUOTA_US = 1_000

CGROUP_V1 = "cgroup-v1"
CGROUP_V2 = "cgroup-v2"
UNCAPPED = "uncapped"


@dataclass(frozen=True)
class CpuUsage:
    """Host CPU seconds a member used since it started."""

    user: float
    system: float

    @property
    def total(self) -> float:
        return self.user + self.system


class MemberCgroup(Protocol):
    @property
    def procs_files(self) -> list[Path]:
        """The `cgroup.procs` files a new process writes its pid into to join."""

    def usage(self) -> CpuUsage | None:
        """CPU used by every process that ever ran in this cgroup; None if unreadable."""

    def pids(self) -> list[int]: ...

    def remove(self) -> None:
        """Kill what still runs inside, then remove the directories."""


class CgroupDriver(Protocol):
    mode: str

    def create(self, member: str, cores: float) -> MemberCgroup: ...

    def sweep(self) -> list[str]:
        """Remove every member cgroup of this lab prefix; returns the names removed."""


def _read_pids(procs: Path) -> list[int]:
    try:
        return [int(line) for line in procs.read_text().split()]
    except (OSError, ValueError):
        return []


def _kill_and_remove(dirs: list[Path], procs: Path, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        pids = _read_pids(procs)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            log.error("processes %s survive SIGKILL in %s", pids, procs.parent)
            break
        time.sleep(0.02)
    for directory in dirs:
        # A cgroup directory only goes away once its last task has been reaped; retry a bit.
        for _ in range(100):
            try:
                directory.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)
        else:
            log.error("cannot remove cgroup %s", directory)


def _quota_us(cores: float) -> int:
    return max(MIN_QUOTA_US, round(cores * CFS_PERIOD_US))


# -- cgroup v1 ------------------------------------------------------------------------------


@dataclass
class V1MemberCgroup:
    cpu_dir: Path
    acct_dir: Path

    @property
    def procs_files(self) -> list[Path]:
        files = [self.cpu_dir / "cgroup.procs"]
        if self.acct_dir != self.cpu_dir:
            files.append(self.acct_dir / "cgroup.procs")
        return files

    def usage(self) -> CpuUsage | None:
        try:
            total_ns = int((self.acct_dir / "cpuacct.usage").read_text())
        except (OSError, ValueError):
            return None
        # usage_user + usage_sys falls short of usage (the split is sampled): the total is
        # exact, the split only gives the proportion.
        try:
            user_ns = int((self.acct_dir / "cpuacct.usage_user").read_text())
            system_ns = int((self.acct_dir / "cpuacct.usage_sys").read_text())
        except (OSError, ValueError):
            user_ns, system_ns = 1, 0
        user_share = user_ns / (user_ns + system_ns) if user_ns + system_ns > 0 else 1.0
        total = total_ns / 1e9
        return CpuUsage(user=total * user_share, system=total * (1.0 - user_share))

    def pids(self) -> list[int]:
        return sorted(set(_read_pids(self.cpu_dir / "cgroup.procs")))

    def remove(self) -> None:
        dirs = [self.cpu_dir] if self.acct_dir == self.cpu_dir else [self.cpu_dir, self.acct_dir]
        _kill_and_remove(dirs, self.cpu_dir / "cgroup.procs")


class V1Driver:
    mode = CGROUP_V1

    def __init__(self, cpu_mount: Path, acct_mount: Path, prefix: str) -> None:
        self.cpu_base = cpu_mount / prefix
        self.acct_base = acct_mount / prefix

    @classmethod
    def probe(cls, root: Path, prefix: str) -> V1Driver | None:
        cpu_mount = next(
            (root / n for n in ("cpu,cpuacct", "cpu", "cpuacct,cpu") if (root / n).is_dir()), None
        )
        if cpu_mount is None or not (cpu_mount / "cpu.cfs_quota_us").exists():
            return None
        acct_mount = cpu_mount if (cpu_mount / "cpuacct.usage").exists() else root / "cpuacct"
        if not (acct_mount / "cpuacct.usage").exists():
            return None
        driver = cls(cpu_mount, acct_mount, prefix)
        try:
            driver.cpu_base.mkdir(exist_ok=True)
            driver.acct_base.mkdir(exist_ok=True)
            # Writing the "no limit" value proves the controller files are writable.
            (driver.cpu_base / "cpu.cfs_quota_us").write_text("-1")
        except OSError as exc:
            log.info("cgroup v1 cpu controller not writable: %s", exc)
            return None
        return driver

    def create(self, member: str, cores: float) -> V1MemberCgroup:
        group = V1MemberCgroup(self.cpu_base / member, self.acct_base / member)
        group.cpu_dir.mkdir(exist_ok=True)
        group.acct_dir.mkdir(exist_ok=True)
        # Period first: the kernel checks quota against the current period.
        (group.cpu_dir / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
        (group.cpu_dir / "cpu.cfs_quota_us").write_text(str(_quota_us(cores)))
        return group

    def sweep(self) -> list[str]:
        names = sorted(
            {p.name for base in (self.cpu_base, self.acct_base) for p in _children(base)}
        )
        for name in names:
            V1MemberCgroup(self.cpu_base / name, self.acct_base / name).remove()
        return names

    def close(self) -> None:
        self.sweep()
        for base in (self.cpu_base, self.acct_base):
            with contextlib.suppress(OSError):
                base.rmdir()


# -- cgroup v2 ------------------------------------------------------------------------------


@dataclass
class V2MemberCgroup:
    directory: Path

    @property
    def procs_files(self) -> list[Path]:
        return [self.directory / "cgroup.procs"]

    def usage(self) -> CpuUsage | None:
        try:
            fields = dict(
                line.split(None, 1)
                for line in (self.directory / "cpu.stat").read_text().splitlines()
            )
            return CpuUsage(
                user=int(fields["user_usec"]) / 1e6, system=int(fields["system_usec"]) / 1e6
            )
        except (OSError, ValueError, KeyError):
            return None

    def pids(self) -> list[int]:
        return sorted(set(_read_pids(self.directory / "cgroup.procs")))

    def remove(self) -> None:
        kill_file = self.directory / "cgroup.kill"
        if kill_file.exists():
            with contextlib.suppress(OSError):
                kill_file.write_text("1")
        _kill_and_remove([self.directory], self.directory / "cgroup.procs")


class V2Driver:
    mode = CGROUP_V2

    def __init__(self, mount: Path, prefix: str) -> None:
        self.base = mount / prefix

    @classmethod
    def probe(cls, root: Path, prefix: str) -> V2Driver | None:
        for mount in (root, root / "unified"):
            try:
                controllers = (mount / "cgroup.controllers").read_text().split()
            except OSError:
                continue
            if "cpu" not in controllers:
                continue
            driver = cls(mount, prefix)
            try:
                if "cpu" not in (mount / "cgroup.subtree_control").read_text().split():
                    (mount / "cgroup.subtree_control").write_text("+cpu")
                driver.base.mkdir(exist_ok=True)
                (driver.base / "cgroup.subtree_control").write_text("+cpu")
            except OSError as exc:
                log.info("cgroup v2 cpu controller not writable at %s: %s", mount, exc)
                continue
            return driver
        return None

    def create(self, member: str, cores: float) -> V2MemberCgroup:
        group = V2MemberCgroup(self.base / member)
        group.directory.mkdir(exist_ok=True)
        (group.directory / "cpu.max").write_text(f"{_quota_us(cores)} {CFS_PERIOD_US}")
        return group

    def sweep(self) -> list[str]:
        names = sorted(p.name for p in _children(self.base))
        for name in names:
            V2MemberCgroup(self.base / name).remove()
        return names

    def close(self) -> None:
        self.sweep()
        with contextlib.suppress(OSError):
            self.base.rmdir()


def _children(base: Path) -> list[Path]:
    try:
        return [p for p in base.iterdir() if p.is_dir()]
    except OSError:
        return []


def detect_driver(prefix: str, root: Path = Path("/sys/fs/cgroup")) -> V1Driver | V2Driver | None:
    """The first writable cgroup CPU controller for this lab prefix, or None (uncapped)."""
    return V1Driver.probe(root, prefix) or V2Driver.probe(root, prefix)
