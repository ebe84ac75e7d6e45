"""Process groups of members: signal them, and kill what a dead lab left behind.

A member is a session leader, so its group holds slow-web and every worker it forked. Pidfiles
record the leader's start time, which is what tells a leftover group from a recycled id.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Any

import psutil


def signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def create_time(pid: int) -> float:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return time.time()


def kill_groups(leaders: dict[int, float]) -> None:
    """SIGKILL every process in the recorded groups that is not older than its leader was.

    The age check keeps a recycled process-group id from costing an unrelated process.
    """
    for proc in psutil.process_iter(["pid", "create_time"]):
        info: dict[str, Any] = proc.info
        try:
            pgid = os.getpgid(info["pid"])
        except (ProcessLookupError, PermissionError):
            continue
        born = leaders.get(pgid)
        if born is not None and info["create_time"] is not None and info["create_time"] >= born - 1:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(info["pid"], signal.SIGKILL)
