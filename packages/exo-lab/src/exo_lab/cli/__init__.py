"""`exo-lab`: the local Exoscale zone, and the whole autoscaling stack on one machine.

A thin click layer, one module per command: `zone` serves dataplane.standalone.serve_zone,
`run` runs stack.run.run_lab (or deployment.run.run_target with --target), `load` runs
load.generator.run_load, `up`/`down` run deployment.background and `verify`
deployment.verify. Each command ends a failure with one line and exit status 2, never a
traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import click


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log every zone event.")
def main(verbose: bool) -> None:
    """A faithful local Exoscale zone, and the autoscaling stack on one machine."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )


def fail(command: str, message: object) -> NoReturn:
    """One clear line on stderr and status 2: the CLI's boundary, never a traceback."""
    click.echo(f"exo-lab {command}: {message}", err=True)
    sys.exit(2)


# Registered by import: each module adds its commands to `main`.
from . import deployment, load, run, zone  # noqa: E402

__all__ = ["deployment", "fail", "load", "main", "run", "zone"]
