"""`exo-lab`: the local Exoscale zone, and the whole autoscaling stack on one machine.

A thin click layer, one module per command: `zone` serves dataplane.standalone.serve_zone,
`run` runs stack.run.run_lab (or deployment.run.run_target with --target), `load` runs
load.generator.run_load, `up`/`down` run deployment.background and `verify`
deployment.verify.

Errors, as in every console script of the project: bad usage is click's usage error (exit 2);
a failed start or run is one line on stderr, `exo-lab <command>: error: <problem>; <what to
do>` (exit 1, through `fail`), after the command stopped what it started; never a traceback,
even for a bug (`LabCli` turns an unexpected exception into the same one line).
"""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import click


class CommandFailed(click.ClickException):
    """A failed start or run: one line on stderr naming the command, exit status 1."""

    exit_code = 1

    def __init__(self, command: str, message: object) -> None:
        super().__init__(str(message))
        self.command = command

    def show(self, file: object = None) -> None:
        click.echo(f"exo-lab {self.command}: error: {self.format_message()}", err=True)


class LabCli(click.Group):
    """The CLI's boundary: an exception nobody expected is still one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            command = ctx.invoked_subcommand or "exo-lab"
            raise CommandFailed(
                command,
                f"unexpected {type(exc).__name__}: {exc}; this is a bug, please report it "
                "with the command line",
            ) from exc


@click.group(cls=LabCli)
@click.option("-v", "--verbose", is_flag=True, help="Log every zone event.")
def main(verbose: bool) -> None:
    """A faithful local Exoscale zone, and the autoscaling stack on one machine."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )


def fail(command: str, message: object) -> NoReturn:
    """End `exo-lab <command>` as a failed start or run: one line on stderr, exit status 1."""
    raise CommandFailed(command, message)


# Registered by import: each module adds its commands to `main`.
from . import deployment, load, run, zone  # noqa: E402

__all__ = ["CommandFailed", "LabCli", "deployment", "fail", "load", "main", "run", "zone"]
