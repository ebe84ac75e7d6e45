from __future__ import annotations

import os
from pathlib import Path

import pytest

from slow_web.burn import burn_cpu
from slow_web.cpus import cgroup_cpu_quota, usable_cpu_count
from slow_web.settings import Settings


def test_settings_default_queue_is_four_per_worker() -> None:
    assert Settings(instance_name="a", workers=3).queue_limit == 12
    assert Settings(instance_name="a", workers=3, max_queue=0).queue_limit == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"workers": 0}, "workers must be at least 1"),
        ({"work_ms": 6000, "max_work_ms": 5000}, "work ms must be between 0"),
        ({"load_seconds": 0.0}, "load seconds must be > 0"),
        ({"load_seconds": 61.0}, "load seconds must be > 0"),
        ({"max_queue": -1}, "max queue must be >= 0"),
        ({"port": 70000}, "port must be between 0 and 65535"),
        ({"drain_timeout": float("nan")}, "drain timeout"),
        ({"admin_token": ""}, "admin token must not be empty"),
        ({"instance_name": ""}, "instance name must not be empty"),
    ],
)
def test_settings_reject_bad_values(overrides: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"instance_name": "a", "workers": 1, **overrides}
    with pytest.raises(ValueError, match=message):
        Settings(**arguments)  # type: ignore[arg-type]


def test_settings_repr_hides_admin_token() -> None:
    assert "topsecret" not in repr(Settings(instance_name="a", workers=1, admin_token="topsecret"))


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v1_quota_of_own_cgroup(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("4:memory:/x\n3:cpu,cpuacct:/lab/member-1\n0::/\n")
    _write(tmp_path / "root/cpu,cpuacct/lab/member-1/cpu.cfs_quota_us", "150000\n")
    _write(tmp_path / "root/cpu,cpuacct/lab/member-1/cpu.cfs_period_us", "100000\n")
    _write(tmp_path / "root/cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
    _write(tmp_path / "root/cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_quota(proc, tmp_path / "root") == pytest.approx(1.5)
    assert usable_cpu_count(proc, tmp_path / "root") == min(2, len(os.sched_getaffinity(0)))


def test_cgroup_v2_tightest_ancestor_wins(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("0::/lab.slice/member-2\n")
    _write(tmp_path / "root/lab.slice/member-2/cpu.max", "max 100000\n")
    _write(tmp_path / "root/lab.slice/cpu.max", "50000 100000\n")
    assert cgroup_cpu_quota(proc, tmp_path / "root") == pytest.approx(0.5)
    assert usable_cpu_count(proc, tmp_path / "root") == 1


def test_no_quota_means_affinity(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("0::/\n")
    _write(tmp_path / "root/cpu.max", "max 100000\n")
    assert cgroup_cpu_quota(proc, tmp_path / "root") is None
    assert usable_cpu_count(proc, tmp_path / "root") == len(os.sched_getaffinity(0))
    assert cgroup_cpu_quota(tmp_path / "missing", tmp_path / "root") is None


def test_burn_consumes_the_requested_cpu_time() -> None:
    result = burn_cpu(0.05)
    assert 0.05 <= result.cpu_seconds < 0.1
    assert result.wall_seconds >= result.cpu_seconds * 0.9
    assert result.worker_pid == os.getpid()
