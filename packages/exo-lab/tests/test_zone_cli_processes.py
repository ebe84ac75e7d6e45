"""`exo-lab zone` with process members: NLB addresses, SIGTERM stops all, SIGKILL is cleaned up."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from exo_lab.dataplane.members import lab_prefix_for
from exo_testkit import eventually, free_member_network

pytestmark = pytest.mark.integration

CGROUP_CPU = Path("/sys/fs/cgroup/cpu")


class ZoneProcess:
    def __init__(self, network: str, runtime_dir: Path, size: int = 2) -> None:
        env = dict(os.environ, EXOSCALE_API_KEY="EXOtestkey", EXOSCALE_API_SECRET="s3cret")
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "exo_lab", "zone", "--port", "0", "--nlb-port", "0",
             "--pool", f"web={size}", "--member-network", network, "--boot-delay", "0.2",
             "--operation-delay", "0.2", "--health-interval", "0.3", "--health-timeout", "0.3",
             "--stop-timeout", "3", "--runtime-dir", str(runtime_dir)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if "API: http" in line:
                break
        else:
            raise AssertionError("zone did not start:\n" + "".join(self.lines))

    def nlb_url(self) -> str:
        match = re.search(r"NLB web-nlb-http: (http://\S+)", "".join(self.lines))
        assert match, self.lines
        return match.group(1)


def member_pids(prefix: str) -> set[int]:
    pids: set[int] = set()
    for procs in CGROUP_CPU.joinpath(prefix).glob("*/cgroup.procs"):
        pids |= {int(p) for p in procs.read_text().split()}
    return pids


def serving_names(url: str, count: int) -> set[str]:
    """Who answers `count` new connections; an empty NLB (still booting) closes them."""
    names = set()
    for _ in range(count):
        try:
            with httpx.Client(timeout=5) as client:
                names.add(client.get(url, params={"ms": 1}).json()["instance"])
        except httpx.TransportError:
            time.sleep(0.1)
    return names


@pytest.fixture
def network() -> str:
    return free_member_network()


def test_sigterm_stops_everything_and_sigkill_is_cleaned_up_next_start(
    network: str, tmp_path: Path
) -> None:
    prefix = lab_prefix_for(network)
    first = ZoneProcess(network, tmp_path)
    try:
        url = first.nlb_url()
        eventually(lambda: len(serving_names(url, 4)) == 2, 40, "two members behind the NLB")
        leftovers = member_pids(prefix)
        assert len(leftovers) >= 4, "two slow-web mains and their workers"
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
    finally:
        first.process.kill()
    # The members outlive a SIGKILLed lab: they are their own sessions.
    assert all(psutil.pid_exists(pid) for pid in leftovers)
    assert (tmp_path / prefix / "members").is_dir()

    second = ZoneProcess(network, tmp_path)
    try:
        text = "".join(second.lines)
        assert "CPU cap: cgroup-v1" in text or "CPU cap: cgroup-v2" in text
        eventually(lambda: not any(psutil.pid_exists(p) for p in leftovers), 10, "leftovers gone")
        url = second.nlb_url()
        eventually(lambda: len(serving_names(url, 4)) == 2, 40, "two new members")
        assert not (member_pids(prefix) & leftovers)
        second.process.send_signal(signal.SIGTERM)
        assert second.process.wait(30) == 0
        live = member_pids(prefix) if CGROUP_CPU.joinpath(prefix).exists() else set()
    finally:
        second.process.kill()
    assert not live
    assert not CGROUP_CPU.joinpath(prefix).exists(), "the lab's cgroups are removed"
    assert (
        not list((tmp_path / prefix / "members").glob("*.json"))
        if (tmp_path / prefix / "members").exists()
        else True
    )


def test_a_second_lab_on_the_same_network_is_refused(network: str, tmp_path: Path) -> None:
    first = ZoneProcess(network, tmp_path, size=1)
    try:
        env = dict(os.environ, EXOSCALE_API_KEY="EXOtestkey", EXOSCALE_API_SECRET="s3cret")
        second = subprocess.run(
            [sys.executable, "-m", "exo_lab", "zone", "--port", "0", "--nlb-port", "0",
             "--member-network", network, "--runtime-dir", str(tmp_path)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode != 0
        assert "another exo-lab" in second.stderr + second.stdout
        assert first.process.poll() is None, "the running lab is untouched"
    finally:
        first.process.send_signal(signal.SIGTERM)
        first.process.wait(30)
