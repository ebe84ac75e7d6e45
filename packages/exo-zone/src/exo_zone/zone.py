"""The lab zone's state machine: pools, members, operations and load balancers, like Exoscale.

Everything here is synchronous and guarded by one lock; `tick()` advances time-driven
transitions (boot, async operations, replacement of dead members) and is called by a
background thread. Member processes are the runtime's business (see runtime.py), the records
and snapshots live in records.py, the JSON bodies in bodies.py.

Callers outside exo-zone read through the snapshot methods (`pool_snapshot`, `members`,
`instance_snapshots`, `operation_snapshots`, `service_snapshots`): each takes the lock itself
and returns frozen copies, so nobody outside the zone holds its lock.

Over 400 lines because it is one state machine: the API operations, `tick()`, member growth and
removal and the quota all read and write the same records under the same lock, and the rules
that tie them (a pool converges when..., an operation ends when..., a pool settles to...) are
only checkable side by side. Everything that is not a transition lives elsewhere.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from .catalog import instance_type_by_name
from .faults import FaultPlan, OperationOutcome
from .records import (
    SLOW_WEB_PORT,
    AddressPool,
    HealthCheck,
    Instance,
    InstanceSnapshot,
    LbService,
    LoadBalancer,
    Operation,
    OperationSnapshot,
    Pool,
    PoolSnapshot,
    ServiceSnapshot,
    ZoneError,
)
from .runtime import MemberRuntime, RecordRuntime, runs_at_boot
from .timings import ZoneTimings

log = logging.getLogger(__name__)

MAX_POOL_SIZE = 250

#: a health source: NLB service id -> {member address: healthy}
HealthSource = Callable[[str], dict[str, bool]]


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


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
        #: what the data plane's balancers see (attach_health_source); None: the runtime's word
        self._health_source: HealthSource | None = None
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

    # -- snapshots: how callers outside the zone read it (each takes the lock itself) ------

    def pool_snapshot(self, pool_id: str) -> PoolSnapshot:
        """The pool as it is now (ZoneError 404 if there is none)."""
        with self.lock:
            return PoolSnapshot.of(self.pool(pool_id))

    def pool_snapshots(self) -> list[PoolSnapshot]:
        with self.lock:
            return [PoolSnapshot.of(p) for p in self.pools.values()]

    def members(self, pool_id: str) -> list[InstanceSnapshot]:
        """The pool's members, oldest first (not the ones being destroyed)."""
        with self.lock:
            return [InstanceSnapshot.of(self.instances[i]) for i in self.pool(pool_id).member_ids]

    def instance_snapshots(self) -> list[InstanceSnapshot]:
        """Every instance of the zone, those being destroyed (`destroying`) included."""
        with self.lock:
            return [InstanceSnapshot.of(i) for i in self.instances.values()]

    def operation_snapshots(self) -> list[OperationSnapshot]:
        """Every operation the zone has created, oldest first."""
        with self.lock:
            return [OperationSnapshot.of(op) for op in self.operations.values()]

    def service_snapshots(self) -> list[ServiceSnapshot]:
        """Every NLB service with its pool's members: what a balancer needs to run it."""
        with self.lock:
            services = []
            for lb in self.load_balancers.values():
                for svc in lb.services:
                    pool = self.pools.get(svc.pool_id)
                    members = tuple(
                        (i, self.instances[i].address)
                        for i in (pool.member_ids if pool else [])
                        if i in self.instances
                    )
                    services.append(
                        ServiceSnapshot(
                            id=svc.id,
                            name=svc.name,
                            load_balancer_id=lb.id,
                            ip=lb.ip,
                            port=svc.port,
                            target_port=svc.target_port,
                            pool_id=svc.pool_id,
                            healthcheck=svc.healthcheck,
                            members=members,
                        )
                    )
            return services

    # -- the data plane's hooks ---------------------------------------------------------------

    def attach_health_source(self, source: HealthSource) -> None:
        """get-load-balancer reports what `source(service_id)` says of each member."""
        with self.lock:
            self._health_source = source

    def detach_health_source(self, source: HealthSource) -> None:
        """Back to the runtime's word, unless another source was attached since."""
        with self.lock:
            if self._health_source == source:
                self._health_source = None

    def set_service_port(self, service_id: str, port: int) -> None:
        """A service created with port 0 reports the port its balancer got."""
        with self.lock:
            for lb in self.load_balancers.values():
                for svc in lb.services:
                    if svc.id == service_id:
                        svc.port = port

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

    def health(self, lb: LoadBalancer) -> dict[str, dict[str, bool]]:
        """Service id -> {member address: healthy}, for each service of `lb`."""
        return {svc.id: self._service_health(svc) for svc in lb.services}

    def _service_health(self, service: LbService) -> dict[str, bool]:
        if self._health_source is not None:
            return self._health_source(service.id)
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

    def instance_quota(self) -> tuple[int, int | None]:
        """(usage, limit) of the organisation's instance quota; limit None: unlimited."""
        with self.lock:
            return self._instances_counted(), self.faults.quota_instances

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
            started_at=now,
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
