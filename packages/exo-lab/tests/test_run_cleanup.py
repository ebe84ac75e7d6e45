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

from exo_lab.dataplane.members import lab_prefix_for
from exo_testkit import free_member_network

pytestmark = pytest.mark.integration

PROVISIONING = Path(__file__).resolve().parents[3] / "grafana-provisioning"


def start_run(out: Path, network: str) -> tuple[subprocess.Popen[bytes], Path]:
    console = out.parent / f"{out.name}.console"
    command = [sys.executable, "-m", "exo_lab", "run", "--speed", "20", "--duration", "400"]
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
