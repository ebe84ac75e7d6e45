"""`exo-lab`: the local Exoscale zone, and the whole autoscaling stack on one machine.

A thin click layer: `zone` serves dataplane.standalone.serve_zone, `run` runs stack.run.run_lab,
`load` runs load.generator.run_load.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import click

from exo_zone import HealthCheck, ZoneTimings
from exo_zone.zone import AddressPool

from .dataplane import DataPlane
from .dataplane.lock import LabBusyError
from .dataplane.members import MemberSettings, default_runtime_dir, lab_prefix_for
from .dataplane.standalone import serve_zone
from .load.generator import SecondStats, run_load, summarize, write_results
from .load.profiles import PROFILE_NAMES, make_profile
from .stack.run import run_lab
from .stack.settings import SCALERS, LabError, LabSettings


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


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log every zone event.")
def main(verbose: bool) -> None:
    """A faithful local Exoscale zone, and the autoscaling stack on one machine."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )


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


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _default_out() -> Path:
    return Path("lab-runs") / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


@main.command()
@click.option("--profile", type=click.Choice(PROFILE_NAMES), default="step", show_default=True)
@click.option(
    "--speed",
    type=click.FloatRange(0.1, 60),
    default=10.0,
    show_default=True,
    help="Divide every duration (intervals, windows, pending periods, tick, boot) by K.",
)
@click.option(
    "--duration",
    type=click.FloatRange(10),
    default=1200.0,
    show_default=True,
    help="Seconds of load at production speed (the run takes DURATION/SPEED).",
)
@click.option("--min", "min_size", type=click.IntRange(1, 50), default=1, show_default=True)
@click.option("--max", "max_size", type=click.IntRange(1, 50), default=5, show_default=True)
@click.option("--peak", type=click.FloatRange(0), default=3.5, show_default=True,
              help="Peak load in members' worth at the 80 % line.")  # fmt: skip
@click.option("--work-ms", type=click.IntRange(1, 2000), default=50, show_default=True,
              help="CPU milliseconds per request on a member.")  # fmt: skip
@click.option("--cpu-per-vcpu", type=click.FloatRange(0.05, 4), default=0.25, show_default=True,
              help="Host cores behind one member vCPU (the cgroup cap).")  # fmt: skip
@click.option(
    "--scaler",
    type=click.Choice(SCALERS),
    default="exo-scaler",
    show_default=True,
    help="exo-scaler: its default policy; seed: exo-scaler --policy step (the seed's ±1 a "
    "tick); naive: the benchmark's baseline (scale on every webhook, no tick, no drain).",
)
@click.option("--member-network", default="127.0.1.0/24", show_default=True)
@click.option(
    "--provisioning",
    type=click.Path(path_type=Path),
    default=Path("grafana-provisioning"),
    show_default=True,
    help="Grafana provisioning the alerting is derived from.",
)
@click.option(
    "--iam-policy",
    type=click.Path(path_type=Path),
    default=None,
    help="Role policy for exo-sd's and exo-scaler's key [default: the one Terraform uses, "
    "infra/terraform/policies/autoscaler-role.json.tftpl beside --provisioning].",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output folder (default lab-runs/<time>).",
)
def run(
    profile: str,
    speed: float,
    duration: float,
    min_size: int,
    max_size: int,
    peak: float,
    work_ms: int,
    cpu_per_vcpu: float,
    scaler: str,
    member_network: str,
    provisioning: Path,
    iam_policy: Path | None,
    out: Path | None,
) -> None:
    """Run the whole autoscaling loop locally under load and write a report."""
    out = out or _default_out()
    # SIGTERM takes the same path as Ctrl-C, so every process and cgroup is cleaned up.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        settings = LabSettings(
            out=out,
            speed=speed,
            profile=profile,
            duration=duration,
            min_size=min_size,
            max_size=max_size,
            peak_members=peak,
            work_ms=work_ms,
            cpu_per_vcpu=cpu_per_vcpu,
            scaler=scaler,
            member_network=member_network,
            provisioning=provisioning,
            iam_policy=iam_policy,
            progress=lambda line: click.echo(line),
        )
        report, paths = run_lab(settings)
    except LabError as exc:
        # One clear message and status 2; run_lab has already stopped everything it started.
        click.echo(f"exo-lab run: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted: every process of this run has been stopped", err=True)
        sys.exit(130)
    figures = report.figures()
    click.echo(
        f"done: {figures['scaling_actions']} scaling actions, max pool "
        f"{figures['max_pool_size']}, θ_U {figures['theta_u']:.1f} %, θ_O "
        f"{figures['theta_o']:.1f} %, {figures['failed_requests']} failed requests"
    )
    for kind, path in paths.items():
        click.echo(f"  {kind:4} {path}")


@main.command()
@click.option("--target", required=True, help="Base URL, e.g. http://<nlb-ip>/")
@click.option("--profile", type=click.Choice(PROFILE_NAMES), default="step", show_default=True)
@click.option("--duration", type=click.FloatRange(1), default=600.0, show_default=True,
              help="Seconds of load at production speed.")  # fmt: skip
@click.option("--speed", type=click.FloatRange(0.1, 60), default=1.0, show_default=True)
@click.option("--base-rps", type=click.FloatRange(0), default=1.0, show_default=True)
@click.option("--peak-rps", type=click.FloatRange(0), default=20.0, show_default=True)
@click.option("--timeout", type=click.FloatRange(0.1, 120), default=10.0, show_default=True)
@click.option("--progress", type=click.Path(path_type=Path), default=None,
              help="Append one JSON line per second here.")  # fmt: skip
@click.option("--results", type=click.Path(path_type=Path), default=None,
              help="Write every request's result here (JSON lines).")  # fmt: skip
def load(
    target: str,
    profile: str,
    duration: float,
    speed: float,
    base_rps: float,
    peak_rps: float,
    timeout: float,
    progress: Path | None,
    results: Path | None,
) -> None:
    """Open-loop load against TARGET: the lab's NLB or a real deployment's (http://<nlb-ip>/)."""
    if not target.startswith(("http://", "https://")):
        raise click.BadParameter("must be an http(s) URL", param_hint="--target")
    try:
        shape = make_profile(profile, base_rps=base_rps, peak_rps=peak_rps, duration=duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    shape = shape.scaled(speed)
    progress_handle = progress.open("a") if progress else None

    def on_second(stats: SecondStats) -> None:
        line = json.dumps(stats.__dict__)
        if progress_handle:
            progress_handle.write(line + "\n")
            progress_handle.flush()
        else:
            click.echo(line)

    try:
        outcome = run_load(target, shape, timeout=timeout, on_second=on_second)
    finally:
        if progress_handle:
            progress_handle.close()
    if results:
        write_results(results, outcome)
    click.echo(json.dumps(summarize(outcome)), err=progress is not None)
