"""Helpers for the tests that run the agent for real: subprocesses, polling, ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from exo_testkit import RunningZone

T = TypeVar("T")


def wait_for(
    check: Callable[[], T], *, timeout: float = 20.0, poll: float = 0.05, what: str = ""
) -> T:
    """Poll `check` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(poll)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any Exoscale setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXOSCALE_", "EXO_SD_"))}
    env.pop("TARGET_PORT", None)
    env.update(extra)
    return env


def agent_env(rz: RunningZone, pool_id: str, **extra: str) -> dict[str, str]:
    return clean_env({**rz.env, "EXOSCALE_INSTANCEPOOL_ID": pool_id, **extra})


def start_agent(
    args: list[str], env: Mapping[str, str], *, stderr: Any = subprocess.PIPE
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "exo_sd", *args],
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=stderr,
        text=True,
    )


def read_targets(path: Path) -> list[dict[str, Any]] | None:
    try:
        return list(json.loads(path.read_text()))
    except FileNotFoundError:
        return None


def target_set(path: Path) -> set[str] | None:
    groups = read_targets(path)
    if groups is None:
        return None
    return {t for g in groups for t in g["targets"]}


def member_targets(rz: RunningZone, pool_id: str, port: int) -> set[str]:
    """What the file should list: the pool's running members, read from the zone itself."""
    return {f"{m.address}:{port}" for m in rz.zone.members(pool_id) if m.state == "running"}
