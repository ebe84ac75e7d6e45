"""Run the agent in a worker thread so a signal ends the process at once.

A refresh can be inside an HTTP request with a 10 s timeout when SIGTERM arrives; the main
thread only waits, so it can return within the grace period whatever the worker is doing.
The worker is a daemon thread: an unfinished request dies with the process, and a write
in progress leaves at most a temp file (the target is only ever replaced whole).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install_stop_handlers(stop: threading.Event) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in STOP_SIGNALS:
        signal.signal(signum, handle)


def run_until_stopped(
    work: Callable[[], int], stop: threading.Event, *, grace: float = 0.5, poll: float = 0.05
) -> int:
    """Run `work` in a daemon thread; its exit code, or 0 as soon as `stop` is set.

    An exception raised by `work` is re-raised here, in the caller's thread.
    """
    outcome: dict[str, int | BaseException] = {}

    def target() -> None:
        try:
            outcome["code"] = work()
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="exo-sd-agent", daemon=True)
    worker.start()
    while worker.is_alive() and not stop.is_set():
        worker.join(poll)
    if stop.is_set():
        worker.join(grace)
        return 0
    error = outcome.get("error")
    if isinstance(error, BaseException):
        raise error
    code = outcome.get("code", 1)
    return code if isinstance(code, int) else 1
