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


def never_reached_server(exc: BaseException) -> bool:
    """True when the request provably did not reach the API (safe to repeat a mutation)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        cause = exc.args[0] if exc.args else None
        reason = getattr(cause, "reason", cause)
        return isinstance(reason, NewConnectionError)
    return False
