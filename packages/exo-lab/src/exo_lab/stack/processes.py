"""Child processes of a lab run: started with logs in the run folder, stopped for sure.

Each child gets `setpriv --pdeathsig SIGTERM` where available, so a lab that is SIGKILLed
does not leave Prometheus or the scaler behind; a normal exit stops them in reverse order
(SIGTERM, then SIGKILL after a bound).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def find_binary(*names: str) -> str | None:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class ChildExited(RuntimeError):
    """A child of the run died that should still be running; the message has its log's tail."""


class ChildProcesses:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []
        #: every child ever started (stop_all empties `children`)
        self.started = 0
        self._pdeathsig = find_binary("setpriv")

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        log_file = log_path.open("ab")
        argv = list(command)
        if self._pdeathsig:
            argv = [self._pdeathsig, "--pdeathsig", "TERM", "--", *argv]
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        child = Child(name, process, log_path, log_file)
        self.children.append(child)
        self.started += 1
        log.info("started %s (pid %d)", name, process.pid)
        return child

    def check_alive(self, *, expected_to_exit: tuple[str, ...] = ()) -> None:
        """Raise with the tail of its log if a child died that should still run."""
        for child in self.children:
            if child.name not in expected_to_exit and not child.alive():
                raise ChildExited(
                    f"{child.name} exited with code {child.process.returncode}; "
                    f"its log ({child.log_path}) ends with:\n{child.tail()}"
                )

    def stop(self, child: Child, timeout: float = 5.0) -> None:
        if child.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGTERM)
            try:
                child.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM for %.0fs; killing it", child.name, timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait(5)
        child.log_file.close()

    def stop_all(self, timeout: float = 5.0) -> None:
        while self.children:
            self.stop(self.children.pop(), timeout)


def wait_for(check: object, what: str, timeout: float, interval: float = 0.1) -> None:
    """Poll `check()` until it is truthy; raise TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception as exc:
            last_error = exc
        time.sleep(interval)
    detail = f" (last error: {last_error})" if last_error else ""
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s{detail}")
