"""`exo-lab zone`: the zone with its members and NLB, in the foreground."""

from __future__ import annotations

import os
from pathlib import Path

import click

from exo_zone import AddressPool, HealthCheck, ZoneTimings

from ..dataplane import DataPlane
from ..dataplane.lock import LabBusyError
from ..dataplane.members import MemberSettings, default_runtime_dir, lab_prefix_for
from ..dataplane.standalone import serve_zone
from . import main


def _pool_spec(
    _: click.Context, __: click.Parameter, values: tuple[str, ...]
) -> list[tuple[str, int]]:
    pools = []
    for value in values:
        name, sep, size = value.partition("=")
        if not sep or not name or not size.isdigit():
            raise click.BadParameter(f"{value!r}: expected NAME=SIZE, e.g. web=2")
        pools.append((name, int(size)))
    return pools


def _credentials() -> tuple[str, str]:
    key = os.environ.get("EXOSCALE_API_KEY")
    secret = os.environ.get("EXOSCALE_API_SECRET")
    missing = [n for n, v in (("EXOSCALE_API_KEY", key), ("EXOSCALE_API_SECRET", secret)) if not v]
    if missing:
        raise click.UsageError(
            f"set {' and '.join(missing)}: the zone accepts requests signed with that key pair"
        )
    assert key and secret
    return key, secret


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8079, show_default=True, type=click.IntRange(0, 65535))
@click.option("--zone", "zone_name", default="ch-gva-2", show_default=True)
@click.option(
    "--pool",
    "pools",
    multiple=True,
    callback=_pool_spec,
    help="Seed a pool NAME=SIZE (repeatable); each gets an NLB service in front.",
)
@click.option("--boot-delay", default=30.0, show_default=True, type=click.FloatRange(0))
@click.option("--operation-delay", default=5.0, show_default=True, type=click.FloatRange(0))
@click.option("--member-network", default="127.0.1.0/24", show_default=True)
@click.option(
    "--members",
    type=click.Choice(["processes", "records"]),
    default="processes",
    show_default=True,
    help="processes: each member runs slow-web; records: API state only.",
)
@click.option(
    "--cpu-per-vcpu",
    default=0.25,
    show_default=True,
    type=click.FloatRange(0, 64, min_open=True),
    help="Host cores one member vCPU may use (cgroup cap).",
)
@click.option("--no-cgroups", is_flag=True, help="Run members uncapped even if cgroups work.")
@click.option("--workers-per-vcpu", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--work-ms", default=100, show_default=True, type=click.IntRange(0, 5000))
@click.option(
    "--stop-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds a stopping member may drain before SIGKILL.",
)
@click.option(
    "--nlb-port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port of the first pool's NLB service (next pools: +1; 0: any free port).",
)
@click.option("--health-interval", default=10.0, show_default=True, type=click.FloatRange(0.05))
@click.option("--health-timeout", default=5.0, show_default=True, type=click.FloatRange(0.05))
@click.option("--health-retries", default=1, show_default=True, type=click.IntRange(1, 20))
@click.option(
    "--runtime-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Pidfiles, member logs and the admin token [default: $XDG_RUNTIME_DIR or /tmp].",
)
def zone(
    host: str,
    port: int,
    zone_name: str,
    pools: list[tuple[str, int]],
    boot_delay: float,
    operation_delay: float,
    member_network: str,
    members: str,
    cpu_per_vcpu: float,
    no_cgroups: bool,
    workers_per_vcpu: int,
    work_ms: int,
    stop_timeout: float,
    nlb_port: int,
    health_interval: float,
    health_timeout: float,
    health_retries: int,
    runtime_dir: Path | None,
) -> None:
    """Serve the Exoscale v2 API for instance pools, instances, operations and NLBs."""
    credentials = _credentials()
    if health_timeout > health_interval:
        raise click.BadParameter("must not exceed --health-interval", param_hint="--health-timeout")
    try:
        lab_prefix = lab_prefix_for(member_network)
        AddressPool(member_network)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--member-network") from exc
    plane: DataPlane | None = None
    if members == "processes":
        settings = MemberSettings(
            lab_prefix=lab_prefix,
            cpu_per_vcpu=cpu_per_vcpu,
            workers_per_vcpu=workers_per_vcpu,
            work_ms=work_ms,
            stop_timeout=stop_timeout,
            use_cgroups=not no_cgroups,
            runtime_dir=runtime_dir or default_runtime_dir(),
        )
        try:
            plane = DataPlane(settings)
        except (LabBusyError, OSError) as exc:
            raise click.ClickException(str(exc)) from exc
    try:
        serve_zone(
            plane,
            host=host,
            port=port,
            zone_name=zone_name,
            pools=pools,
            timings=ZoneTimings(boot_delay=boot_delay, operation_delay=operation_delay),
            member_network=member_network,
            nlb_port=nlb_port,
            healthcheck=HealthCheck(
                interval=health_interval, timeout=health_timeout, retries=health_retries
            ),
            credentials=credentials,
        )
    finally:
        if plane is not None:
            plane.close()
