"""`exo-lab run` stops everything it started when interrupted, and a second run works."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from exo_lab.dataplane.lock import LabBusyError, LabLock
from exo_lab.dataplane.members import lab_prefix_for
from exo_testkit import free_member_network

pytestmark = pytest.mark.integration

PROVISIONING = Path(__file__).resolve().parents[3] / "grafana-provisioning"


def start_run(out: Path, network: str) -> tuple[subprocess.Popen[bytes], Path]:
    console = out.parent / f"{out.name}.console"
    # A load far longer than the test (200 lab s): the signal must find the run running even
    # on a loaded machine, where looking for its members can take as long as a short run.
    command = [sys.executable, "-m", "exo_lab", "run", "--speed", "20", "--duration", "4000"]
    command += ["--member-network", network, "--provisioning", str(PROVISIONING)]
    command += ["--out", str(out)]
    with console.open("wb") as handle:
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
    return process, console


def wait_for_line(
    process: subprocess.Popen[bytes], console: Path, marker: str, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker in console.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"no {marker!r} within {timeout}s:\n{console.read_text(errors='replace')}")


def descendants_using(out: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(str(out) in part for part in proc.info["cmdline"] or ()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_run_leaves_nothing_behind(tmp_path: Path, signum: int) -> None:
    network = free_member_network()
    out = tmp_path / "run"
    process, console = start_run(out, network)
    try:
        wait_for_line(process, console, "load:", timeout=120)
        assert descendants_using(out), "the run should have children using its folder"
        prefix = network.rsplit(".", 1)[0] + "."
        members_before = [
            p
            for p in psutil.process_iter(["cmdline"])
            if "slow_web" in " ".join(p.info["cmdline"] or ())
            and prefix in " ".join(p.info["cmdline"] or ())
        ]
        assert members_before
        process.send_signal(signum)
        assert process.wait(timeout=60) == 130
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while descendants_using(out) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert descendants_using(out) == []
    cgroup = Path("/sys/fs/cgroup/cpu") / lab_prefix_for(network)
    assert not cgroup.exists()
    for member in members_before:
        assert not member.is_running() or member.status() == psutil.STATUS_ZOMBIE

    # A second run on the same network right after starts cleanly.
    second, console = start_run(tmp_path / "again", network)
    try:
        wait_for_line(second, console, "stack ready", timeout=120)
    finally:
        second.send_signal(signal.SIGINT)
        assert second.wait(timeout=60) == 130


def run_cli(args: list[str], runtime_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime_dir)}
    return subprocess.run(
        [sys.executable, "-m", "exo_lab", "run", "--provisioning", str(PROVISIONING), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_a_bad_member_network_is_a_usage_error_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = run_cli(["--member-network", "10.9.0.0/24", "--out", str(out)], tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Usage: ")
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: --member-network 10.9.0.0/24: member network 10.9.0.0/24 must be inside "
        "127.0.0.0/8 (e.g. 127.0.2.0/24)"
    )
    assert not out.exists()
    assert not list(tmp_path.rglob("*.lock"))


def test_a_held_lab_lock_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    network = free_member_network()
    holder = LabLock(tmp_path / f"exo-lab-{os.getuid()}", lab_prefix_for(network))
    holder.acquire()
    try:
        out = tmp_path / "run"
        result = run_cli(
            ["--member-network", network, "--out", str(out), "--speed", "20"], tmp_path
        )
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("exo-lab run: error: another exo-lab (pid ")
        assert line.endswith("stop it or choose another member network")
        assert f"pid {os.getpid()}" in line
        assert not out.exists()
        assert not descendants_using(out)
        assert holder.path.exists()  # the other lab's lock is untouched
    finally:
        holder.release()
    assert not holder.path.exists()


def test_the_lab_lock_is_exclusive_and_released_without_a_trace(tmp_path: Path) -> None:
    first, second = LabLock(tmp_path, "exo-lab-x"), LabLock(tmp_path, "exo-lab-x")
    first.acquire()
    with pytest.raises(LabBusyError, match=f"pid {os.getpid()}"):
        second.acquire()
    first.release()
    assert list(tmp_path.iterdir()) == []
    second.acquire()
    assert second.path.read_text() == str(os.getpid())
    second.release()
    assert list(tmp_path.iterdir()) == []
