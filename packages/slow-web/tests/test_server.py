"""The real CLI as a subprocess on loopback: busy workers, shedding, drain, admin, bad flags."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from slow_web import cli as slow_web_cli

# conftest.py is not importable under --import-mode=importlib; the fixture returns a
# SlowWebProcess from there.
StartSlowWeb = Callable[..., Any]
RunCli = Callable[..., subprocess.CompletedProcess[str]]
Poll = Callable[..., bool]
HealthStatus = Callable[[str], "int | None"]

TOKEN = "s3cret-admin-token"


def _metric(url: str, name: str) -> float | None:
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def _fire(pool: ThreadPoolExecutor, url: str, count: int) -> list[Future[httpx.Response]]:
    return [pool.submit(httpx.get, url, timeout=60) for _ in range(count)]


def test_health_answers_while_every_worker_is_busy(
    start_slow_web: StartSlowWeb, poll_until: Poll
) -> None:
    server = start_slow_web("--workers", "1", "--max-queue", "4")
    with ThreadPoolExecutor(max_workers=3) as pool:
        busy = _fire(pool, f"{server.url}/?ms=1500", 3)
        assert poll_until(lambda: _metric(server.url, "slow_web_in_flight_requests") == 3)
        assert _metric(server.url, "slow_web_queue_depth") == 2
        for _ in range(5):
            started = time.monotonic()
            response = httpx.get(f"{server.url}/health", timeout=10)
            elapsed = time.monotonic() - started
            assert (response.status_code, response.text) == (200, "OK")
            assert elapsed < 1.0, f"/health took {elapsed:.3f}s while workers were busy"
        assert [future.result().status_code for future in busy] == [200, 200, 200]


def test_full_queue_sheds_with_503_and_retry_after(
    start_slow_web: StartSlowWeb, poll_until: Poll
) -> None:
    server = start_slow_web("--workers", "1", "--max-queue", "1", "--retry-after", "3")
    with ThreadPoolExecutor(max_workers=2) as pool:
        admitted = _fire(pool, f"{server.url}/?ms=1500", 2)
        assert poll_until(lambda: _metric(server.url, "slow_web_in_flight_requests") == 2)
        started = time.monotonic()
        shed = httpx.get(f"{server.url}/?ms=10", timeout=10)
        elapsed = time.monotonic() - started
        assert shed.status_code == 503
        assert shed.headers["retry-after"] == "3"
        assert shed.json()["error"].startswith("overloaded")
        assert elapsed < 1.0, f"shedding took {elapsed:.3f}s"
        assert httpx.get(f"{server.url}/load?seconds=1", timeout=10).status_code == 503
        assert [future.result().status_code for future in admitted] == [200, 200]
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'slow_web_shed_total{route="/"} 1.0' in metrics
    assert 'slow_web_shed_total{route="/load"} 1.0' in metrics
    assert httpx.get(f"{server.url}/?ms=10", timeout=10).status_code == 200


def test_sigterm_drains_in_flight_request_then_exits_zero(
    start_slow_web: StartSlowWeb, poll_until: Poll, health_status: HealthStatus
) -> None:
    server = start_slow_web("--workers", "1")
    with ThreadPoolExecutor(max_workers=1) as pool:
        (in_flight,) = _fire(pool, f"{server.url}/?ms=2000", 1)
        assert poll_until(lambda: _metric(server.url, "slow_web_in_flight_requests") == 1)
        server.terminate()
        assert poll_until(lambda: health_status(server.url) == 503, timeout=10)
        assert httpx.get(f"{server.url}/?ms=1", timeout=10).status_code == 503
        response = in_flight.result()
    assert response.status_code == 200
    assert response.json()["cpu_ms"] >= 2000
    assert server.wait_exit() == 0
    log = server.log()
    assert "drain started reason=SIGTERM in_flight=1" in log
    assert "drain complete" in log
    assert "Traceback" not in log


def test_admin_drain_needs_the_token_then_drains_and_exits(
    start_slow_web: StartSlowWeb, token_file: Path, poll_until: Poll, health_status: HealthStatus
) -> None:
    server = start_slow_web("--workers", "1", "--admin-token-file", str(token_file))
    assert server.admin_url is not None
    drain_url = f"{server.admin_url}/admin/drain"
    assert httpx.post(drain_url, timeout=10).status_code == 401
    wrong = httpx.post(drain_url, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 403
    assert health_status(server.url) == 200
    assert server.process.poll() is None

    auth = {"Authorization": f"Bearer {TOKEN}"}
    with ThreadPoolExecutor(max_workers=1) as pool:
        (in_flight,) = _fire(pool, f"{server.url}/?ms=2000", 1)
        assert poll_until(lambda: _metric(server.url, "slow_web_in_flight_requests") == 1)
        status = httpx.get(f"{server.admin_url}/admin/status", headers=auth, timeout=10).json()
        assert (status["in_flight"], status["draining"]) == (1, False)
        started = time.monotonic()
        accepted = httpx.post(drain_url, headers=auth, timeout=10)
        assert accepted.status_code == 202
        assert time.monotonic() - started < 1.0
        assert health_status(server.url) == 503
        assert in_flight.result().status_code == 200
    assert server.wait_exit() == 0
    assert TOKEN not in server.log()
    assert "drain started reason=admin" in server.log()


def test_admin_drain_without_exit_keeps_running_until_sigterm(
    start_slow_web: StartSlowWeb, poll_until: Poll, health_status: HealthStatus
) -> None:
    server = start_slow_web("--workers", "1", env={"SLOW_WEB_ADMIN_TOKEN": TOKEN})
    assert server.admin_url is not None
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = httpx.post(
        f"{server.admin_url}/admin/drain", params={"exit": "false"}, headers=auth, timeout=10
    )
    assert response.status_code == 202
    assert poll_until(
        lambda: httpx.get(f"{server.admin_url}/admin/status", headers=auth, timeout=10).json()[
            "drained"
        ]
    )
    assert health_status(server.url) == 503
    assert server.process.poll() is None
    server.terminate()
    assert server.wait_exit() == 0


def test_without_token_no_admin_port(start_slow_web: StartSlowWeb) -> None:
    server = start_slow_web("--workers", "1", env={"SLOW_WEB_ADMIN_TOKEN": ""})
    assert server.admin_url is None
    assert "admin=disabled" in server.log()


def _assert_usage_error(result: subprocess.CompletedProcess[str], pattern: str) -> None:
    """click's usage error: exit 2, the usage line, one `Error:` line saying what is wrong."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("Usage: slow-web serve ")
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: ")
    assert re.search(pattern, last), last


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["--port", "notaport"], r"--port"),
        (["--workers", "0"], r"--workers"),
        (["--work-ms", "10", "--max-work-ms", "5"], r"work ms must be between 0 and max work ms"),
        (["--load-seconds", "100"], r"load seconds must be > 0"),
        (["--admin-token-file", "/nonexistent/token"], r"--admin-token-file"),
        (["--no-such-flag"], r"no-such-flag"),
    ],
)
def test_bad_flags_are_usage_errors(run_cli: RunCli, args: list[str], pattern: str) -> None:
    _assert_usage_error(run_cli("serve", *args), pattern)


def test_empty_token_file_is_refused(run_cli: RunCli, tmp_path: Path) -> None:
    empty = tmp_path / "token"
    empty.write_text("\n")
    result = run_cli("serve", "--admin-token-file", str(empty))
    _assert_usage_error(result, r"admin token file .* is empty")


@pytest.mark.parametrize("taken_flag", ["--port", "--admin-port"])
def test_a_taken_port_fails_with_one_line(run_cli: RunCli, tmp_path: Path, taken_flag: str) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        free = "--admin-port" if taken_flag == "--port" else "--port"
        result = run_cli(
            "serve", "--host", "127.0.0.1", "--admin-host", "127.0.0.1", taken_flag, str(port),
            free, "0", "--workers", "1", "--admin-token-file", str(token),
        )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"slow-web: error: cannot listen on 127.0.0.1:{port} for ")
    assert line.endswith(f"in use): choose another {taken_flag} or stop what holds it")


def test_sigint_twice_stops_at_once(start_slow_web: StartSlowWeb, poll_until: Poll) -> None:
    server = start_slow_web("--workers", "1")
    with ThreadPoolExecutor(max_workers=1) as pool:
        (interrupted,) = _fire(pool, f"{server.url}/?ms=5000", 1)
        assert poll_until(lambda: _metric(server.url, "slow_web_in_flight_requests") == 1)
        server.process.send_signal(signal.SIGINT)
        assert poll_until(lambda: "drain started reason=SIGINT" in server.log(), timeout=10)
        server.process.send_signal(signal.SIGINT)
        assert server.wait_exit(timeout=4.5) == 0
        response = interrupted.result()
    assert response.status_code == 503
    assert response.json()["error"].startswith("abandoned")
    assert "second SIGINT" in server.log()
    assert "Traceback" not in server.log()


def test_a_dead_worker_fails_its_request_and_is_replaced(
    start_slow_web: StartSlowWeb, poll_until: Poll
) -> None:
    server = start_slow_web("--workers", "1")
    worker_pid = httpx.get(f"{server.url}/?ms=1", timeout=10).json()["worker_pid"]
    with ThreadPoolExecutor(max_workers=1) as pool:
        (doomed,) = _fire(pool, f"{server.url}/?ms=3000", 1)
        assert poll_until(lambda: _metric(server.url, "slow_web_in_flight_requests") == 1)
        os.kill(worker_pid, signal.SIGKILL)
        failed = doomed.result()
    assert failed.status_code == 500
    assert "worker process died" in failed.json()["error"]
    after = httpx.get(f"{server.url}/?ms=1", timeout=30)
    assert after.status_code == 200
    assert after.json()["worker_pid"] != worker_pid
    assert httpx.get(f"{server.url}/health", timeout=10).status_code == 200


def test_drain_timeout_bounds_the_wait_for_in_flight_work(
    start_slow_web: StartSlowWeb, poll_until: Poll
) -> None:
    server = start_slow_web("--workers", "1", "--drain-timeout", "0.5")
    with ThreadPoolExecutor(max_workers=2) as pool:
        running_and_queued = _fire(pool, f"{server.url}/load?seconds=30", 2)
        assert poll_until(lambda: _metric(server.url, "slow_web_in_flight_requests") == 2)
        started = time.monotonic()
        server.terminate()
        responses = [future.result() for future in running_and_queued]
        assert server.wait_exit(timeout=20) == 0
        assert time.monotonic() - started < 10
    for response in responses:
        assert response.status_code == 503
        assert response.json() == {"error": "abandoned: the instance is shutting down"}
    assert "drain timeout after 0.5s, abandoning in_flight=2" in server.log()
    assert "Traceback" not in server.log()
    assert "ERROR" not in server.log()


def test_a_bug_is_one_line_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(slow_web_cli, "run", broken)
    result = CliRunner().invoke(slow_web_cli.cli, ["serve", "--workers", "1", "--port", "0"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "slow-web: error: unexpected RuntimeError: boom; this is a bug, please report it"
    ]
    assert isinstance(result.exception, SystemExit)
