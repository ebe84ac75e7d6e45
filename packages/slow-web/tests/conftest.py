"""Fixtures: the real CLI as a subprocess on loopback, and in-process apps with lifespan."""

from __future__ import annotations

import dataclasses
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

READY = re.compile(r"ready instance=\S+ listening=(?P<url>http://\S+) admin=(?P<admin>\S+)")
START_TIMEOUT = 30.0


@dataclasses.dataclass
class SlowWebProcess:
    process: subprocess.Popen[str]
    url: str
    admin_url: str | None
    lines: list[str]

    def log(self) -> str:
        return "".join(self.lines)

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout=timeout)

    def terminate(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)


def _pump(stream: object, lines: list[str], ready: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.append(line)
        ready.put(line)
    ready.put("")


def _slow_web_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "slow_web.cli", *args]


@pytest.fixture
def start_slow_web() -> Iterator[Callable[..., SlowWebProcess]]:
    """Start `slow-web serve` on 127.0.0.1 with a free port; stopped (SIGTERM, then KILL) after."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str] | None = None) -> SlowWebProcess:
        command = _slow_web_command(
            "serve", "--host", "127.0.0.1", "--port", "0", "--admin-port", "0", *args
        )
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        started.append(process)
        lines: list[str] = []
        ready: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(process.stdout, lines, ready), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = ready.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line == "":
                break
            match = READY.search(line)
            if match:
                admin = match["admin"] if match["admin"].startswith("http") else None
                return SlowWebProcess(process, match["url"], admin, lines)
        raise AssertionError("slow-web did not start:\n" + "".join(lines))

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            _slow_web_command(*args), capture_output=True, text=True, timeout=timeout
        )

    return run


def _poll_until(check: Callable[[], bool], timeout: float = 15.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def _health_status(url: str) -> int | None:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code
    except httpx.TransportError:
        return None


@pytest.fixture
def poll_until() -> Callable[..., bool]:
    """poll_until(check, timeout=15.0): True once check() is true, polling with a deadline."""
    return _poll_until


@pytest.fixture
def health_status() -> Callable[[str], int | None]:
    """Status code of GET <url>/health, None when nothing answers."""
    return _health_status


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "admin-token"
    path.write_text("s3cret-admin-token\n")
    return path
