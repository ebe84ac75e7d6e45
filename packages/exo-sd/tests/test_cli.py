"""The CLI as the course robot and an operator meet it: a subprocess, env or flags."""

from __future__ import annotations

import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sd_support import (
    agent_env,
    clean_env,
    free_port,
    member_targets,
    start_agent,
    target_set,
    wait_for,
)

from exo_testkit import RunningZone, running_zone
from exo_zone import FaultPlan

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def zone() -> Iterator[RunningZone]:
    with running_zone({"web": 2}) as rz:
        yield rz


@pytest.fixture(autouse=True)
def no_faults(zone: RunningZone) -> Iterator[None]:
    zone.api.faults = FaultPlan()
    yield
    zone.api.faults = FaultPlan()


def run_once(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exo_sd", "--once", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def measure_sigterm(agent: subprocess.Popen[str]) -> float:
    started = time.monotonic()
    agent.send_signal(signal.SIGTERM)
    agent.wait(10)
    return time.monotonic() - started


def test_course_robot_environment_only(zone: RunningZone, tmp_path: Path) -> None:
    pool_id = zone.pools["web"].id
    port = random.randint(10000, 60000)
    out = tmp_path / "elsewhere" / "service-discovery" / "config.json"
    env = clean_env(
        {
            "EXOSCALE_KEY": zone.settings.api_key,
            "EXOSCALE_SECRET": zone.settings.api_secret,
            "EXOSCALE_ZONE": "ch-gva-2",
            "EXOSCALE_ZONE_ID": "4da1b188-dcd6-4ff5-b7fd-bde984055548",
            "EXOSCALE_INSTANCEPOOL_ID": pool_id,
            "EXOSCALE_API_ENDPOINT": zone.endpoint,
            "TARGET_PORT": str(port),
            "EXO_SD_OUT": str(out),
        }
    )
    agent = subprocess.Popen(
        [sys.executable, "-m", "exo_sd"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: target_set(out) == member_targets(zone, pool_id, port) != set(),
            timeout=30,
            what="the robot's file",
        )
        assert all(t.endswith(f":{port}") for t in target_set(out) or ())
        assert out.stat().st_mode & 0o777 == 0o644
        elapsed = measure_sigterm(agent)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert agent.returncode == 0
    assert elapsed < 1.0, f"SIGTERM took {elapsed:.2f}s"
    assert "Traceback" not in (agent.stderr.read() if agent.stderr else "")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_backoff_exits_0_within_1s(
    zone: RunningZone, tmp_path: Path, signum: signal.Signals
) -> None:
    pool_id = zone.pools["web"].id
    out = tmp_path / "t.json"
    log = tmp_path / "stderr.log"
    with log.open("w") as stderr:
        agent = start_agent(
            ["--interval", "0.1", "--out", str(out), "--max-backoff", "30"],
            agent_env(zone, pool_id),
            stderr=stderr,
        )
        try:
            wait_for(out.exists, timeout=30, what="the first file")
            zone.api.faults = FaultPlan(rate=1.0, statuses=(503,))
            # Wait until the backoff has grown to several seconds, then interrupt it.
            wait_for(lambda: "retry in 4.0s" in log.read_text(), timeout=30, what="backoff")
            started = time.monotonic()
            agent.send_signal(signum)
            agent.wait(10)
            elapsed = time.monotonic() - started
        finally:
            if agent.poll() is None:
                agent.kill()
    assert agent.returncode == 0
    assert elapsed < 1.0, f"exit took {elapsed:.2f}s"
    assert "Traceback" not in log.read_text()


def test_sigterm_during_a_hanging_request_exits_0_within_1s(
    zone: RunningZone, tmp_path: Path
) -> None:
    pool_id = zone.pools["web"].id
    out = tmp_path / "t.json"
    agent = start_agent(["--interval", "0.1", "--out", str(out)], agent_env(zone, pool_id))
    try:
        wait_for(out.exists, timeout=30, what="the first file")
        zone.api.faults = FaultPlan(latency=8.0)
        time.sleep(0.5)  # the next list call is now waiting on the slow API
        elapsed = measure_sigterm(agent)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert agent.returncode == 0
    assert elapsed < 1.0, f"exit took {elapsed:.2f}s"


def test_once_with_flags_winning_over_env(zone: RunningZone, tmp_path: Path) -> None:
    pool_id = zone.pools["web"].id
    wait_for(lambda: len(member_targets(zone, pool_id, 1)) == 2, what="members running")
    out = tmp_path / "t.json"
    env = agent_env(zone, "00000000-0000-4000-8000-000000000000", TARGET_PORT="1111")
    result = run_once(env, "--pool", pool_id, "--port", "9200", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert target_set(out) == member_targets(zone, pool_id, 9200)


def test_an_unknown_pool_id_lists_nothing_and_says_so(zone: RunningZone, tmp_path: Path) -> None:
    """exo-sd never reads the pool (its role lists members only), so a wrong id is an empty
    list, said on stderr, not an error it could tell from a pool scaled to 0."""
    out = tmp_path / "t.json"
    env = agent_env(zone, "00000000-0000-4000-8000-000000000000")
    result = run_once(env, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert target_set(out) == set()
    assert "lists no member" in result.stderr


def test_once_exits_1_when_the_api_fails_and_keeps_the_file(
    zone: RunningZone, tmp_path: Path
) -> None:
    out = tmp_path / "t.json"
    out.write_text("[]\n")
    zone.api.faults = FaultPlan(rate=1.0, statuses=(503,))
    result = run_once(agent_env(zone, zone.pools["web"].id), "--out", str(out))
    assert result.returncode == 1
    assert out.read_text() == "[]\n"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"EXOSCALE_INSTANCEPOOL_ID": "web"}, 2, "--pool must be the instance pool's id"),
        ({"EXOSCALE_API_SECRET": "wrong"}, 1, "rejected the credentials"),
        ({"EXOSCALE_API_SECRET": ""}, 2, "missing Exoscale credential"),
        ({"EXOSCALE_API_KEY": ""}, 2, "missing Exoscale credential"),
        ({"EXOSCALE_INSTANCEPOOL_ID": ""}, 2, "Missing option '--pool'"),
        ({"TARGET_PORT": "70000"}, 2, "--port"),
    ],
    ids=["a-name", "wrong-secret", "no-secret", "no-key", "no-pool", "port"],
)
def test_clear_errors(
    zone: RunningZone, tmp_path: Path, change: dict[str, str], code: int, message: str
) -> None:
    """Bad usage is click's usage error (2); a failed start is one line naming exo-sd (1)."""
    env = agent_env(zone, zone.pools["web"].id)
    for name, value in change.items():
        if value:
            env[name] = value
        else:
            env.pop(name, None)
    out = tmp_path / "t.json"
    result = run_once(env, "--out", str(out))
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert zone.settings.api_secret not in result.stderr
    lines = result.stderr.strip().splitlines()
    if code == 2:
        assert result.stderr.startswith("Usage: exo-sd ")
        assert lines[-1].startswith("Error: ") and message in lines[-1]
    else:
        (line,) = [line for line in lines if line.startswith("exo-sd: error: ")]
        assert message in line
        assert line == lines[-1]
    assert not out.exists()


def test_a_taken_metrics_port_is_one_line(zone: RunningZone, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = tmp_path / "t.json"
        result = run_once(
            agent_env(zone, zone.pools["web"].id), "--out", str(out), "--metrics-port", str(port)
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"exo-sd: error: cannot serve metrics on 127.0.0.1:{port} (Address already in use): "
        "choose another --metrics-port or stop what holds it"
    ]
    assert not out.exists()


def test_metrics_endpoint(zone: RunningZone, tmp_path: Path) -> None:
    pool_id = zone.pools["web"].id
    port = free_port()
    out = tmp_path / "t.json"
    agent = start_agent(
        ["--interval", "0.1", "--out", str(out), "--metrics-port", str(port)],
        agent_env(zone, pool_id),
    )

    def scrape() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            return ""

    def refreshes(text: str) -> float:
        found = re.search(r"^exo_sd_refreshes_total (\S+)$", text, re.M)
        return float(found.group(1)) if found else 0.0

    try:
        text = wait_for(
            lambda: text if refreshes(text := scrape()) >= 3 else "",
            timeout=30,
            what="three refreshes on /metrics",
        )
    finally:
        agent.terminate()
        agent.wait(5)
    assert re.search(r'exo_sd_api_calls_total\{operation="list-instances"\} [1-9]', text)
    assert "get-instance-pool" not in text  # the pool is never read
    assert "exo_sd_last_success_timestamp_seconds" in text
    assert "exo_sd_refresh_duration_seconds_bucket" in text
    assert 'exo_sd_errors_total{kind="unavailable"} 0.0' in text
    assert "exo_sd_targets" in text


def test_help_lists_the_environment_names() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "exo_sd", "--help"], capture_output=True, text=True, check=True
    )
    for name in ("EXOSCALE_INSTANCEPOOL_ID", "TARGET_PORT", "EXOSCALE_API_KEY", "EXO_SD_OUT"):
        assert name in result.stdout
