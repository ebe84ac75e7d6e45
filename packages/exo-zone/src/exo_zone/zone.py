"""The lab zone's state: pools, members, operations and load balancers, behaving like Exoscale.

Everything here is synchronous and guarded by one lock; `tick()` advances time-driven
transitions (boot, async operations, replacement of dead members) and is called by a
background thread. Member processes are the runtime's business (see runtime.py).
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .catalog import INSTANCE_TYPES, InstanceType, instance_type_by_name
from .runtime import MemberRuntime, RecordRuntime

log = logging.getLogger(__name__)

MAX_POOL_SIZE = 250
TEMPLATE_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "exo-lab/template/debian-12"))
SLOW_WEB_PORT = 8080


class ZoneError(Exception):
    """An API-level refusal: carries the HTTP status and Exoscale-style message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ZoneTimings:
    """Seconds; the lab's --speed divides them all."""

    boot_delay: float = 30.0
    operation_delay: float = 5.0
    tick_interval: float = 0.1

    def scaled(self, speed: float) -> ZoneTimings:
        return ZoneTimings(
            boot_delay=self.boot_delay / speed,
            operation_delay=self.operation_delay / speed,
            tick_interval=min(self.tick_interval, max(0.02, self.tick_interval / speed)),
        )


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


@dataclass
class Operation:
    id: str
    reference_id: str
    reference_kind: str
    command: str
    ready_at: float
    done_when: Callable[[], bool] = lambda: True
    state: str = "pending"
    reason: str | None = None
    message: str | None = None
    on_success: Callable[[], None] = lambda: None


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


def _always() -> bool:
    return True


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


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


class Zone:
    def __init__(
        self,
        name: str = "ch-gva-2",
        *,
        timings: ZoneTimings | None = None,
        runtime: MemberRuntime | None = None,
        member_network: str = "127.0.1.0/24",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.timings = timings or ZoneTimings()
        self.runtime: MemberRuntime = runtime or RecordRuntime()
        self.addresses = AddressPool(member_network)
        self.clock = clock
        self.pools: dict[str, Pool] = {}
        self.instances: dict[str, Instance] = {}
        self.operations: dict[str, Operation] = {}
        self.load_balancers: dict[str, LoadBalancer] = {}
        #: service id -> {member address: healthy}; the data plane's balancer fills it
        self.health_source: Callable[[str], dict[str, bool]] | None = None
        self.lock = threading.RLock()
        self._stopper = ThreadPoolExecutor(max_workers=8, thread_name_prefix="zone-stop")

    # -- seeding (not an API operation: how a lab zone starts) ------------------------------

    def create_pool(
        self, name: str, size: int, instance_type: str = "standard.tiny", disk_size: int = 10
    ) -> Pool:
        with self.lock:
            if any(p.name == name for p in self.pools.values()):
                raise ValueError(f"a pool named {name!r} exists already")
            pool = Pool(
                id=str(uuid.uuid4()),
                name=name,
                size=0,
                itype=instance_type_by_name(instance_type),
                disk_size=disk_size,
            )
            self.pools[pool.id] = pool
            self._grow(pool, size)
            pool.size = size
            return pool

    def create_load_balancer(
        self,
        name: str,
        pool_id: str,
        *,
        port: int,
        ip: str = "127.0.0.1",
        target_port: int = SLOW_WEB_PORT,
        healthcheck: HealthCheck | None = None,
    ) -> LoadBalancer:
        with self.lock:
            if pool_id not in self.pools:
                raise ValueError(f"no pool {pool_id}")
            lb = LoadBalancer(id=str(uuid.uuid4()), name=name, ip=ip, created_at=_now())
            lb.services.append(
                LbService(
                    id=str(uuid.uuid4()),
                    name=f"{name}-http",
                    port=port,
                    target_port=target_port,
                    pool_id=pool_id,
                    healthcheck=healthcheck or HealthCheck(port=target_port),
                )
            )
            self.load_balancers[lb.id] = lb
            return lb

    # -- API operations ---------------------------------------------------------------------

    def pool(self, pool_id: str) -> Pool:
        pool = self.pools.get(pool_id)
        if pool is None:
            raise ZoneError(404, f"instance pool {pool_id} not found")
        return pool

    def instance(self, instance_id: str) -> Instance:
        inst = self.instances.get(instance_id)
        if inst is None:
            raise ZoneError(404, f"instance {instance_id} not found")
        return inst

    def members(self, pool_id: str) -> list[Instance]:
        with self.lock:
            return [self.instances[i] for i in self.pool(pool_id).member_ids]

    def scale(self, pool_id: str, size: int) -> Operation:
        with self.lock:
            pool = self.pool(pool_id)
            if not 0 <= size <= MAX_POOL_SIZE:
                raise ZoneError(400, f"invalid size {size}: must be between 0 and {MAX_POOL_SIZE}")
            self._require_running(pool)
            if size > pool.size:
                pool.state = "scaling-up"
                self._grow(pool, size - pool.size)
                done_when: Callable[[], bool] = _always
            elif size < pool.size:
                pool.state = "scaling-down"
                # Exoscale chooses which members go; the lab drops the newest.
                leaving = pool.member_ids[size:]
                self._shrink(pool, leaving)
                done_when = self._gone(leaving)
            else:
                done_when = _always
            pool.size = size
            return self._pool_operation(pool, "scale-instance-pool", done_when)

    def evict(self, pool_id: str, instance_ids: list[str]) -> Operation:
        with self.lock:
            pool = self.pool(pool_id)
            if not instance_ids:
                raise ZoneError(400, "instances: at least one instance is required")
            unknown = [i for i in instance_ids if i not in pool.member_ids]
            if unknown:
                raise ZoneError(400, f"instances not in pool {pool_id}: {', '.join(unknown)}")
            self._require_running(pool)
            pool.state = "scaling-down"
            ids = list(dict.fromkeys(instance_ids))
            self._shrink(pool, ids)
            pool.size -= len(ids)
            return self._pool_operation(pool, "evict-instance-pool-members", self._gone(ids))

    def delete_instance(self, instance_id: str) -> Operation:
        """Deleting a pool member: Exoscale's pool notices and boots a replacement."""
        with self.lock:
            inst = self.instance(instance_id)
            pool = self.pool(inst.pool_id)
            self._shrink(pool, [instance_id])
            self._grow(pool, 1)
            return self._operation(
                instance_id, "instance", "delete-instance", self._gone([instance_id])
            )

    def operation(self, operation_id: str) -> Operation:
        op = self.operations.get(operation_id)
        if op is None:
            raise ZoneError(404, f"operation {operation_id} not found")
        return op

    def health_of(self, service: LbService) -> dict[str, bool]:
        if self.health_source is not None:
            return self.health_source(service.id)
        return {
            inst.address: inst.state == "running"
            for inst in (self.instances[i] for i in self.pool(service.pool_id).member_ids)
        }

    # -- time -------------------------------------------------------------------------------

    def tick(self) -> None:
        with self.lock:
            now = self.clock()
            for inst in list(self.instances.values()):
                if inst.state not in ("starting", "running"):
                    continue
                if not inst.launched:
                    if now >= inst.boot_started + self.timings.boot_delay:
                        self._launch(inst)
                elif not self.runtime.is_alive(inst.id):
                    log.warning(
                        "member %s (%s) died; the pool replaces it", inst.name, inst.address
                    )
                    pool = self.pools[inst.pool_id]
                    self._shrink(pool, [inst.id])
                    self._grow(pool, 1)
                elif inst.state == "starting" and self.runtime.is_ready(inst.id):
                    inst.state = "running"
                    log.info("member %s (%s) running", inst.name, inst.address)
            for op in self.operations.values():
                if op.state == "pending" and now >= op.ready_at and op.done_when():
                    op.state = "success"
                    op.on_success()

    def kill_member(self, instance_id: str) -> None:
        """Lab-only: the member's software dies at once; the pool notices and replaces it."""
        with self.lock:
            inst = self.instance(instance_id)
            if not inst.launched or inst.state not in ("starting", "running"):
                raise ZoneError(409, f"instance {instance_id} is not running ({inst.state})")
            try:
                self.runtime.kill(instance_id)
            except KeyError:
                raise ZoneError(409, f"instance {instance_id} has no process to kill") from None

    def close(self) -> None:
        with self.lock:
            ids = list(self.instances)
        # In parallel: each graceful stop may wait for a drain.
        list(self._stopper.map(self.runtime.stop, ids))
        self.runtime.close()
        self._stopper.shutdown(wait=True, cancel_futures=True)

    # -- internals --------------------------------------------------------------------------

    def _require_running(self, pool: Pool) -> None:
        if pool.state != "running":
            # Undocumented at Exoscale; the lab answers like a busy resource.
            raise ZoneError(409, f"instance pool {pool.id} is busy ({pool.state})")

    def _pool_operation(self, pool: Pool, command: str, done_when: Callable[[], bool]) -> Operation:
        """A pool operation: when it succeeds the pool is `running` again."""

        def settle() -> None:
            pool.state = "running"

        return self._operation(pool.id, "instance-pool", command, done_when, settle)

    def _operation(
        self,
        reference_id: str,
        reference_kind: str,
        command: str,
        done_when: Callable[[], bool],
        on_success: Callable[[], None] = lambda: None,
    ) -> Operation:
        op = Operation(
            id=str(uuid.uuid4()),
            reference_id=reference_id,
            reference_kind=reference_kind,
            command=command,
            ready_at=self.clock() + self.timings.operation_delay,
            done_when=done_when,
            on_success=on_success,
        )
        self.operations[op.id] = op
        return op

    def _gone(self, instance_ids: list[str]) -> Callable[[], bool]:
        return lambda: not any(i in self.instances for i in instance_ids)

    def _grow(self, pool: Pool, count: int) -> None:
        for _ in range(count):
            inst = Instance(
                id=str(uuid.uuid4()),
                name=f"pool-{pool.name[:20]}-{secrets.token_hex(3)[:5]}",
                pool_id=pool.id,
                address=self.addresses.take(),
                itype=pool.itype,
                created_at=_now(),
                boot_started=self.clock(),
            )
            self.instances[inst.id] = inst
            pool.member_ids.append(inst.id)

    def _launch(self, inst: Instance) -> None:
        inst.launched = True
        try:
            self.runtime.start(inst.id, inst.address, inst.itype.cpus, name=inst.name)
        except Exception:
            # The member stays `starting` for good, as a VM whose software never came up.
            log.exception("member %s (%s) failed to start", inst.name, inst.address)

    def _shrink(self, pool: Pool, instance_ids: list[str]) -> None:
        for instance_id in instance_ids:
            inst = self.instances[instance_id]
            inst.state = "destroying"
            pool.member_ids.remove(instance_id)
            self._stopper.submit(self._stop_member, inst)

    def _stop_member(self, inst: Instance) -> None:
        try:
            self.runtime.stop(inst.id)
        except Exception:
            log.exception("stopping member %s failed", inst.name)
        with self.lock:
            self.instances.pop(inst.id, None)
            self.addresses.give_back(inst.address)

    # -- API bodies -------------------------------------------------------------------------

    def pool_body(self, pool: Pool) -> dict[str, Any]:
        return {
            "id": pool.id,
            "name": pool.name,
            "size": pool.size,
            "state": pool.state,
            "instances": [{"id": i} for i in pool.member_ids],
            "instance-type": {"id": pool.itype.id},
            "template": {"id": TEMPLATE_ID},
            "disk-size": pool.disk_size,
            "instance-prefix": f"pool-{pool.name[:20]}",
            "public-ip-assignment": "inet4",
            "ipv6-enabled": False,
            "labels": {},
            "security-groups": [],
            "anti-affinity-groups": [],
        }

    def instance_body(self, inst: Instance) -> dict[str, Any]:
        return {
            "id": inst.id,
            "name": inst.name,
            "state": inst.state,
            "public-ip": inst.address,
            "public-ip-assignment": "inet4",
            "created-at": _iso(inst.created_at),
            "instance-type": {"id": inst.itype.id},
            "template": {"id": TEMPLATE_ID},
            "manager": {"id": inst.pool_id, "type": "instance-pool"},
            "disk-size": self.pools[inst.pool_id].disk_size if inst.pool_id in self.pools else 10,
            "labels": {},
            "security-groups": [],
        }

    def operation_body(self, op: Operation) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": op.id,
            "state": op.state,
            "reference": {
                "id": op.reference_id,
                "link": f"/v2/{op.reference_kind}/{op.reference_id}",
                "command": op.command,
            },
        }
        if op.reason:
            body["reason"] = op.reason
        if op.message:
            body["message"] = op.message
        return body

    def load_balancer_body(self, lb: LoadBalancer) -> dict[str, Any]:
        services = []
        for svc in lb.services:
            health = self.health_of(svc)
            services.append(
                {
                    "id": svc.id,
                    "name": svc.name,
                    "protocol": svc.protocol,
                    "strategy": svc.strategy,
                    "port": svc.port,
                    "target-port": svc.target_port,
                    "state": "running",
                    "instance-pool": {"id": svc.pool_id},
                    "healthcheck": svc.healthcheck.to_api(),
                    "healthcheck-status": [
                        {"public-ip": ip, "status": "success" if ok else "failure"}
                        for ip, ok in sorted(health.items())
                    ],
                }
            )
        return {
            "id": lb.id,
            "name": lb.name,
            "ip": lb.ip,
            "state": "running",
            "created-at": _iso(lb.created_at),
            "services": services,
            "labels": {},
        }

    def instance_types_body(self) -> list[dict[str, object]]:
        return [t.to_api(self.name) for t in INSTANCE_TYPES]
