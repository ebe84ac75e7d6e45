"""`exo-lab zone` with process members: NLB addresses, SIGTERM stops all, SIGKILL is cleaned up,
members in two stages (the VM runs before the app answers), failed starts in one line."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from exo_client import ClientSettings, ExoClient
from exo_lab.dataplane.lifecycle import MemberLifecycle
from exo_lab.dataplane.lock import LabLock
from exo_lab.dataplane.members import lab_prefix_for
from exo_testkit import eventually, free_member_network

pytestmark = pytest.mark.integration

CGROUP_CPU = Path("/sys/fs/cgroup/cpu")


KEY, SECRET = "EXOtestkey", "s3cret"
#: the fast model at speed 60: the VM boots in 0.5 s and the app starts at once
FAST = ("--timing-model", "fast", "--speed", "60")


class ZoneProcess:
    def __init__(
        self, network: str, runtime_dir: Path, size: int = 2, timing: tuple[str, ...] = FAST
    ) -> None:
        env = dict(os.environ, EXOSCALE_API_KEY=KEY, EXOSCALE_API_SECRET=SECRET)
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "exo_lab", "zone", "--port", "0", "--nlb-port", "0",
             "--pool", f"web={size}", "--member-network", network, *timing,
             "--health-interval", "18", "--health-timeout", "18",
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
        return self._find(r"NLB web-nlb-http: (http://\S+)")

    def client(self) -> ExoClient:
        endpoint = self._find(r"API: (http://\S+)")
        return ExoClient(ClientSettings(api_key=KEY, api_secret=SECRET, endpoint=endpoint))

    def pool_id(self) -> str:
        return self._find(r"pool web: id (\S+),")

    def _find(self, pattern: str) -> str:
        match = re.search(pattern, "".join(self.lines))
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
        assert second.returncode == 1
        assert "Traceback" not in second.stderr
        (line,) = second.stderr.strip().splitlines()
        assert line.startswith("exo-lab zone: error: another exo-lab (pid ")
        assert first.process.poll() is None, "the running lab is untouched"
    finally:
        first.process.send_signal(signal.SIGTERM)
        first.process.wait(30)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=0.2).status_code == 200
    except httpx.HTTPError:
        return False


def test_realistic_members_run_before_their_app_answers(network: str, tmp_path: Path) -> None:
    """The VM is `running` first; the exporter answers after guest boot and packages, /health
    after the Python stage too: the realistic model's delays divided by --speed."""
    speed = 60.0
    model = MemberLifecycle.realistic().scaled(speed)
    zone = ZoneProcess(network, tmp_path, size=1, timing=("--speed", str(speed)))
    try:
        client, pool_id = zone.client(), zone.pool_id()
        seen: dict[str, float] = {}
        deadline = time.monotonic() + 60
        while "health" not in seen and time.monotonic() < deadline:
            members = client.list_members(pool_id)
            now = time.monotonic()
            if members and members[0].is_running:
                seen.setdefault("running", now)
            address = members[0].public_ip if members else None
            if address and answers(f"http://{address}:9100/metrics"):
                seen.setdefault("exporter", time.monotonic())
            if address and answers(f"http://{address}:8080/health"):
                seen.setdefault("health", time.monotonic())
            time.sleep(0.02)
        assert {"running", "exporter", "health"} <= set(seen), seen
        # A poll sees `running` up to one round late: allow that much in the lower bounds.
        late = 0.15
        assert seen["running"] < seen["exporter"] < seen["health"]
        exporter_after = seen["exporter"] - seen["running"]
        health_after = seen["health"] - seen["running"]
        least = model.guest_boot.base + model.packages.base
        assert exporter_after >= least - late
        assert health_after >= least + model.python.base - late
        # slow-web's own start, on a busy machine, comes on top of the modelled stages.
        assert health_after <= model.provisioning_most + 10
    finally:
        zone.process.send_signal(signal.SIGTERM)
        zone.process.wait(30)


def test_a_taken_api_port_is_one_line_and_leaves_nothing(network: str, tmp_path: Path) -> None:
    env = dict(os.environ, EXOSCALE_API_KEY=KEY, EXOSCALE_API_SECRET=SECRET)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "exo_lab", "zone", "--port", str(port), "--nlb-port", "0",
             "--pool", "web=1", "--member-network", network, "--runtime-dir", str(tmp_path)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"exo-lab zone: error: cannot listen on 127.0.0.1:{port} (")
    assert "choose another --port" in line
    # The lab's lock is free again and no member was started.
    prefix = lab_prefix_for(network)
    lock = LabLock(tmp_path, prefix)
    lock.acquire()
    lock.release()
    assert not list((tmp_path / prefix / "members").glob("*.json"))
    assert not (tmp_path / prefix / "admin-token").exists()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--speed", "0"], {}, "Invalid value for '--speed'"),
        (["--timing-model", "instant"], {}, "Invalid value for '--timing-model'"),
        (["--pool", "web"], {}, "expected NAME=SIZE"),
        (["--member-network", "10.0.0.0/24"], {}, "must be inside 127.0.0.0/8"),
        (["--health-timeout", "20"], {}, "must not exceed --health-interval"),
        ([], {"EXOSCALE_API_SECRET": ""}, "set EXOSCALE_API_SECRET"),
    ],
)
def test_bad_usage_is_a_usage_error(args: list[str], env: dict[str, str], message: str) -> None:
    environment = {**os.environ, "EXOSCALE_API_KEY": KEY, "EXOSCALE_API_SECRET": SECRET, **env}
    result = subprocess.run(
        [sys.executable, "-m", "exo_lab", "zone", "--port", "0", *args],
        env=environment, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("Usage: exo-lab zone ")
    assert message in result.stderr.strip().splitlines()[-1]
