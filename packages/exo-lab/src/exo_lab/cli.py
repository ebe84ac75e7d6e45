"""`exo-lab`: the local Exoscale zone and, later, the whole stack on one machine."""

from __future__ import annotations

import logging
import os
import sys

import click

from .serving import base_url, bind, make_server
from .zone import Zone, ZoneTimings
from .zone_api import create_zone_app


def _pool_spec(_: click.Context, __: click.Parameter, values: tuple[str, ...]) -> list[tuple[str, int]]:
    pools = []
    for value in values:
        name, sep, size = value.partition("=")
        if not sep or not name or not size.isdigit():
            raise click.BadParameter(f"{value!r}: expected NAME=SIZE, e.g. web=2")
        pools.append((name, int(size)))
    return pools


def _credentials() -> dict[str, str]:
    key = os.environ.get("EXOSCALE_API_KEY")
    secret = os.environ.get("EXOSCALE_API_SECRET")
    missing = [n for n, v in (("EXOSCALE_API_KEY", key), ("EXOSCALE_API_SECRET", secret)) if not v]
    if missing:
        raise click.UsageError(
            f"set {' and '.join(missing)}: the zone accepts requests signed with that key pair"
        )
    assert key and secret
    return {key: secret}


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
def zone(
    host: str,
    port: int,
    zone_name: str,
    pools: list[tuple[str, int]],
    boot_delay: float,
    operation_delay: float,
    member_network: str,
) -> None:
    """Serve the Exoscale v2 API for instance pools, instances, operations and NLBs."""
    credentials = _credentials()
    try:
        the_zone = Zone(
            zone_name,
            timings=ZoneTimings(boot_delay=boot_delay, operation_delay=operation_delay),
            member_network=member_network,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--member-network") from exc
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    for index, (name, size) in enumerate(pools):
        pool = the_zone.create_pool(name, size)
        the_zone.create_load_balancer(f"{name}-nlb", pool.id, port=8000 + index)
        click.echo(f"pool {name}: id {pool.id}, size {size}")
    click.echo(f"zone {zone_name} API: {base_url(sock, '/v2')}", err=False)
    sys.stdout.flush()
    make_server(create_zone_app(the_zone, credentials)).run(sockets=[sock])
