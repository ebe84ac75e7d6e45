"""Bounded exponential backoff, and which failures are worth another try."""

from __future__ import annotations

import random
from dataclasses import dataclass

import requests
from urllib3.exceptions import NewConnectionError

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a call is repeated.

    `attempts` counts the first try. Delays grow as base * 2**n, capped at `max_delay`, with
    full jitter so that many agents hitting one API do not retry in lockstep.
    """

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        ceiling = min(self.max_delay, self.base_delay * (2**retry_number))
        if retry_after is not None:
            return min(self.max_delay, max(retry_after, 0.0))
        return random.uniform(0, ceiling) if self.jitter else ceiling  # noqa: S311


NO_RETRY = RetryPolicy(attempts=1)


def sdk_poll_interval(run_time: float) -> float:
    """Seconds to wait before the next poll of an operation that has run `run_time` seconds.

    The official SDKs' schedule: every 3 s for the first 30 s, then growing linearly to one
    poll a minute at 15 minutes, then every minute (python-exoscale, exoscale/api/v2.py
    `_poll_interval`; egoscale v3 `Client.Wait` uses the same `pollInterval`). A long
    Exoscale operation (about a minute per member) is then read ~20 times, not 600.
    """
    slope = 57 / 870  # from (30 s, 3 s) to (900 s, 60 s)
    interval = slope * run_time + (3 - 30 * slope)
    return min(60.0, max(3.0, interval))


def never_reached_server(exc: BaseException) -> bool:
    """True when the request provably did not reach the API (safe to repeat a mutation)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        cause = exc.args[0] if exc.args else None
        reason = getattr(cause, "reason", cause)
        return isinstance(reason, NewConnectionError)
    return False
