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
from .faults import FaultPlan, OperationOutcome
from .runtime import MemberRuntime, RecordRuntime, runs_at_boot

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
    """Seconds; the lab's --speed divides them all.

    A pool operation ends when the pool has converged (every member `running`, every leaving
    member gone), never before `operation_delay`: on Exoscale the pool stays `scaling-up` until
    its members run (cluster-autoscaler's Exoscale provider polls get-instance-pool until
    `state == "running"` after every scale and evict: kubernetes/autoscaler,
    cluster-autoscaler/cloudprovider/exoscale/exoscale_node_group_instance_pool.go,
    waitUntilRunning), so the operation lasts about one member boot, not a fixed 5 s.

    - `boot_delay`: a member from `starting` to `running` (its VM boots).
    - `operation_delay`: the least time an operation stays `pending` (API-side work).
    - `create_delay`: a scale-up's new members appear in the pool's `instances` (and in
      list-instances) this long after the pool's `size` changed: `instances` lags `size`.
    - `converge_timeout`: an operation whose pool has not converged by then ends `timeout`
      (the pool stays busy until it does converge). 600 s is the budget issue 13's audit
      reports for cluster-autoscaler's wait for `running` (its pollCmd; the exact constant was
      not re-read here), the longest wait a known client gives a pool.
    """

    boot_delay: float = 30.0
    operation_delay: float = 5.0
    tick_interval: float = 0.1
    create_delay: float = 0.0
    converge_timeout: float = 600.0

    @classmethod
    def instant(cls) -> ZoneTimings:
        """Everything as soon as the next tick: for unit tests that test logic, not time."""
        return cls(boot_delay=0.0, operation_delay=0.0, tick_interval=0.01, converge_timeout=60.0)

    @classmethod
    def fast(cls) -> ZoneTimings:
        """Sub-second but still asynchronous (pending, scaling-up and starting are visible)."""
        return cls(boot_delay=0.3, operation_delay=0.3, tick_interval=0.02, converge_timeout=60.0)

    @classmethod
    def realistic(cls) -> ZoneTimings:
        """Speed-1 timing: a VM boots in about 30 s, the API accepts in about 5 s, new members
        appear a few seconds after the size changed."""
        return cls(create_delay=3.0)

    def scaled(self, speed: float) -> ZoneTimings:
        return ZoneTimings(
            boot_delay=self.boot_delay / speed,
            operation_delay=self.operation_delay / speed,
            tick_interval=min(self.tick_interval, max(0.02, self.tick_interval / speed)),
            create_delay=self.create_delay / speed,
            converge_timeout=self.converge_timeout / speed,
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
    #: members being destroyed: still listed in `instances` until gone (`instances` lags `size`)
    leaving_ids: list[str] = field(default_factory=list)
    #: zone-clock times at which members the pool decided to create will appear
    pending_creations: list[float] = field(default_factory=list)
    #: 2026 API field (see `Zone.pool_body`): why the pool is degraded or suspended
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
        #: the API's fault plan; the zone reads the parts that change state (outcomes, quota)
        self.faults = FaultPlan()
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
            self._require_scalable(pool)
            command = "scale-instance-pool"
            forced = self.faults.take_outcome(command)
            if size != pool.size:
                pool.state = "scaling-up" if size > pool.size else "scaling-down"
            if forced is not None:
                # An operation that ends in failure/timeout changed nothing: the pool is busy
                # for the operation's duration, then back as it was.
                return self._pool_operation(pool, command, forced=forced)
            shortfall = 0
            if size > pool.size:
                wanted = size - pool.size
                creatable = self._creatable(wanted)
                shortfall = wanted - creatable
                self._grow(pool, creatable, delay=self.timings.create_delay)
            elif size < pool.size:
                # Exoscale chooses which members go; the lab drops the newest (not-yet-created
                # members first, as they are the newest of all).
                drop = pool.size - size
                cancelled = min(drop, len(pool.pending_creations))
                del pool.pending_creations[len(pool.pending_creations) - cancelled :]
                self._shrink(pool, pool.member_ids[len(pool.member_ids) - (drop - cancelled) :])
            pool.size = size
            if shortfall:
                return self._pool_operation(pool, command, quota_shortfall=shortfall)
            # Scaling out of `degraded` is how a user repairs a pool: it settles `running`
            # (at once when the size did not change, as nothing is left to converge).
            pool.settles_to, pool.error_reason = "running", None
            if pool.state == "degraded":
                pool.state = "running"
            return self._pool_operation(pool, command)

    def evict(self, pool_id: str, instance_ids: list[str]) -> Operation:
        with self.lock:
            pool = self.pool(pool_id)
            if not instance_ids:
                raise ZoneError(400, "instances: at least one instance is required")
            unknown = [i for i in instance_ids if i not in pool.member_ids]
            if unknown:
                raise ZoneError(400, f"instances not in pool {pool_id}: {', '.join(unknown)}")
            self._require_scalable(pool)
            command = "evict-instance-pool-members"
            pool.state = "scaling-down"
            forced = self.faults.take_outcome(command)
            if forced is not None:
                # A failed evict leaves the members in the pool, running: the caller must
                # notice (a drained member stays drained unless the caller resumes it).
                return self._pool_operation(pool, command, forced=forced)
            ids = list(dict.fromkeys(instance_ids))
            self._shrink(pool, ids)
            pool.size -= len(ids)
            return self._pool_operation(pool, command)

    def delete_instance(self, instance_id: str) -> Operation:
        """Deleting a pool member: Exoscale's pool notices and boots a replacement."""
        with self.lock:
            inst = self.instance(instance_id)
            if inst.state == "destroying":
                raise ZoneError(409, f"instance {instance_id} is being destroyed")
            pool = self.pool(inst.pool_id)
            self._shrink(pool, [instance_id])
            self._grow(pool, 1, delay=self.timings.create_delay)
            return self._operation(
                instance_id, "instance", "delete-instance", self._gone([instance_id])
            )

    def operation(self, operation_id: str) -> Operation:
        op = self.operations.get(operation_id)
        if op is not None and op.hidden_reads > 0:
            # Injected: a just-created operation id that the API cannot read yet.
            op.hidden_reads -= 1
            op = None
        if op is None:
            raise ZoneError(404, f"operation {operation_id} not found")
        return op

    def converged(self, pool: Pool) -> bool:
        """Every member the pool wants exists and runs, every leaving member is gone."""
        return (
            not pool.pending_creations
            and not pool.leaving_ids
            and all(self.instances[i].state == "running" for i in pool.member_ids)
        )

    def set_pool_fault(
        self, pool_ids: frozenset[str], state: str | None, error_reason: dict[str, str] | None
    ) -> None:
        """Lab-only: put pools (all when `pool_ids` is empty) into `suspended`/`degraded` with an
        error reason, or (state None) take back a fault put earlier."""
        with self.lock:
            for pool in self.pools.values():
                if pool_ids and pool.id not in pool_ids:
                    continue
                if state is None:
                    if pool.state in ("suspended", "degraded"):
                        pool.state, pool.error_reason = "running", None
                    pool.settles_to = "running"
                else:
                    pool.state, pool.error_reason = state, error_reason
                    pool.settles_to = state

    def health_of(self, service: LbService) -> dict[str, bool]:
        if self.health_source is not None:
            return self.health_source(service.id)
        # Without a data plane, a member is healthy when its VM runs and its app is ready.
        return {
            inst.address: inst.state == "running" and self.runtime.is_ready(inst.id)
            for inst in (self.instances[i] for i in self.pool(service.pool_id).member_ids)
        }

    # -- time -------------------------------------------------------------------------------

    def tick(self) -> None:
        with self.lock:
            now = self.clock()
            for pool in self.pools.values():
                due = [t for t in pool.pending_creations if t <= now]
                if due:
                    pool.pending_creations = [t for t in pool.pending_creations if t > now]
                    self._grow(pool, len(due))
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
                    self._grow(pool, 1, delay=self.timings.create_delay)
                elif inst.state == "starting" and self.runtime.is_ready(inst.id):
                    inst.state = "running"
                    log.info("member %s (%s) running", inst.name, inst.address)
            busy: set[str] = set()
            for op in self.operations.values():
                if op.state != "pending":
                    continue
                if op.forced is not None:
                    if now >= op.ready_at:
                        op.state, op.reason = op.forced.state, op.forced.reason
                        op.message = op.forced.message
                elif now >= op.ready_at and op.done_when():
                    op.state = "success"
                    op.on_success()
                elif now >= op.deadline:
                    op.state, op.reason = "timeout", "unavailable"
                    op.message = "the instance pool did not converge in time"
                if op.state == "pending":
                    busy.add(op.reference_id)
            for pool in self.pools.values():
                # A pool leaves scaling-up/-down once its members converged and no operation on
                # it is pending (a timed-out operation leaves the pool busy until it converges).
                if (
                    pool.state in ("scaling-up", "scaling-down")
                    and pool.id not in busy
                    and self.converged(pool)
                ):
                    pool.state = pool.settles_to

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

    def _require_scalable(self, pool: Pool) -> None:
        # Undocumented at Exoscale; the lab answers like a busy resource. A `degraded` pool
        # accepts a scale (the lab's assumption: it is how a user repairs it, e.g. scaling back
        # within the quota); a `suspended` one does not.
        if pool.state not in ("running", "degraded"):
            raise ZoneError(409, f"instance pool {pool.id} is busy ({pool.state})")

    def _creatable(self, wanted: int) -> int:
        """How many of `wanted` new instances the organisation's instance quota allows."""
        quota = self.faults.quota_instances
        if quota is None:
            return wanted
        return max(0, min(wanted, quota - self._instances_counted()))

    def _instances_counted(self) -> int:
        """What the instance quota counts: every instance not being destroyed, and the ones a
        pool is about to create."""
        alive = sum(1 for i in self.instances.values() if i.state != "destroying")
        return alive + sum(len(p.pending_creations) for p in self.pools.values())

    def quota_body(self, entity: str) -> dict[str, Any]:
        """openapi.json `get-quota` → `quota` {resource, usage, limit (-1: unlimited)}. Only the
        instance quota is modelled (cluster-autoscaler's Exoscale provider reads "instance");
        any other entity is a 404, the harsher answer, since the lab cannot say its usage."""
        if entity != "instance":
            raise ZoneError(404, f"quota {entity} not found")
        with self.lock:
            limit = self.faults.quota_instances
            return {
                "resource": "instance",
                "usage": self._instances_counted(),
                "limit": -1 if limit is None else limit,
            }

    def _pool_operation(
        self,
        pool: Pool,
        command: str,
        *,
        forced: OperationOutcome | None = None,
        quota_shortfall: int = 0,
    ) -> Operation:
        """A pool operation: it succeeds once the pool converged, and the pool then settles."""
        op = self._operation(pool.id, "instance-pool", command, lambda: self.converged(pool))
        op.forced = forced
        if quota_shortfall:
            # The quota case, modelled (how Exoscale answers is not documented): the scale is
            # accepted, the members the quota allows are created, the operation ends in
            # failure and the pool settles `degraded` with a quota error reason: the 2026
            # egoscale v3 types carry exactly this pool state and reason type
            # (exoscale/egoscale, v3/instance_pool_test.go: state "degraded", error_reason
            # {"type": "quota-exceeded", "cause", "job-id"}).
            cause = (
                f"instance quota exceeded: {quota_shortfall} of the requested instances"
                " could not be created"
            )
            op.forced = OperationOutcome(state="failure", reason="partial", message=cause)
            op.done_when = lambda: self.converged(pool)
            pool.settles_to = "degraded"
            pool.error_reason = {"type": "quota-exceeded", "cause": cause, "job-id": op.id}
        return op

    def _operation(
        self,
        reference_id: str,
        reference_kind: str,
        command: str,
        done_when: Callable[[], bool],
        on_success: Callable[[], None] = lambda: None,
    ) -> Operation:
        now = self.clock()
        op = Operation(
            id=str(uuid.uuid4()),
            reference_id=reference_id,
            reference_kind=reference_kind,
            command=command,
            ready_at=now + self.timings.operation_delay,
            done_when=done_when,
            on_success=on_success,
            deadline=now + self.timings.converge_timeout,
            hidden_reads=self.faults.fresh_operation_404s,
        )
        self.operations[op.id] = op
        return op

    def _gone(self, instance_ids: list[str]) -> Callable[[], bool]:
        return lambda: not any(i in self.instances for i in instance_ids)

    def _grow(self, pool: Pool, count: int, *, delay: float = 0.0) -> None:
        """Add `count` members now, or (delay > 0) record that they appear `delay` from now."""
        if delay > 0:
            pool.pending_creations += [self.clock() + delay] * count
            return
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
            return
        if runs_at_boot(self.runtime):
            # `running` is the VM's state on Exoscale: the boot timer, not the app, decides.
            inst.state = "running"
            log.info("member %s (%s) running (VM booted)", inst.name, inst.address)

    def _shrink(self, pool: Pool, instance_ids: list[str]) -> None:
        for instance_id in instance_ids:
            inst = self.instances[instance_id]
            inst.state = "destroying"
            pool.member_ids.remove(instance_id)
            pool.leaving_ids.append(instance_id)
            self._stopper.submit(self._stop_member, inst)

    def _stop_member(self, inst: Instance) -> None:
        try:
            self.runtime.stop(inst.id)
        except Exception:
            log.exception("stopping member %s failed", inst.name)
        with self.lock:
            self.instances.pop(inst.id, None)
            self.addresses.give_back(inst.address)
            pool = self.pools.get(inst.pool_id)
            if pool is not None and inst.id in pool.leaving_ids:
                pool.leaving_ids.remove(inst.id)

    # -- API bodies -------------------------------------------------------------------------

    def pool_body(self, pool: Pool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": pool.id,
            "name": pool.name,
            "size": pool.size,
            "state": pool.state,
            # Members being destroyed are still the pool's until gone: `instances` lags `size`.
            "instances": [{"id": i} for i in pool.member_ids + pool.leaving_ids],
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
        if pool.error_reason is not None:
            # Not in the openapi.json the `exoscale` wheel ships (its state enum has no
            # `degraded` and no error reason): modelled on the 2026 API as egoscale v3 reads it
            # (exoscale/egoscale, v3/instance_pool_test.go): `error_reason` (snake case, unlike
            # every other field) holding `cause`, `type` and `job-id`. Only present while a
            # pool is degraded/suspended, so every other pool body validates against the spec.
            body["error_reason"] = dict(pool.error_reason)
        return body

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
