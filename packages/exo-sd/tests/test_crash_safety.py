"""kill -9 at random moments while the pool changes: the file is never partial."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sd_support import agent_env, start_agent, wait_for

from exo_testkit import running_zone
from exo_zone import ZoneError, ZoneTimings

pytestmark = pytest.mark.integration
KILLS = 30
QUICK = ZoneTimings(boot_delay=0.05, operation_delay=0.05, tick_interval=0.01)


def assert_complete(content: bytes, pool_id: str) -> None:
    groups: Any = json.loads(content)  # a partial file fails right here
    assert isinstance(groups, list)
    for group in groups:
        assert len(group["targets"]) == 1
        assert group["labels"]["pool_id"] == pool_id


def test_kill_9_never_leaves_a_partial_file(tmp_path: Path) -> None:
    rnd = random.Random(4)
    out = tmp_path / "sd" / "targets.json"
    with running_zone({"web": 3}, timings=QUICK) as rz:
        pool_id = rz.pools["web"].id
        env = agent_env(rz, pool_id)
        stop = threading.Event()

        def churn() -> None:
            while not stop.wait(0.08):
                # ZoneError: still busy with the previous change
                with contextlib.suppress(ZoneError):
                    rz.zone.scale(pool_id, rnd.randint(0, 40))

        churner = threading.Thread(target=churn, daemon=True)
        churner.start()
        seen: set[bytes] = set()
        try:
            for _ in range(KILLS):
                agent = start_agent(
                    ["--interval", "0.05", "--out", str(out), "--log-level", "error"],
                    env,
                    stderr=subprocess.DEVNULL,
                )
                # Kill it while it is busy writing, not while the interpreter still starts (on a
                # loaded machine that takes longer than any fixed delay): wait for its first
                # write (a new file replaces the old one), then let it run a random while.
                wait_for(_replaced(out), timeout=30, what="the agent's first write")
                time.sleep(rnd.uniform(0.05, 0.5))
                assert agent.poll() is None, "the agent exited on its own"
                agent.send_signal(signal.SIGKILL)
                agent.wait(10)
                if out.exists():
                    content = out.read_bytes()
                    assert_complete(content, pool_id)
                    seen.add(content)
        finally:
            stop.set()
            churner.join(5)
        # The loop must have exercised many different files, or it proved nothing.
        assert len(seen) >= 5

        # A clean run sweeps the temp files killed runs left, and writes a complete file.
        final = start_agent(["--once", "--out", str(out)], env)
        _, stderr = final.communicate(timeout=30)
        assert final.returncode == 0, stderr
        assert_complete(out.read_bytes(), pool_id)
        assert [p.name for p in out.parent.iterdir()] == ["targets.json"]


def _replaced(path: Path) -> Callable[[], bool]:
    """True once `path` is a different file than it is now (atomic writes replace it)."""
    before = _inode(path)
    return lambda: _inode(path) not in (None, before)


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None
