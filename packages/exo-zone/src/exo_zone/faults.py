"""Injectable API faults: what makes the lab as unkind as the cloud, set through
`PUT /v2/_lab/faults` (or `ZoneApi.faults = FaultPlan(...)` in-process).

- `rate`/`statuses`/`latency`/`operations`: random error answers (before any work) and latency;
  `retry_after` says whether a 429 carries `Retry-After`.
- `outcome`: the next `count` operations of the given commands are accepted (pending) and then
  end `failure` or `timeout` with a `reason` from the spec's enum; they change nothing.
- `pool_state`: pools go `suspended` or `degraded` with an error reason.
- `quota_instances`: the organisation's instance quota; a scale beyond it is accepted and the
  pool ends `degraded` with a `quota-exceeded` reason (see Zone._pool_operation for why).
- `fresh_operation_404s`: a just-created operation id answers 404 to that many get-operation
  calls before it is readable.
- `rate_limit`: a token bucket over every API call; an empty bucket answers 429, with or
  without `Retry-After`.
- `after_mutation`: the next `count` calls of the given operations do their work and then
  answer a 5xx, so a client that retries blindly repeats a mutation that happened.

Sources for the shapes (cited where each is applied): the operation `state`/`reason` enums are
the shipped openapi.json's `operation` schema; Exoscale documents no rate-limit figures and
no quota answer (DESIGN.md §3 "undocumented"), so those are modelled and say so.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: openapi.json, components/schemas/operation: `state` and `reason` enums
OPERATION_END_STATES = ("failure", "timeout")
OPERATION_REASONS = (
    "busy",
    "conflict",
    "fault",
    "forbidden",
    "incorrect",
    "interrupted",
    "not-found",
    "partial",
    "unavailable",
    "unknown",
    "unsupported",
)
#: `suspended` is in the shipped spec's instance-pool state enum; `degraded` is the 2026 API's
#: (exoscale/egoscale, v3/instance_pool_test.go), absent from the shipped spec.
POOL_FAULT_STATES = ("suspended", "degraded")


@dataclass(frozen=True)
class OperationOutcome:
    state: str = "failure"
    reason: str = "unavailable"
    message: str = "injected operation failure"

    def __post_init__(self) -> None:
        if self.state not in OPERATION_END_STATES:
            raise ValueError(f"outcome state must be one of {OPERATION_END_STATES}")
        if self.reason not in OPERATION_REASONS:
            raise ValueError(f"outcome reason must be one of {OPERATION_REASONS}")


@dataclass
class OutcomeFault:
    """The next `count` operations of `commands` (None: every one) end as `outcome`."""

    outcome: OperationOutcome
    commands: frozenset[str] = field(default_factory=frozenset)  # empty: every command
    count: int | None = 1


@dataclass(frozen=True)
class PoolStateFault:
    state: str
    error_reason: dict[str, str] | None = None
    pools: frozenset[str] = field(default_factory=frozenset)  # empty: every pool

    def __post_init__(self) -> None:
        if self.state not in POOL_FAULT_STATES:
            raise ValueError(f"pool state must be one of {POOL_FAULT_STATES}")


@dataclass
class AfterMutationFault:
    status: int = 503
    operations: frozenset[str] = field(default_factory=frozenset)  # empty: every mutation
    count: int | None = 1

    def __post_init__(self) -> None:
        if not 500 <= self.status <= 599:
            raise ValueError("after_mutation status must be a 5xx")


class TokenBucket:
    """`rate` tokens a second up to `burst`; one token a call. `clock` is injectable so tests
    drain and refill it without waiting."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        retry_after: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate_limit needs rate > 0 and burst >= 1")
        self.rate, self.burst, self.retry_after = rate, burst, retry_after
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> float | None:
        """None when the call may go; else the seconds until a token is there."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return None
            return (1 - self._tokens) / self.rate

    def to_json(self) -> dict[str, Any]:
        return {"rate": self.rate, "burst": self.burst, "retry_after": self.retry_after}


def _count(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass
class FaultPlan:
    rate: float = 0.0
    statuses: tuple[int, ...] = (503,)
    latency: float = 0.0
    operations: frozenset[str] = field(default_factory=frozenset)  # empty: every operation
    seed: int | None = None
    injected: int = 0
    retry_after: bool = True
    outcome: OutcomeFault | None = None
    pool_state: PoolStateFault | None = None
    quota_instances: int | None = None
    fresh_operation_404s: int = 0
    rate_limit: TokenBucket | None = None
    after_mutation: AfterMutationFault | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        if self.latency < 0:
            raise ValueError("latency must be >= 0")
        if not self.statuses or any(not 400 <= s <= 599 for s in self.statuses):
            raise ValueError("statuses must be HTTP error codes (4xx/5xx)")
        if self.quota_instances is not None and self.quota_instances < 0:
            raise ValueError("quota_instances must be >= 0")
        if self.fresh_operation_404s < 0:
            raise ValueError("fresh_operation_404s must be >= 0")
        self._random = random.Random(self.seed)  # noqa: S311
        self._lock = threading.Lock()

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> FaultPlan:
        outcome = body.get("outcome")
        pool_state = body.get("pool_state")
        rate_limit = body.get("rate_limit")
        after = body.get("after_mutation")
        return cls(
            rate=float(body.get("rate", 0.0)),
            statuses=tuple(int(s) for s in body.get("statuses", (503,))),
            latency=float(body.get("latency", 0.0)),
            operations=frozenset(str(o) for o in body.get("operations", ())),
            seed=body.get("seed"),
            retry_after=bool(body.get("retry_after", True)),
            outcome=None
            if outcome is None
            else OutcomeFault(
                outcome=OperationOutcome(
                    state=str(outcome.get("state", "failure")),
                    reason=str(outcome.get("reason", "unavailable")),
                    message=str(outcome.get("message", "injected operation failure")),
                ),
                commands=frozenset(str(c) for c in outcome.get("commands", ())),
                count=_count(outcome.get("count", 1)),
            ),
            pool_state=None
            if pool_state is None
            else PoolStateFault(
                state=str(pool_state["state"]),
                error_reason={str(k): str(v) for k, v in pool_state["error_reason"].items()}
                if pool_state.get("error_reason") is not None
                else None,
                pools=frozenset(str(p) for p in pool_state.get("pools", ())),
            ),
            quota_instances=_count(body.get("quota_instances")),
            fresh_operation_404s=int(body.get("fresh_operation_404s", 0)),
            rate_limit=None
            if rate_limit is None
            else TokenBucket(
                float(rate_limit["rate"]),
                int(rate_limit["burst"]),
                retry_after=bool(rate_limit.get("retry_after", True)),
            ),
            after_mutation=None
            if after is None
            else AfterMutationFault(
                status=int(after.get("status", 503)),
                operations=frozenset(str(o) for o in after.get("operations", ())),
                count=_count(after.get("count", 1)),
            ),
        )

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "rate": self.rate,
            "statuses": list(self.statuses),
            "latency": self.latency,
            "operations": sorted(self.operations),
            "injected": self.injected,
            "retry_after": self.retry_after,
            "quota_instances": self.quota_instances,
            "fresh_operation_404s": self.fresh_operation_404s,
        }
        if self.outcome is not None:
            body["outcome"] = {
                "state": self.outcome.outcome.state,
                "reason": self.outcome.outcome.reason,
                "message": self.outcome.outcome.message,
                "commands": sorted(self.outcome.commands),
                "count": self.outcome.count,
            }
        if self.pool_state is not None:
            body["pool_state"] = {
                "state": self.pool_state.state,
                "error_reason": self.pool_state.error_reason,
                "pools": sorted(self.pool_state.pools),
            }
        if self.rate_limit is not None:
            body["rate_limit"] = self.rate_limit.to_json()
        if self.after_mutation is not None:
            body["after_mutation"] = {
                "status": self.after_mutation.status,
                "operations": sorted(self.after_mutation.operations),
                "count": self.after_mutation.count,
            }
        return body

    def applies_to(self, operation: str) -> bool:
        return not self.operations or operation in self.operations

    def draw_error(self, operation: str) -> int | None:
        """The status to answer with instead of doing the work, or None."""
        if self.rate and self.applies_to(operation) and self._random.random() < self.rate:
            self.injected += 1
            return self._random.choice(self.statuses)
        return None

    def take_outcome(self, command: str) -> OperationOutcome | None:
        """The injected end for a new operation of `command`, consuming one of `count`."""
        fault = self.outcome
        if fault is None or not self._consume(fault, fault.commands, command):
            return None
        return fault.outcome

    def take_after_mutation(self, operation: str) -> int | None:
        """The 5xx to answer after `operation` did its work, consuming one of `count`."""
        fault = self.after_mutation
        if fault is None or not self._consume(fault, fault.operations, operation):
            return None
        return fault.status

    def _consume(
        self, fault: OutcomeFault | AfterMutationFault, names: frozenset[str], name: str
    ) -> bool:
        """Whether a counted fault applies to `name` (empty `names`: to all), taking one."""
        with self._lock:
            if names and name not in names:
                return False
            if fault.count is not None:
                if fault.count <= 0:
                    return False
                fault.count -= 1
            self.injected += 1
            return True

    def throttle(self) -> tuple[int, dict[str, str]] | None:
        """(429, headers) when the rate limit's bucket is empty, else None."""
        if self.rate_limit is None:
            return None
        wait = self.rate_limit.take()
        if wait is None:
            return None
        self.injected += 1
        # Whole seconds, rounded up: Retry-After's delay-seconds form (RFC 9110 §10.2.3).
        seconds = str(max(1, math.ceil(wait)))
        return 429, {"Retry-After": seconds} if self.rate_limit.retry_after else {}
