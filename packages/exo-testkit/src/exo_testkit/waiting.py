"""Polling with a deadline instead of fixed sleeps: robust on a loaded 2-core machine."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    check: Callable[[], T], timeout: float = 30.0, what: str = "condition", interval: float = 0.05
) -> T:
    """Call `check` until it returns something truthy and return that; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:g}s")
        time.sleep(interval)
