"""`exo-lab zone`: the zone with its members and NLB, in the foreground.

Timing as in `exo-lab run`/`up`: the model's production figures (stack.settings
ProductionTimings) divided by --speed; the realistic model gives two-stage members.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import click

from exo_zone import AddressPool

from ..dataplane import DataPlane
from ..dataplane.lock import LabBusyError
from ..dataplane.members import MemberSettings, default_runtime_dir, lab_prefix_for
from ..dataplane.standalone import ZoneStartError, serve_zone
from ..stack.settings import TIMING_MODELS, ProductionTimings
from . import fail, main


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
@click.option(
    "--timing-model",
    type=click.Choice(TIMING_MODELS),
    default="realistic",
    show_default=True,
    help="realistic: a member is `running` once its VM booted, then boots its guest and "
    "provisions before /health answers, as on Exoscale; fast: members serve as soon as they "
    "run and appear at once (kinder than the cloud: for quick checks of logic).",
)
@click.option(
    "--speed",
    type=click.FloatRange(0.1, 60),
    default=1.0,
    show_default=True,
    help="Divide every duration (boot, provisioning, operations, health checks) by K.",
)
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
@click.option("--health-interval", default=10.0, show_default=True, type=click.FloatRange(0.05),
              help="Seconds at --speed 1, like every duration.")  # fmt: skip
@click.option("--health-timeout", default=5.0, show_default=True, type=click.FloatRange(0.05),
              help="Seconds at --speed 1; at most --health-interval.")  # fmt: skip
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
    timing_model: str,
    speed: float,
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
    timings = ProductionTimings.named(timing_model)
    timings = replace(
        timings,
        health_interval=health_interval,
        health_timeout=health_timeout,
        health_retries=health_retries,
    )
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
            lifecycle=timings.member.scaled(speed),
        )
        try:
            plane = DataPlane(settings)
        except LabBusyError as exc:
            fail("zone", exc)
        except OSError as exc:
            fail("zone", f"cannot start the member runtime: {exc}; check that --runtime-dir "
                 "is writable")  # fmt: skip
    try:
        serve_zone(
            plane,
            host=host,
            port=port,
            zone_name=zone_name,
            pools=pools,
            timings=timings.zone_timings(speed),
            member_network=member_network,
            nlb_port=nlb_port,
            healthcheck=timings.health_check(speed),
            credentials=credentials,
            say=click.echo,
            warn=lambda line: click.echo(line, err=True),
        )
    except ZoneStartError as exc:
        fail("zone", exc)
    finally:
        if plane is not None:
            plane.close()
