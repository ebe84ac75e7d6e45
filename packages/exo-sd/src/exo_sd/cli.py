"""`exo-sd`: the click layer over Agent. Flags win over the environment.

Errors, as in every console script of the project: bad usage (flags, environment) is click's
usage error (exit 2); a failed start or run is one line on stderr, `exo-sd: error: <problem>;
<what to do>` (exit 1); never a traceback, even for a bug (`SdCommand`); the targets file is
only ever replaced whole.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import click
from prometheus_client import CollectorRegistry, start_http_server

from exo_client import (
    NO_RETRY,
    BadRequestError,
    ClientSettings,
    ExoApiError,
    ExoClient,
    MissingCredentialError,
    NotFoundError,
)

from .agent import Agent, AgentConfig
from .metrics import SdMetrics
from .runner import install_stop_handlers, run_until_stopped
from .targets import ADDRESS_KINDS

DEFAULT_OUT = "/srv/service-discovery/config.json"


class CliError(click.ClickException):
    """A failed start or run: one line on stderr naming the program, exit status 1."""

    exit_code = 1

    def show(self, file: object = None) -> None:
        click.echo(f"exo-sd: error: {self.format_message()}", err=True)


class SdCommand(click.Command):
    """The CLI's boundary: an exception nobody expected is still one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            raise CliError(
                f"unexpected {type(exc).__name__}: {exc}; this is a bug, please report it"
            ) from exc


@click.command(cls=SdCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--pool",
    envvar="EXOSCALE_INSTANCEPOOL_ID",
    required=True,
    help="Instance pool id (never looked up: the key may only list its members)."
    "  [env: EXOSCALE_INSTANCEPOOL_ID]",
)
@click.option(
    "--port",
    envvar="TARGET_PORT",
    type=click.IntRange(1, 65535),
    default=9100,
    show_default=True,
    help="Port written next to every member address.  [env: TARGET_PORT]",
)
@click.option(
    "--out",
    envvar="EXO_SD_OUT",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="file_sd JSON file to write (its folder is created).  [env: EXO_SD_OUT]",
)
@click.option(
    "--interval",
    envvar="EXO_SD_INTERVAL",
    type=click.FloatRange(min=0.05),
    default=15.0,
    show_default=True,
    help="Seconds between refreshes.",
)
@click.option(
    "--address",
    type=click.Choice(ADDRESS_KINDS),
    default="public",
    show_default=True,
    help="Which member address to list: public IPv4 or IPv6 (the list call has no private IP).",
)
@click.option("--once", is_flag=True, help="Refresh once and exit: 0 if written, 1 if not.")
@click.option(
    "--metrics-port",
    envvar="EXO_SD_METRICS_PORT",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve the agent's own /metrics on this port (off by default).",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@click.option(
    "--max-backoff",
    type=click.FloatRange(min=0.05),
    default=60.0,
    show_default=True,
    help="Longest wait between retries after API errors (the first is 1 s, then doubling).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Timeout of one API request, in seconds.",
)
@click.option("--api-key", default=None, help="[env: EXOSCALE_API_KEY or EXOSCALE_KEY]")
@click.option(
    "--api-secret",
    default=None,
    help="Prefer the environment: a flag is visible in ps.  [env: EXOSCALE_API_SECRET or"
    " EXOSCALE_SECRET]",
)
@click.option("--zone", default=None, help="[env: EXOSCALE_ZONE; default ch-gva-2]")
@click.option("--endpoint", default=None, help="v2 API base URL.  [env: EXOSCALE_API_ENDPOINT]")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.version_option(package_name="exo-sd")
def main(
    pool: str,
    port: int,
    out: Path,
    interval: float,
    address: str,
    once: bool,
    metrics_port: int | None,
    metrics_host: str,
    max_backoff: float,
    timeout: float,
    api_key: str | None,
    api_secret: str | None,
    zone: str | None,
    endpoint: str | None,
    log_level: str,
) -> None:
    """Write the running members of an Exoscale instance pool as a Prometheus file_sd file."""
    logging.basicConfig(
        level=log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = ClientSettings.from_env(
            api_key=api_key, api_secret=api_secret, zone=zone, endpoint=endpoint, timeout=timeout
        )
        config = AgentConfig(
            pool=pool,
            out=out,
            port=port,
            zone=settings.zone,
            interval=interval,
            address=address,  # type: ignore[arg-type]
            backoff_base=min(1.0, max_backoff),
            backoff_cap=max_backoff,
        )
    except (MissingCredentialError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None

    stop = threading.Event()
    install_stop_handlers(stop)
    registry = CollectorRegistry()
    # The agent's loop is the retry: a failed call is retried after its backoff, which a
    # signal can cut short, instead of inside the client where it could not.
    client = ExoClient(settings, retry=NO_RETRY)
    agent = Agent(client, config, metrics=SdMetrics(registry), stop=stop)
    if metrics_port is not None:
        try:
            start_http_server(metrics_port, addr=metrics_host, registry=registry)
        except OSError as exc:
            where = f"{metrics_host}:{metrics_port}"
            raise CliError(
                f"cannot serve metrics on {where} ({exc.strerror or exc}): choose another "
                "--metrics-port or stop what holds it"
            ) from None

    def work() -> int:
        if once:
            return 0 if agent.run_once() else 1
        agent.run()
        return 0

    try:
        code = run_until_stopped(work, stop)
    except ExoApiError as exc:
        raise CliError(_explain(exc, config.pool)) from None
    sys.exit(code)


def _explain(exc: ExoApiError, pool: str) -> str:
    if exc.status in (401, 403):
        return (
            f"the API rejected the credentials ({exc}); check EXOSCALE_API_KEY, "
            f"EXOSCALE_API_SECRET and that the key's role allows list-instances for pool {pool}"
        )
    if isinstance(exc, NotFoundError):
        return f"{exc}; check --pool and --zone"
    if isinstance(exc, BadRequestError):
        return f"{exc}; check --pool"
    return f"{exc}; check --endpoint and that the API answers, then start exo-sd again"
