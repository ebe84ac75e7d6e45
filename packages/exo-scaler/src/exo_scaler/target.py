"""The target seam: what the loop knows of the pool, and the two things it may ask of it.

As nomad-autoscaler's Target plugin (sdk/target.go `TargetStatus`), the target answers one
status read per tick — `PoolStatus`: size, state, members with what they are doing, our
operation in flight, the quota's room — and carries out two verbs: `grow(to)` and
`evict(members)`. Which members leave and draining them are the scaler's business
(acting.py); the target only calls the API and follows the operation to its end.
`ExoPoolTarget` (exoscale.py) is the Exoscale instance pool; tests and the lab pass their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Protocol

from exo_client import POOL_UNHEALTHY_STATES

from .intents import Direction

__all__ = [
    "InFlight",
    "Launched",
    "Member",
    "MemberState",
    "OnEnd",
    "PoolStatus",
    "PoolTarget",
]


class MemberState(StrEnum):
    SERVING = "serving"  # the NLB's health check passes (or, without --nlb, the VM runs)
    WARMING = "warming"  # asked for, not serving yet
    DRAINING = "draining"  # leaving: being evicted by us, or destroyed
    UNKNOWN = "unknown"  # running, but the NLB's health could not be read


@dataclass(frozen=True)
class Member:
    id: str
    state: MemberState
    public_ip: str | None = None
    created_at: datetime | None = None
    name: str = ""


@dataclass
class InFlight:
    """Our one operation, from the call to its end; /status shows it. The scaler's own
    preparation (selecting, draining) uses the same shape before the call."""

    action: Direction
    phase: Literal["selecting", "draining", "calling", "waiting"]
    started_at: float
    from_size: int | None
    to_size: int | None
    operation_id: str | None = None
    members: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "phase": self.phase,
            "started_at": self.started_at,
            "from": self.from_size,
            "to": self.to_size,
            "operation_id": self.operation_id,
            "members": list(self.members),
        }


@dataclass(frozen=True)
class Launched:
    """What a verb started: the operation and, for an evict, the members leaving."""

    operation_id: str
    members: tuple[str, ...] = ()


#: Told how our operation ended (`success`, `failure` or `timeout`), before `in_flight` clears.
OnEnd = Callable[[str], Awaitable[None]]


ServingFrom = Literal["nlb", "vm-state"]


@dataclass(frozen=True)
class PoolStatus:
    """The pool as the API described it at this tick's one read (never a local counter)."""

    size: int
    state: str
    id: str = ""
    name: str = ""
    error_reason: str = ""  # why the API says a suspended/degraded pool is so
    # The members with their state; None when the tick did not ask for them, or the list
    # could not be read (members_error says why).
    members: tuple[Member, ...] | None = None
    serving_from: ServingFrom = "vm-state"
    members_error: str | None = None
    # The NLB's answer was refused (403) or names no service for the pool: members' health
    # is unknown and they count as warming until --warm-up-limit. `health_read`: it answered.
    health_refused: str | None = None
    health_read: bool = False
    in_flight: InFlight | None = None
    # How many more instances the organisation's quota allows; None when unlimited, not
    # asked for, or unreadable (quota_error says why).
    quota_room: int | None = None
    quota_error: str | None = None

    @property
    def is_running(self) -> bool:
        return self.state == "running"

    @property
    def is_unhealthy(self) -> bool:
        return self.state in POOL_UNHEALTHY_STATES

    @property
    def serving(self) -> int | None:
        """Members serving now; None when not known this tick."""
        if self.members is None or any(m.state is MemberState.UNKNOWN for m in self.members):
            return None
        return sum(1 for m in self.members if m.state is MemberState.SERVING)

    def counted(self, state: MemberState) -> int:
        return sum(1 for m in self.members or () if m.state is state)


class PoolTarget(Protocol):
    @property
    def pool_id(self) -> str:
        """The pool's id once read, its configured reference before."""
        ...

    @property
    def in_flight(self) -> InFlight | None:
        """The operation the target follows now, None when there is none."""
        ...

    async def status(self, *, members: bool = False, quota: bool = False) -> PoolStatus:
        """Read the pool now — with its members when `members`, with the quota's room when
        `quota` and the pool could take a scale-up (running, nothing in flight). ExoApiError
        when the pool itself cannot be read; a failed member or quota read is reported in the
        status instead."""
        ...

    async def grow(self, to: int, *, on_end: OnEnd | None = None) -> Launched:
        """Ask for `to` members; ExoApiError (ConflictError on a busy pool) when nothing was
        started. Until the operation ends, `in_flight` is set; `on_end` is awaited with its
        result before `in_flight` clears (the demand policy's 2-first step goes on from
        there)."""
        ...

    async def evict(self, members: Sequence[Member], *, on_end: OnEnd | None = None) -> Launched:
        """Remove exactly these members; same errors and tracking as `grow`. `on_end` is
        awaited with the operation's result before `in_flight` clears (the scaler resumes
        members it drained when the evict did not succeed)."""
        ...

    async def close(self) -> None: ...
