"""`exo-lab run`: the lab under load with a report, or `--target` a deployment."""

from __future__ import annotations

import signal
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import click

from ..deployment.outputs import Deployment, OutputsError, read_outputs
from ..deployment.probe import TargetError, TargetSettings
from ..deployment.run import run_target
from ..load.profiles import PROFILE_NAMES
from ..stack.outage import OUTAGE_KINDS, MonitoringOutage
from ..stack.run import run_lab
from ..stack.settings import SCALERS, TIMING_MODELS, LabError, LabSettings, ProductionTimings
from . import fail, main


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
    help="naive: the benchmark's baseline (scale on every webhook, no tick, no drain); limit: "
    "the reactive limit (the oracle's size at the first tick after an alert).",
)
@click.option("--member-network", default="127.0.1.0/24", show_default=True)
@click.option(
    "--timing-model",
    type=click.Choice(TIMING_MODELS),
    default="realistic",
    show_default=True,
    help="realistic: two-stage members (VM boot, then provisioning) as on Exoscale; fast: "
    "members serve as soon as they run (kinder than the cloud: for quick checks of logic).",
)
@click.option(
    "--provisioning",
    type=click.Path(path_type=Path),
    default=Path("grafana-provisioning"),
    show_default=True,
    help="Grafana provisioning the alerting is derived from.",
)
@click.option(
    "--iam-policies",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of the role policies of exo-sd's and exo-scaler's keys (exo-sd-role.json.tftpl, "
    "exo-scaler-role.json.tftpl) [default: Terraform's, infra/terraform/policies beside "
    "--provisioning].",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Output folder (default lab-runs/<time>).",
)
@click.option(
    "--monitoring-outage",
    default=None,
    metavar="START:DURATION",
    help="Take the monitoring data away at START for DURATION (production seconds after the "
    "load starts), e.g. 600:300.",
)
@click.option(
    "--monitoring-outage-kind",
    type=click.Choice(OUTAGE_KINDS),
    default="exporters",
    show_default=True,
    help="exporters: the members are no longer scraped (NoData); prometheus: Prometheus down.",
)
@click.option("--target", "target_outputs", default=None, metavar="OUTPUTS.json|-",
              help="Load-test a deployment (terraform output -json), not a lab.")  # fmt: skip
@click.option("--settle", type=click.FloatRange(0), default=None,
              help="--target: production seconds to watch scale-in after the load.")  # fmt: skip
@click.option("--vcpus", type=click.IntRange(1, 64), default=None,
              help="--target: vCPUs of a member (default: the lab's type, else 1).")  # fmt: skip
@click.option("--member-cores", type=click.FloatRange(0.01, 64), default=None,
              help="--target: override the calibrated cores per member.")  # fmt: skip
@click.option("--prometheus-url", default=None, help="--target: overrides prometheus_url.")
@click.option("--scaler-url", default=None, help="--target: overrides scaler_internal_url.")
@click.option("--api-key", envvar="EXOSCALE_API_KEY", default=None,
              help="--target: the operator's key [env EXOSCALE_API_KEY].")  # fmt: skip
@click.option("--api-secret", envvar="EXOSCALE_API_SECRET", default=None,
              help="--target: [env EXOSCALE_API_SECRET]")  # fmt: skip
@click.pass_context
def run(
    ctx: click.Context,
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
    timing_model: str,
    provisioning: Path,
    iam_policies: Path | None,
    out: Path | None,
    monitoring_outage: str | None,
    monitoring_outage_kind: str,
    target_outputs: str | None,
    settle: float | None,
    vcpus: int | None,
    member_cores: float | None,
    prometheus_url: str | None,
    scaler_url: str | None,
    api_key: str | None,
    api_secret: str | None,
) -> None:
    """Run the whole autoscaling loop locally under load and write a report.

    With --target, load-test a deployment from its Terraform outputs instead, with the same
    profiles and report (see docs/operations.md).
    """
    out = out or _default_out()
    try:
        outage = (
            MonitoringOutage.parse(monitoring_outage, monitoring_outage_kind)
            if monitoring_outage
            else None
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--monitoring-outage") from exc
    if target_outputs:

        def given(name: str) -> bool:
            return ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE

        _run_target(
            target_outputs,
            TargetSettings(
                out=out,
                profile=profile,
                duration=duration,
                speed=speed if given("speed") else 1.0,
                peak_members=peak,
                provisioning=provisioning,
                settle=settle,
                vcpus=vcpus,
                work_ms=work_ms if given("work_ms") else None,
                member_cores=member_cores,
                progress=lambda line: click.echo(line),
            ),
            {"prometheus_url": prometheus_url, "scaler_internal_url": scaler_url},
            (api_key, api_secret) if api_key and api_secret else None,
            speed_given=given("speed"),
        )
        return
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
            timings=ProductionTimings.named(timing_model),
            provisioning=provisioning,
            iam_policies=iam_policies,
            monitoring_outage=outage,
            progress=lambda line: click.echo(line),
        )
    except LabError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        report, paths = run_lab(settings)
    except LabError as exc:
        # run_lab has already stopped everything it started.
        fail("run", exc)
    except KeyboardInterrupt:
        click.echo("interrupted: every process of this run has been stopped", err=True)
        sys.exit(130)
    click.echo(_summary(report.figures()))
    for kind, path in paths.items():
        click.echo(f"  {kind:4} {path}")


def _run_target(
    outputs_path: str,
    settings: TargetSettings,
    overrides: dict[str, str | None],
    admin_key: tuple[str, str] | None,
    *,
    speed_given: bool,
) -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        outputs = read_outputs(outputs_path, sys.stdin.read() if outputs_path == "-" else None)
        deployment = Deployment.of(outputs, overrides)
        lab = deployment.lab
        if lab is not None:
            if not speed_given:
                # A lab's timers run K times faster; the load must too, or it sees another system.
                settings = replace(settings, speed=float(lab.get("speed", 1.0)))
            if admin_key is None:
                admin_key = deployment.lab_operator_key
        if admin_key is None or not all(admin_key):
            raise OutputsError(
                "set EXOSCALE_API_KEY and EXOSCALE_API_SECRET (the operator's key: the NLB's "
                "health is not the scaler key's to read)"
            )
        report, paths = run_target(deployment, settings, admin_key)
    except OutputsError as exc:
        # What was given (outputs, keys, overrides) does not describe a deployment: usage.
        raise click.UsageError(str(exc)) from None
    except (TargetError, LabError) as exc:
        fail("run --target", exc)
    except KeyboardInterrupt:
        click.echo("interrupted: the load generator has been stopped", err=True)
        sys.exit(130)
    total = report.config["cost"].get("total_eur")
    click.echo(
        _summary(report.figures())
        + f", whole deployment {'—' if total is None else f'{total:.4f} EUR'}"
    )
    for kind, path in paths.items():
        click.echo(f"  {kind:4} {path}")


def _summary(f: dict[str, Any]) -> str:
    """The run's headline: what the client sees first, then how the pool moved."""
    share = "—" if f["failed_share"] is None else f"{100 * f['failed_share']:.1f} %"
    billed = f["billed_instance_seconds"]
    eur = f["billed_cost_eur"]
    return (
        f"done: {f['failed_requests']} of {f['requests']} requests failed ({share}), billed "
        f"{'—' if billed is None else f'{billed:.0f}'} instance-s"
        f"{'' if eur is None else f' ({eur:.4f} EUR)'}, θ_U {f['theta_u']:.1f} %, "
        f"{f['scaling_actions']} scaling actions, max pool {f['max_pool_size']}"
    )
