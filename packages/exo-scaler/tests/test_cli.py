"""The CLI as a subprocess, the way the course's grading robot drives it (env-only config)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from exo_testkit import RunningZone, running_zone
from exo_zone.faults import FaultPlan


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def get(url: str) -> int:
    with urllib.request.urlopen(url, timeout=5) as response:
        return int(response.status)


def running_members(rz: RunningZone) -> int:
    pool = rz.pools["web"]
    with rz.zone.lock:
        members = rz.zone.members(pool.id)
        return sum(1 for m in members if m.state == "running") if pool.state == "running" else -1


def assert_one_line_error(stderr: str, *parts: str) -> None:
    """The failed-start convention: one line naming the program, the problem, what to do."""
    assert "Traceback" not in stderr
    [line] = [x for x in stderr.splitlines() if x.startswith("exo-scaler: error:")]
    for part in parts:
        assert part in line


def scaler_command() -> list[str]:
    return [sys.executable, "-c", "from exo_scaler.cli import main; main()", "serve"]


def test_course_robot_scenario(tmp_path: Path) -> None:
    with running_zone({"web": 1}) as rz:
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("EXOSCALE")},
            "EXOSCALE_KEY": rz.settings.api_key,
            "EXOSCALE_SECRET": rz.settings.api_secret,
            "EXOSCALE_API_ENDPOINT": rz.endpoint,
            "EXOSCALE_ZONE": "ch-gva-2",
            "EXOSCALE_ZONE_ID": "ignored",
            "EXOSCALE_INSTANCEPOOL_ID": rz.pools["web"].id,
            "LISTEN_PORT": str(port),
            "EXO_SCALER_INTERVAL": "0.5",
            "EXO_SCALER_NO_AUTH": "1",
        }
        stdout = (tmp_path / "stdout").open("w")
        stderr = (tmp_path / "stderr").open("w")
        process = subprocess.Popen(scaler_command(), env=env, stdout=stdout, stderr=stderr)
        base = f"http://127.0.0.1:{port}"
        try:

            def healthy() -> bool:
                assert process.poll() is None, (tmp_path / "stderr").read_text()
                try:
                    return get(base + "/healthz") == 200
                except OSError:
                    return False

            wait_for(healthy, 30, "the scaler to listen")
            assert running_members(rz) == 1
            assert get(base + "/up") == 200
            wait_for(lambda: running_members(rz) == 2, 30, "2 running members")
            assert get(base + "/down") == 200
            wait_for(lambda: running_members(rz) == 1, 30, "1 running member")
            assert get(base + "/down") == 200
            ticks = rz.zone.operations.copy()
            time.sleep(1.5)  # three ticks at 0.5 s
            assert running_members(rz) == 1
            assert len(rz.zone.operations) == len(ticks)
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=10) == 0
            assert time.monotonic() - started < 5
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            stdout.close()
            stderr.close()
    lines = (tmp_path / "stdout").read_text().splitlines()
    assert any('"reason":"at-min"' in line for line in lines)
    assert "--no-auth" in (tmp_path / "stderr").read_text()


def test_starting_without_a_token_is_a_clear_error() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EXOSCALE", "EXO_SCALER", "LISTEN_PORT"))
    }
    env.update({"EXOSCALE_API_KEY": "EXOx", "EXOSCALE_API_SECRET": "y"})
    result = subprocess.run(
        [*scaler_command(), "--pool", "web", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "no webhook token" in result.stderr
    assert "--token-file" in result.stderr


def test_unknown_pool_is_a_clear_error(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    with running_zone({"web": 1}) as rz:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXOSCALE")}
        env.update(rz.env)
        result = subprocess.run(
            [*scaler_command(), "--pool", "nope", "--token-file", str(token_file)],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "no instance pool named 'nope'", "check --pool")
    assert "s3cret" not in result.stderr


def test_sigterm_during_a_hung_api_call_still_exits_0_within_5_s(tmp_path: Path) -> None:
    with running_zone({"web": 1}) as rz:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXOSCALE")}
        env.update(rz.env)
        env.update({"EXO_SCALER_TOKEN": "tok", "LISTEN_PORT": str(port)})
        command = [*scaler_command(), "--pool", "web", "--interval", "0.3", "--host", "127.0.0.1"]
        with (tmp_path / "stderr").open("w") as stderr:
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
            try:

                def healthy() -> bool:
                    assert process.poll() is None, (tmp_path / "stderr").read_text()
                    try:
                        return get(f"http://127.0.0.1:{port}/healthz") == 200
                    except OSError:
                        return False

                wait_for(healthy, 30, "the scaler to listen")
                # From now on every API call hangs longer than the 5 s exit budget.
                rz.api.faults = FaultPlan(latency=8.0)
                seen = rz.zone.operations.copy()
                time.sleep(1.0)  # a tick is now stuck in its API call
                started = time.monotonic()
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=15) == 0
                assert time.monotonic() - started < 5
                assert rz.zone.operations == seen
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()


def test_an_nlb_without_a_service_for_the_pool_is_a_clear_error(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    with running_zone({"web": 1, "other": 1}) as rz:
        stray = rz.zone.create_load_balancer("stray", rz.pools["other"].id, port=8080)
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXOSCALE")}
        env.update(rz.env)
        pool_id = rz.pools["web"].id
        result = subprocess.run(
            [*scaler_command(), "--pool", pool_id, "--nlb", stray.id,
             "--token-file", str(token_file)],
            env=env, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert_one_line_error(result.stderr, f"--nlb {stray.id}", "no service for instance pool")
    assert "s3cret" not in result.stderr


def clean_env(rz: RunningZone) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EXOSCALE", "EXO_SCALER", "LISTEN_PORT"))
    }
    env.update(rz.env)
    env["EXO_SCALER_TOKEN"] = "tok"
    return env


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min", "3", "--max", "2"], "--max must be >= --min"),
        (["--policy", "sideways"], "'sideways' is not one of"),
        (["--interval", "soon"], "'soon' is not a valid float"),
        (["--token-file", "/nonexistent/token"], "cannot read the token file"),
    ],
)
def test_bad_usage_is_a_usage_error_and_starts_nothing(args: list[str], message: str) -> None:
    with running_zone({"web": 1}) as rz:
        seen = rz.zone.operations.copy()
        result = subprocess.run(
            [*scaler_command(), "--pool", "web", "--port", str(free_port()), *args],
            env=clean_env(rz), capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert rz.zone.operations == seen
    assert result.returncode == 2
    assert message in result.stderr
    assert "Usage:" in result.stderr and "Traceback" not in result.stderr


def test_a_port_in_use_is_a_failed_start(tmp_path: Path) -> None:
    with running_zone({"web": 1}) as rz, socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*scaler_command(), "--pool", "web", "--host", "127.0.0.1", "--port", str(port)],
            env=clean_env(rz), capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert_one_line_error(result.stderr, f"cannot listen on 127.0.0.1:{port}", "--port")


def test_bad_credentials_are_a_failed_start() -> None:
    with running_zone({"web": 1}) as rz:
        env = clean_env(rz)
        env["EXOSCALE_API_SECRET"] = "not-the-secret"
        result = subprocess.run(
            [*scaler_command(), "--pool", "web", "--port", str(free_port())],
            env=env, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "EXOSCALE_API_KEY")
    assert "not-the-secret" not in result.stderr


#: A role that may do everything but read the load balancer (issue 22: the scoped rule on
#: get-load-balancer refused on a real account).
NO_NLB_READ = {
    "default-service-strategy": "allow",
    "services": {
        "compute": {
            "type": "rules",
            "rules": [
                {"action": "deny", "expression": "operation == 'get-load-balancer'"},
                {"action": "allow", "expression": "true"},
            ],
        }
    },
}


def test_a_refused_nlb_read_keeps_running_with_members_warming(tmp_path: Path) -> None:
    with running_zone({"web": 1}) as rz:
        pool = rz.pools["web"]
        lb = rz.zone.create_load_balancer("nlb", pool.id, port=8080)
        key, secret = rz.local.add_key(NO_NLB_READ)
        env = clean_env(rz)
        env.update({"EXOSCALE_API_KEY": key, "EXOSCALE_API_SECRET": secret})
        port = free_port()
        command = [*scaler_command(), "--pool", pool.id, "--nlb", lb.id, "--host", "127.0.0.1",
                   "--port", str(port), "--interval", "0.3", "--warm-up-limit", "600"]  # fmt: skip
        stdout = (tmp_path / "stdout").open("w")
        stderr = (tmp_path / "stderr").open("w")
        process = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)
        base = f"http://127.0.0.1:{port}"
        try:

            def healthy() -> bool:
                assert process.poll() is None, (tmp_path / "stderr").read_text()
                try:
                    return get(base + "/healthz") == 200
                except OSError:
                    return False

            wait_for(healthy, 30, "the scaler to listen")
            with urllib.request.urlopen(base + "/status", timeout=5) as answer:
                status = json.load(answer)
            [condition] = status["conditions"]
            assert condition["type"] == "NlbUnreadable"
            assert "get-load-balancer" in condition["detail"]
            # It scales: the first step goes out; the next waits, its members warming.
            request = urllib.request.Request(
                base + "/up", headers={"Authorization": "Bearer tok"}, method="POST"
            )
            with urllib.request.urlopen(request, timeout=5):
                pass
            wait_for(lambda: rz.pools["web"].size == 2, 30, "the first step")
            with urllib.request.urlopen(request, timeout=5):
                pass
            wait_for(lambda: '"warming-up"' in (tmp_path / "stdout").read_text(), 30,
                     "a warming-up decision")  # fmt: skip
            assert rz.pools["web"].size == 2
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
            stdout.close()
            stderr.close()
    errors = (tmp_path / "stderr").read_text()
    assert errors.count("NLB UNREADABLE") == 1, errors  # once, loudly, not every tick
    assert "Traceback" not in errors
