"""`exo-lab zone`: a zone with its members and NLBs, served in the foreground until a signal.

The members follow the plane's lifecycle (`MemberSettings.lifecycle`): with the realistic
model a member is `running` once its VM booted and answers /health only after its guest boot
and provisioning, as in `exo-lab run` and `up`.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
from collections.abc import Callable

import uvicorn

from exo_zone import HealthCheck, LocalZone, ZoneTimings, base_url, bind, make_server

from ..files import write_atomically
from . import DataPlane
from .cgroups import UNCAPPED


class ZoneStartError(RuntimeError):
    """The standalone zone could not start; the message says why and what to do."""


def serve_zone(
    plane: DataPlane | None,
    *,
    host: str,
    port: int,
    zone_name: str,
    pools: list[tuple[str, int]],
    timings: ZoneTimings,
    member_network: str,
    nlb_port: int,
    healthcheck: HealthCheck,
    credentials: tuple[str, str],
    say: Callable[[str], None],
    warn: Callable[[str], None],
) -> None:
    """Serve until SIGINT/SIGTERM; `say` gets the lines a user needs (ids, URLs), `warn`
    what they should know. Raises ZoneStartError before serving, having closed what it made."""
    local = LocalZone(
        zone_name,
        timings=timings,
        runtime=plane.runtime if plane is not None else None,
        member_network=member_network,
        credentials=credentials,
    )
    the_zone = local.zone
    try:
        sock = bind(host, port)
    except OSError as exc:
        the_zone.close()
        raise ZoneStartError(
            f"cannot listen on {host}:{port} ({exc.strerror}): choose another --port "
            "(0: any free port) or stop what holds it"
        ) from exc
    try:
        for index, (name, size) in enumerate(pools):
            pool = the_zone.create_pool(name, size)
            the_zone.create_load_balancer(
                f"{name}-nlb", pool.id, port=nlb_port + index if nlb_port else 0,
                healthcheck=healthcheck,
            )  # fmt: skip
            say(f"pool {name}: id {pool.id}, size {size}")
        if plane is not None:
            try:
                nlb = plane.attach(the_zone)
            except OSError as exc:
                raise ZoneStartError(
                    f"cannot start the NLB ({exc.strerror or exc}): choose another --nlb-port "
                    "(0: any free port) or stop what holds it"
                ) from exc
            for service, address in sorted(nlb.addresses().items()):
                say(f"NLB {service}: http://{address}/")
            runtime = plane.runtime
            token_file = runtime.settings.state_dir / "admin-token"
            write_atomically(token_file, runtime.admin_token + "\n", mode=0o600)
            say(f"members: slow-web on {member_network} port 8080, node exporter on 9100")
            say(f"member admin token (slow-web :8081): {token_file}")
            if runtime.cpu_cap == UNCAPPED:
                warn("WARNING: members run UNCAPPED (no writable cgroup cpu controller)")
            else:
                cores = runtime.settings.cpu_per_vcpu
                say(f"CPU cap: {runtime.cpu_cap}, {cores:g} cores/vCPU")
    except BaseException:
        sock.close()
        the_zone.close()
        raise
    say(f"zone {zone_name} API: {base_url(sock, '/v2')}")
    sys.stdout.flush()
    _serve_until_signal(make_server(local.app), sock)


def _serve_until_signal(server: uvicorn.Server, sock: socket.socket) -> None:
    """SIGINT/SIGTERM: graceful shutdown (the app's lifespan closes the zone), then exit 0.

    uvicorn would re-raise the signal after its shutdown, killing the process before the
    caller's cleanup (the data plane) runs.
    """

    def stop(signum: int, _: object) -> None:
        server.should_exit = True

    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
