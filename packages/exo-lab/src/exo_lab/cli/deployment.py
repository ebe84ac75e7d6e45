"""`exo-lab up` / `down` (a lab that stands in for a deployment), `exo-lab verify` and
`exo-lab check-keys` (each service's key proven, what `make deploy` runs after apply)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..deployment.access import SignedApi
from ..deployment.background import (
    DEFAULT_STATE_DIR,
    StatePaths,
    UpConfig,
    UpError,
    serve_up,
    start_up,
    stop_up,
)
from ..deployment.cost import DEFAULT_PRICES, load_prices
from ..deployment.keys import check_keys
from ..deployment.outputs import Deployment, OutputsError, masked, read_outputs
from ..deployment.verify import build_target, run_checks
from ..stack.settings import TIMING_MODELS, LabError
from . import fail, main

# -- a lab that stands in for a deployment; verify; the target load test ------------------------


@main.command()
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_STATE_DIR, show_default=True,
              help="Where the detached lab keeps its pidfile, outputs.json and logs.")  # fmt: skip
@click.option("--speed", type=click.FloatRange(0.1, 60), default=10.0, show_default=True)
@click.option("--min", "min_size", type=click.IntRange(1, 50), default=1, show_default=True)
@click.option("--max", "max_size", type=click.IntRange(1, 50), default=5, show_default=True)
@click.option("--size", "initial_size", type=click.IntRange(1, 50), default=1, show_default=True,
              help="Members at start.")  # fmt: skip
@click.option("--work-ms", type=click.IntRange(1, 2000), default=50, show_default=True)
@click.option("--cpu-per-vcpu", type=click.FloatRange(0.05, 4), default=0.25, show_default=True)
@click.option("--member-network", default="127.1.0.0/24", show_default=True,
              help="Loopback /24 of the members (not exo-lab run's, so both can run).")  # fmt: skip
@click.option("--provisioning", type=click.Path(path_type=Path),
              default=Path("grafana-provisioning"), show_default=True)  # fmt: skip
@click.option("--prices", type=click.Path(path_type=Path), default=DEFAULT_PRICES,
              show_default=True, help="The price table Terraform's cost output reads.")  # fmt: skip
@click.option("--timing-model", type=click.Choice(TIMING_MODELS), default="realistic",
              show_default=True,
              help="realistic: members boot and provision as on Exoscale; fast: at once.",
              )  # fmt: skip
@click.option("--iam-scope-by-id/--no-iam-scope-by-id", default=True, show_default=True,
              help="Terraform's iam_scope_by_id: the services' roles scoped to the pool and "
              "NLB, or operation-only (the weaker fallback).")  # fmt: skip
@click.option("--iam-unbound-url-parameters", is_flag=True,
              help="The zone's IAM does not bind path/query parameters (parameters.id), as an "
              "Exoscale that binds only the documented body parameters would.")  # fmt: skip
@click.option("--timeout", type=click.FloatRange(10, 600), default=180.0, show_default=True)
def up(
    state_dir: Path,
    speed: float,
    min_size: int,
    max_size: int,
    initial_size: int,
    work_ms: int,
    cpu_per_vcpu: float,
    member_network: str,
    provisioning: Path,
    prices: Path,
    timing_model: str,
    iam_scope_by_id: bool,
    iam_unbound_url_parameters: bool,
    timeout: float,
) -> None:
    """Start the lab stack in the background and print the outputs Terraform prints."""
    config = UpConfig(
        speed=speed,
        min_size=min_size,
        max_size=max_size,
        initial_size=initial_size,
        work_ms=work_ms,
        cpu_per_vcpu=cpu_per_vcpu,
        member_network=member_network,
        provisioning=str(provisioning.resolve()),
        prices=str(prices.resolve()),
        timing_model=timing_model,
        iam_scope_by_id=iam_scope_by_id,
        iam_binds_url_parameters=not iam_unbound_url_parameters,
    )
    try:
        # Checked here so a bad value is a usage error, not a dead background process.
        config.settings(state_dir)
        load_prices(prices)
    except (LabError, OutputsError, OSError) as exc:
        raise click.UsageError(str(exc)) from None
    try:
        outputs = start_up(state_dir, config, timeout)
    except (LabError, OutputsError, UpError, OSError) as exc:
        fail("up", exc)
    for line in masked(outputs):
        click.echo(line)
    click.echo(
        f"outputs (terraform output -json shape, secrets included, 0600): "
        f"{StatePaths(state_dir).outputs}\nstop it with: exo-lab down --state-dir {state_dir}"
    )


@main.command()
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_STATE_DIR, show_default=True)  # fmt: skip
@click.option("--timeout", type=click.FloatRange(1, 600), default=90.0, show_default=True)
def down(state_dir: Path, timeout: float) -> None:
    """Stop the lab `exo-lab up` started: processes, cgroups and the lab lock are gone after."""
    try:
        click.echo(stop_up(state_dir, timeout))
    except OSError as exc:
        fail("down", exc)


@main.command("serve-up", hidden=True)
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
def serve_up_command(state_dir: Path) -> None:
    """The detached process behind `exo-lab up` (not for direct use)."""
    sys.exit(serve_up(state_dir))


@main.command()
@click.option("--outputs", "outputs_path", default=None, metavar="FILE|-",
              help="`terraform output -json` saved to a file, or - for stdin.")  # fmt: skip
@click.option("--app-url", default=None, help="Overrides app_url (http://<nlb-ip>/).")
@click.option("--prometheus-url", default=None,
              help="Overrides prometheus_url (tunnel: http://localhost:9090/).")  # fmt: skip
@click.option("--grafana-url", default=None, help="Overrides grafana_url.")
@click.option("--scaler-url", default=None,
              help="Overrides scaler_internal_url (tunnel: http://localhost:8090).")  # fmt: skip
@click.option("--pool-id", default=None, help="Overrides instance_pool_id.")
@click.option("--api-endpoint", default=None, help="Overrides api_endpoint.")
@click.option("--api-key", envvar="EXOSCALE_API_KEY", default=None,
              help="The operator's key (reads the NLB) [env EXOSCALE_API_KEY].")  # fmt: skip
@click.option("--api-secret", envvar="EXOSCALE_API_SECRET", default=None,
              help="[env EXOSCALE_API_SECRET]")  # fmt: skip
@click.option("--provisioning", type=click.Path(path_type=Path),
              default=Path("grafana-provisioning"), show_default=True)  # fmt: skip
def verify(
    outputs_path: str | None,
    app_url: str | None,
    prometheus_url: str | None,
    grafana_url: str | None,
    scaler_url: str | None,
    pool_id: str | None,
    api_endpoint: str | None,
    api_key: str | None,
    api_secret: str | None,
    provisioning: Path,
) -> None:
    """Check a deployment from its Terraform outputs: one line per check, exit 1 on a failure."""
    overrides = {
        "app_url": app_url,
        "prometheus_url": prometheus_url,
        "grafana_url": grafana_url,
        "scaler_internal_url": scaler_url,
        "instance_pool_id": pool_id,
        "api_endpoint": api_endpoint,
    }
    try:
        outputs = (
            read_outputs(outputs_path, sys.stdin.read() if outputs_path == "-" else None)
            if outputs_path
            else {}
        )
        admin = (api_key, api_secret) if api_key and api_secret else None
        target = build_target(Deployment.of(outputs, overrides), provisioning, admin)
    except OutputsError as exc:
        raise click.UsageError(str(exc)) from None
    results = run_checks(target)
    for result in results:
        click.echo(result.line())
    failed = [r for r in results if r.status == "fail"]
    stand_ins = [r for r in results if r.stand_in]
    summary = f"{len(results) - len(failed)}/{len(results)} checks passed or skipped"
    if stand_ins:
        summary += f"; {len(stand_ins)} checked the lab's stand-in for Grafana"
    click.echo(summary + (f"; FAILED: {', '.join(r.name for r in failed)}" if failed else ""))
    sys.exit(1 if failed else 0)


@main.command("check-keys")
@click.option("--outputs", "outputs_path", required=True, metavar="FILE|-",
              help="`terraform output -json` saved to a file, or - for stdin.")  # fmt: skip
@click.option("--api-key", envvar="EXOSCALE_API_KEY", default=None,
              help="The operator's key: a refused scoped call is repeated with it, to tell a "
              "parameter the account does not bind from a missing grant "
              "[env EXOSCALE_API_KEY].")  # fmt: skip
@click.option("--api-secret", envvar="EXOSCALE_API_SECRET", default=None,
              help="[env EXOSCALE_API_SECRET]")  # fmt: skip
@click.option("--settle", type=click.FloatRange(0, 300), default=30.0, show_default=True,
              help="Seconds to keep retrying while a needed call is refused (a new key may "
              "take a moment to be honoured).")  # fmt: skip
def check_keys_command(
    outputs_path: str, api_key: str | None, api_secret: str | None, settle: float
) -> None:
    """Prove each service's key: every call it needs, one it must be refused; exit 1 if not."""
    try:
        outputs = read_outputs(outputs_path, sys.stdin.read() if outputs_path == "-" else None)
        deployment = Deployment.of(outputs)
        deployment.require(("instance_pool_id", "nlb_id"))
    except OutputsError as exc:
        raise click.UsageError(str(exc)) from None
    operator_pair = (api_key, api_secret) if api_key and api_secret else None
    operator_pair = operator_pair or deployment.lab_operator_key
    operator = SignedApi(deployment.api_endpoint, *operator_pair) if operator_pair else None
    report = check_keys(deployment, operator, settle=settle)
    for result in report.results:
        click.echo(result.line())
    passed = sum(r.ok for r in report.results)
    scope = {True: "scoped", False: "operation-only", None: "scope unknown"}[report.scope_by_id]
    if report.ok:
        click.echo(f"keys proven: {passed}/{len(report.results)} calls as expected ({scope} roles)")
        return
    for line in report.advice():
        click.echo(line)
    click.echo(f"keys NOT proven: {len(report.results) - passed} of {len(report.results)} "
               f"calls not as expected ({scope} roles)")  # fmt: skip
    sys.exit(1)
