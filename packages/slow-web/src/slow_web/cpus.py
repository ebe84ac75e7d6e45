"""How many CPUs this process may really use: affinity mask and cgroup CPU quota."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

# cgroup v1 mounts the cpu controller under one of these names, depending on the distribution.
_V1_CPU_DIRS = ("cpu", "cpu,cpuacct", "cpuacct,cpu")


def usable_cpu_count(
    proc_self_cgroup: Path = Path("/proc/self/cgroup"),
    cgroup_root: Path = Path("/sys/fs/cgroup"),
) -> int:
    """min(affinity, ceil(quota / period)), at least 1."""
    count = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota(proc_self_cgroup, cgroup_root)
    if quota is not None:
        count = min(count, math.ceil(quota))
    return max(1, count)


def cgroup_cpu_quota(proc_self_cgroup: Path, cgroup_root: Path) -> float | None:
    """The tightest CPU quota (in CPUs) on this process's cgroup or its ancestors, if any."""
    try:
        membership = proc_self_cgroup.read_text()
    except OSError:
        return None
    v1_path, v2_path = _own_cgroup_paths(membership)
    quotas: list[float] = []
    if v1_path is not None:
        for dirname in _V1_CPU_DIRS:
            quotas.extend(_walk_quotas(cgroup_root / dirname, v1_path, _read_v1_quota))
    if v2_path is not None:
        quotas.extend(_walk_quotas(cgroup_root, v2_path, _read_v2_quota))
        quotas.extend(_walk_quotas(cgroup_root / "unified", v2_path, _read_v2_quota))
    return min(quotas) if quotas else None


def _own_cgroup_paths(membership: str) -> tuple[str | None, str | None]:
    v1_path: str | None = None
    v2_path: str | None = None
    for line in membership.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy_id, controllers, path = parts
        if hierarchy_id == "0" and controllers == "":
            v2_path = path
        elif "cpu" in controllers.split(","):
            v1_path = path
    return v1_path, v2_path


def _walk_quotas(mount: Path, own_path: str, read: Callable[[Path], float | None]) -> list[float]:
    """Quotas from the own cgroup up to the mount root.

    Inside a container the path in /proc/self/cgroup may not exist under the mount (the
    container sees its own cgroup as the root), so the mount root is always tried too.
    """
    if not mount.is_dir():
        return []
    quotas: list[float] = []
    relative = Path(own_path.lstrip("/"))
    candidates = [relative, *relative.parents]
    for candidate in candidates:
        quota = read(mount / candidate)
        if quota is not None:
            quotas.append(quota)
    return quotas


def _read_v1_quota(directory: Path) -> float | None:
    try:
        quota = int((directory / "cpu.cfs_quota_us").read_text().strip())
        period = int((directory / "cpu.cfs_period_us").read_text().strip())
    except (OSError, ValueError):
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def _read_v2_quota(directory: Path) -> float | None:
    try:
        fields = (directory / "cpu.max").read_text().split()
    except OSError:
        return None
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return quota / period
