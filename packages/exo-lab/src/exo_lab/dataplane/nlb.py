"""The lab's Network Load Balancer: one TCP balancer per NLB service, with health checks.

Semantics follow Exoscale's documentation of NLB services:

- every member of the service's instance pool is probed every `interval` seconds, on the
  health-check port: `http` mode sends `GET <uri>` and wants a 2xx answer, `tcp` mode wants a
  connection; a probe that takes longer than `timeout` fails;
- a member enters rotation as soon as one probe succeeds, and leaves it after `retries`
  consecutive failed probes; a new member starts out of rotation (status `failure`) until its
  first success;
- new connections go round-robin over the members in rotation; the balancer is layer 4, so a
  keep-alive client stays on the member its connection went to;
- a member that leaves the pool (scale-down, evict, delete) gets no new connection from the
  next reconcile on (every `reconcile_interval`, 0.1 s); its open connections run to their end.

Lab choices where Exoscale documents nothing: when the chosen member refuses the connection the
balancer tries the next member in rotation (each at most once) before closing the client's
connection; with nobody in rotation, or beyond `max_connections` open connections, the client's
connection is closed at once. When a member fails mid-connection, both sides are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from exo_zone import HealthCheck, Zone

from .loop_thread import LoopThread
from .probes import http_check, tcp_check

log = logging.getLogger(__name__)

_CHUNK = 65536


@dataclass
class TargetHealth:
    instance_id: str
    address: str
    healthy: bool = False
    consecutive_failures: int = 0
    checks: int = 0
    last_error: str | None = "not checked yet"
    task: asyncio.Task[None] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ServiceSpec:
    """What a balancer needs to know about one NLB service, read from the zone."""

    service_id: str
    name: str
    host: str
    port: int
    target_port: int
    healthcheck: HealthCheck
    members: tuple[tuple[str, str], ...]  # (instance id, address), in pool order


class ServiceBalancer:
    """Listens on host:port and forwards each TCP connection to a healthy member."""

    def __init__(
        self,
        spec: ServiceSpec,
        *,
        max_connections: int = 1024,
        connect_timeout: float = 2.0,
    ) -> None:
        self.spec = spec
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.targets: dict[str, TargetHealth] = {}
        self.port = spec.port
        self.active_connections = 0
        self.forwarded: dict[str, int] = {}
        self.refused = 0
        self._order: list[str] = []
        self._next = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        #: address -> healthy, replaced whole on every change: read by other threads
        self.health_view: dict[str, bool] = {}

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.spec.host, self.spec.port, reuse_address=True, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("NLB service %s listening on %s:%d", self.spec.name, self.spec.host, self.port)

    def update(self, spec: ServiceSpec) -> None:
        """Follow the pool: probe new members, forget members that left."""
        self.spec = spec
        wanted = dict(spec.members)
        for instance_id in list(self.targets):
            if instance_id not in wanted:
                target = self.targets.pop(instance_id)
                if target.task is not None:
                    target.task.cancel()
                log.info("NLB %s: %s left the pool", spec.name, target.address)
        for instance_id, address in spec.members:
            if instance_id not in self.targets:
                target = TargetHealth(instance_id, address)
                target.task = asyncio.create_task(self._check_loop(target))
                self.targets[instance_id] = target
        self._order = [i for i, _ in spec.members]
        self._publish()

    def in_rotation(self) -> list[TargetHealth]:
        return [t for i in self._order if (t := self.targets.get(i)) is not None and t.healthy]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for target in self.targets.values():
            if target.task is not None:
                target.task.cancel()
        for task in list(self._pipes):
            task.cancel()
        tasks = [t.task for t in self.targets.values() if t.task is not None] + list(self._pipes)
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    # -- health checks ----------------------------------------------------------------------

    async def _probe(self, address: str) -> str | None:
        check = self.spec.healthcheck
        if check.mode == "tcp":
            return await tcp_check(address, check.port, check.timeout)
        return await http_check(address, check.port, check.uri, check.timeout)

    async def _check_loop(self, target: TargetHealth) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            error = await self._probe(target.address)
            self._record(target, error)
            interval = self.spec.healthcheck.interval
            await asyncio.sleep(max(0.0, interval - (loop.time() - started)))

    def _record(self, target: TargetHealth, error: str | None) -> None:
        target.checks += 1
        target.last_error = error
        was = target.healthy
        if error is None:
            target.consecutive_failures = 0
            target.healthy = True
        else:
            target.consecutive_failures += 1
            if target.consecutive_failures >= max(1, self.spec.healthcheck.retries):
                target.healthy = False
        if target.healthy != was:
            log.info(
                "NLB %s: %s %s rotation%s",
                self.spec.name,
                target.address,
                "enters" if target.healthy else "leaves",
                "" if error is None else f" ({error})",
            )
            self._publish()

    def _publish(self) -> None:
        self.health_view = {t.address: t.healthy for t in self.targets.values()}

    # -- forwarding -------------------------------------------------------------------------

    def _pick(self) -> list[TargetHealth]:
        """Members in rotation, starting with the next one round-robin."""
        healthy = self.in_rotation()
        if not healthy:
            return []
        start = self._next % len(healthy)
        self._next = start + 1
        return healthy[start:] + healthy[:start]

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.active_connections >= self.max_connections:
            self.refused += 1
            await _close(client_w)
            return
        self.active_connections += 1
        try:
            upstream = await self._connect()
            if upstream is None:
                self.refused += 1
                return
            target, member_r, member_w = upstream
            self.forwarded[target.address] = self.forwarded.get(target.address, 0) + 1
            await self._splice(client_r, client_w, member_r, member_w)
        finally:
            self.active_connections -= 1
            await _close(client_w)

    async def _connect(
        self,
    ) -> tuple[TargetHealth, asyncio.StreamReader, asyncio.StreamWriter] | None:
        for target in self._pick():
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(target.address, self.spec.target_port),
                    self.connect_timeout,
                )
            except (TimeoutError, OSError) as exc:
                log.info("NLB %s: cannot reach %s: %s", self.spec.name, target.address, exc)
                continue
            return target, reader, writer
        return None

    async def _splice(
        self,
        client_r: asyncio.StreamReader,
        client_w: asyncio.StreamWriter,
        member_r: asyncio.StreamReader,
        member_w: asyncio.StreamWriter,
    ) -> None:
        to_member = asyncio.create_task(_pump(client_r, member_w))
        to_client = asyncio.create_task(_pump(member_r, client_w))
        pipes = {to_member, to_client}
        self._pipes |= pipes
        try:
            pending = set(pipes)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if any(task.exception() is not None for task in done if not task.cancelled()):
                    # One side broke (a member died, a client reset): end both.
                    for task in pending:
                        task.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                    break
                if to_client in done:
                    # The member finished answering; nothing more will reach the client.
                    for task in pending:
                        task.cancel()
                    await asyncio.gather(*pending, return_exceptions=True)
                    break
        finally:
            self._pipes -= pipes
            await _close(member_w)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        data = await reader.read(_CHUNK)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        with contextlib.suppress(OSError):
            writer.write_eof()


async def _close(writer: asyncio.StreamWriter) -> None:
    if writer.is_closing():
        return
    writer.close()
    with contextlib.suppress(OSError, asyncio.TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 1.0)


class NetworkLoadBalancers:
    """Every NLB service of a zone, made real on the lab's event loop.

    Attaches its health checks to the zone, so get-load-balancer reports what they see.
    """

    def __init__(
        self,
        zone: Zone,
        loop: LoopThread,
        *,
        reconcile_interval: float = 0.1,
        max_connections: int = 1024,
        connect_timeout: float = 2.0,
    ) -> None:
        self.zone = zone
        self.loop = loop
        self.reconcile_interval = reconcile_interval
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.balancers: dict[str, ServiceBalancer] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Bind every service's port now (errors raise here), then follow the zone."""
        self.loop.run(self._reconcile())
        self.zone.attach_health_source(self.health)

        async def spawn() -> asyncio.Task[None]:
            return asyncio.create_task(self._follow())

        self._task = self.loop.run(spawn())

    def health(self, service_id: str) -> dict[str, bool]:
        balancer = self.balancers.get(service_id)
        return dict(balancer.health_view) if balancer is not None else {}

    def addresses(self) -> dict[str, str]:
        """Service name -> host:port clients connect to."""
        return {b.spec.name: f"{b.spec.host}:{b.port}" for b in self.balancers.values()}

    def balancer(self, service_name: str) -> ServiceBalancer:
        for balancer in self.balancers.values():
            if balancer.spec.name == service_name:
                return balancer
        raise KeyError(service_name)

    def close(self) -> None:
        self.zone.detach_health_source(self.health)
        if not self.loop.running:
            return

        async def shut() -> None:
            if self._task is not None:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            await asyncio.gather(*(b.close() for b in self.balancers.values()))
            self.balancers.clear()

        self.loop.run(shut(), timeout=15)

    # -- internals --------------------------------------------------------------------------

    def _snapshot(self) -> list[ServiceSpec]:
        return [
            ServiceSpec(
                service_id=svc.id,
                name=svc.name,
                host=svc.ip,
                port=svc.port,
                target_port=svc.target_port,
                healthcheck=svc.healthcheck,
                members=svc.members,
            )
            for svc in self.zone.service_snapshots()
        ]

    async def _reconcile(self) -> None:
        # The zone lock is taken off the loop: the zone calls into the loop while holding it.
        specs = await asyncio.to_thread(self._snapshot)
        seen = set()
        for spec in specs:
            seen.add(spec.service_id)
            balancer = self.balancers.get(spec.service_id)
            if balancer is None:
                balancer = ServiceBalancer(
                    spec, max_connections=self.max_connections, connect_timeout=self.connect_timeout
                )
                await balancer.start()
                self.zone.set_service_port(spec.service_id, balancer.port)
                self.balancers[spec.service_id] = balancer
            balancer.update(spec)
        for service_id in set(self.balancers) - seen:
            await self.balancers.pop(service_id).close()

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self.reconcile_interval)
            try:
                await self._reconcile()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("NLB reconcile failed")
