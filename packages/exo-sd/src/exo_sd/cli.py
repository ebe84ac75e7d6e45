"""`exo-sd`: the click layer over Agent. Flags win over the environment."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import click
from prometheus_client import CollectorRegistry, start_http_server

from exo_client import NO_RETRY, ClientSettings, ExoApiError, ExoClient, MissingCredentialError

from .agent import Agent, AgentConfig
from .metrics import SdMetrics
from .runner import install_stop_handlers, run_until_stopped
from .targets import ADDRESS_KINDS

DEFAULT_OUT = "/srv/service-discovery/config.json"


class CliError(click.ClickException):
    """One readable line on stderr and a non-zero exit, never a traceback."""

    def show(self, file: object = None) -> None:
        click.echo(f"exo-sd: error: {self.format_message()}", err=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
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
        raise CliError(str(exc)) from None

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
            raise CliError(f"cannot serve metrics on {where}: {exc}") from None

    def work() -> int:
        if once:
            return 0 if agent.run_once() else 1
        agent.run()
        return 0

    try:
        code = run_until_stopped(work, stop)
    except ExoApiError as exc:
        raise CliError(_explain(exc, config)) from None
    sys.exit(code)


def _explain(exc: ExoApiError, config: AgentConfig) -> str:
    if exc.status in (401, 403):
        return (
            f"the API rejected the credentials ({exc}); check the key and secret, and that "
            f"the key's role allows list-instances for pool {config.pool}"
        )
    return str(exc)
