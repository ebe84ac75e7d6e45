"""`exo-lab run` and `exo-lab load`: thin click layers over stack.run_lab and load.run_load."""

from __future__ import annotations

import json
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import click

from .alerting import ProvisioningError
from .load import SecondStats, run_load, summarize, write_results
from .profiles import PROFILE_NAMES, make_profile
from .stack import SCALERS, LabError, LabSettings, run_lab


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _default_out() -> Path:
    return Path("lab-runs") / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


@click.command()
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
    help="naive: the benchmark's baseline (scale on every webhook, no tick, no drain).",
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
            progress=lambda line: click.echo(line),
        )
        report, paths = run_lab(settings)
    except (LabError, ProvisioningError, TimeoutError) as exc:
        raise click.ClickException(str(exc)) from exc
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


@click.command()
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
