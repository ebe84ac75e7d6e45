"""The zone's state, record by record, and the frozen snapshots the zone hands out.

The mutable records (`Pool`, `Instance`, `Operation`, `LoadBalancer`, `LbService`) belong to
the zone and change only under its lock. Callers outside exo-zone read the zone through its
snapshot methods (`Zone.pool_snapshot`, `Zone.members`, ...), which copy what they need into
the frozen `...Snapshot` types here while holding the lock, so a caller never takes the lock
and never sees a record change under it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .catalog import InstanceType
from .faults import OperationOutcome

SLOW_WEB_PORT = 8080


class ZoneError(Exception):
    """An API-level refusal: carries the HTTP status and Exoscale-style message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class HealthCheck:
    mode: str = "http"
    port: int = SLOW_WEB_PORT
    uri: str = "/health"
    interval: float = 10.0
    timeout: float = 5.0
    retries: int = 1

    def to_api(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "mode": self.mode,
            "port": self.port,
            # The API speaks whole seconds; sped-up labs round up to 1.
            "interval": max(1, round(self.interval)),
            "timeout": max(1, round(self.timeout)),
            "retries": self.retries,
        }
        if self.mode == "http":
            body["uri"] = self.uri
        return body


@dataclass
class Instance:
    id: str
    name: str
    pool_id: str
    address: str
    itype: InstanceType
    created_at: datetime
    boot_started: float
    state: str = "starting"
    #: the runtime started the member's software (its VM finished booting)
    launched: bool = False


@dataclass
class Pool:
    id: str
    name: str
    size: int
    itype: InstanceType
    disk_size: int = 10
    state: str = "running"
    member_ids: list[str] = field(default_factory=list)
    #: members being destroyed: still listed in `instances` until gone (`instances` lags `size`)
    leaving_ids: list[str] = field(default_factory=list)
    #: zone-clock times at which members the pool decided to create will appear
    pending_creations: list[float] = field(default_factory=list)
    #: 2026 API field (see `bodies.pool_body`): why the pool is degraded or suspended
    error_reason: dict[str, str] | None = None
    #: the state the pool returns to once a scaling converges (`degraded` after a quota error)
    settles_to: str = "running"


@dataclass
class Operation:
    id: str
    reference_id: str
    reference_kind: str
    command: str
    ready_at: float
    #: zone-clock time the operation was created
    started_at: float
    done_when: Callable[[], bool] = lambda: True
    state: str = "pending"
    reason: str | None = None
    message: str | None = None
    on_success: Callable[[], None] = lambda: None
    #: past this zone-clock time a still-unconverged operation ends `timeout`
    deadline: float = float("inf")
    #: an injected end (failure/timeout with a reason) replacing success at `ready_at`
    forced: OperationOutcome | None = None
    #: get-operation answers 404 this many more times (a just-created id not yet readable)
    hidden_reads: int = 0


@dataclass
class LbService:
    id: str
    name: str
    port: int
    target_port: int
    pool_id: str
    healthcheck: HealthCheck
    protocol: str = "tcp"
    strategy: str = "round-robin"


@dataclass
class LoadBalancer:
    id: str
    name: str
    ip: str
    created_at: datetime
    services: list[LbService] = field(default_factory=list)


class AddressPool:
    """Member addresses from one loopback /24, so several zones can run side by side."""

    def __init__(self, network: str) -> None:
        net = ipaddress.ip_network(network)
        if not net.is_loopback:
            raise ValueError(f"member network {network} must be inside 127.0.0.0/8")
        # .1 is often the host's own name in /etc/hosts; members start at .2.
        self._free = [str(h) for h in net.hosts()][1:]
        self._used: set[str] = set()

    def take(self) -> str:
        for address in self._free:
            if address not in self._used:
                self._used.add(address)
                return address
        raise ZoneError(409, "no free member address left in this zone's network")

    def give_back(self, address: str) -> None:
        self._used.discard(address)


# -- snapshots: what callers outside the zone read ----------------------------------------------


@dataclass(frozen=True)
class InstanceSnapshot:
    id: str
    name: str
    pool_id: str
    address: str
    state: str
    instance_type: str
    created_at: datetime
    #: zone-clock (time.monotonic unless the zone was given another clock) creation time: when
    #: billing starts (exo-lab's billed instance-seconds), finer than `created_at`'s second
    started_at: float

    @classmethod
    def of(cls, inst: Instance) -> InstanceSnapshot:
        return cls(
            id=inst.id,
            name=inst.name,
            pool_id=inst.pool_id,
            address=inst.address,
            state=inst.state,
            instance_type=inst.itype.name,
            created_at=inst.created_at,
            started_at=inst.boot_started,
        )


@dataclass(frozen=True)
class PoolSnapshot:
    id: str
    name: str
    size: int
    state: str
    instance_type: str
    #: the pool's members, oldest first
    member_ids: tuple[str, ...]
    #: members being destroyed, still listed in the pool's `instances`
    leaving_ids: tuple[str, ...]
    error_reason: dict[str, str] | None

    @classmethod
    def of(cls, pool: Pool) -> PoolSnapshot:
        return cls(
            id=pool.id,
            name=pool.name,
            size=pool.size,
            state=pool.state,
            instance_type=pool.itype.name,
            member_ids=tuple(pool.member_ids),
            leaving_ids=tuple(pool.leaving_ids),
            error_reason=dict(pool.error_reason) if pool.error_reason is not None else None,
        )


@dataclass(frozen=True)
class OperationSnapshot:
    id: str
    command: str
    reference_id: str
    state: str
    reason: str | None
    message: str | None
    #: zone-clock (time.monotonic unless the zone was given another clock) creation time
    started_at: float

    @classmethod
    def of(cls, op: Operation) -> OperationSnapshot:
        return cls(
            id=op.id,
            command=op.command,
            reference_id=op.reference_id,
            state=op.state,
            reason=op.reason,
            message=op.message,
            started_at=op.started_at,
        )


@dataclass(frozen=True)
class ServiceSnapshot:
    """One NLB service as a balancer needs it: where it listens, what it checks, and the
    (instance id, address) of every member of its pool, oldest first."""

    id: str
    name: str
    load_balancer_id: str
    ip: str
    port: int
    target_port: int
    pool_id: str
    healthcheck: HealthCheck
    members: tuple[tuple[str, str], ...]
