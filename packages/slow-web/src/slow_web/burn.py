"""The CPU work itself. Runs inside pool worker processes, never on the event loop."""

from __future__ import annotations

import os
import signal
import time
from typing import NamedTuple

# Work between two clock reads: small enough to stop within ~0.1 ms of the target,
# big enough that reading the thread CPU clock (a syscall) is a small share of the time.
_CHUNK = 2000


class BurnResult(NamedTuple):
    started_monotonic: float
    cpu_seconds: float
    wall_seconds: float
    worker_pid: int


def burn_cpu(cpu_seconds: float) -> BurnResult:
    """Busy-loop until this thread has consumed `cpu_seconds` of CPU time.

    CPU time, not wall time: on a throttled or shared CPU the request takes longer, the way
    real work does, and the work per request stays what was asked for.
    """
    started = time.monotonic()
    cpu_start = time.thread_time()
    target = cpu_start + cpu_seconds
    accumulator = 0
    while time.thread_time() < target:
        for i in range(_CHUNK):
            accumulator = (accumulator + i * i) % 1_000_003
    return BurnResult(
        started_monotonic=started,
        cpu_seconds=time.thread_time() - cpu_start,
        wall_seconds=time.monotonic() - started,
        worker_pid=os.getpid(),
    )


def mark_started() -> float:
    """Cheap task used to start every worker eagerly and to report the worker's clock."""
    return time.monotonic()


def init_worker(nice: int) -> None:
    """Prepare a freshly forked worker.

    The parent's asyncio signal handlers are inherited through fork and would make the
    worker ignore SIGTERM/SIGINT; the parent owns shutdown, so workers get plain defaults
    and ignore SIGINT (a terminal Ctrl-C reaches the whole process group).
    Raising the nice value lets the event loop process win the CPU from busy workers,
    which keeps /health fast at 100 % CPU.
    """
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if nice:
        os.nice(nice)
