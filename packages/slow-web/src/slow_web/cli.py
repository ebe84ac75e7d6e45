"""`slow-web serve`: a thin click layer over `slow_web.server.run`.

Errors, as in every console script of the project: bad usage (flags, environment, the token
file) is click's usage error (exit 2); a failed start is one line on stderr, `slow-web: error:
<problem>; <what to do>` (exit 1); never a traceback, even for a bug (`SlowWebGroup`).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

import click

from slow_web import __version__
from slow_web.cpus import usable_cpu_count
from slow_web.server import StartupError, run
from slow_web.settings import Settings

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class StartFailed(click.ClickException):
    """A failed start or run: one line on stderr naming the program, exit status 1."""

    exit_code = 1

    def show(self, file: object = None) -> None:
        click.echo(f"slow-web: error: {self.format_message()}", err=True)


class SlowWebGroup(click.Group):
    """The CLI's boundary: an exception nobody expected is still one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            raise StartFailed(
                f"unexpected {type(exc).__name__}: {exc}; this is a bug, please report it"
            ) from exc


@click.group(cls=SlowWebGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="slow-web")
def cli() -> None:
    """A deliberately slow web app that burns CPU per request."""


@cli.command()
@click.option("--host", envvar="SLOW_WEB_HOST", default="0.0.0.0", show_default=True)
@click.option(
    "--port",
    envvar="SLOW_WEB_PORT",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="0 picks a free port (logged at start-up).",
)
@click.option(
    "--work-ms",
    envvar="SLOW_WEB_WORK_MS",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="CPU milliseconds burned by GET / without ?ms=.",
)
@click.option(
    "--max-work-ms",
    envvar="SLOW_WEB_MAX_WORK_MS",
    type=click.IntRange(min=0),
    default=5000,
    show_default=True,
    help="Largest ?ms= accepted.",
)
@click.option(
    "--load-seconds",
    envvar="SLOW_WEB_LOAD_SECONDS",
    type=float,
    default=10.0,
    show_default=True,
    help="CPU seconds burned by GET /load without ?seconds=.",
)
@click.option(
    "--max-load-seconds",
    envvar="SLOW_WEB_MAX_LOAD_SECONDS",
    type=float,
    default=60.0,
    show_default=True,
    help="Largest ?seconds= accepted by /load.",
)
@click.option(
    "--workers",
    envvar="SLOW_WEB_WORKERS",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes [default: CPUs usable by this process, cgroup quota included].",
)
@click.option(
    "--max-queue",
    envvar="SLOW_WEB_MAX_QUEUE",
    type=click.IntRange(min=0),
    default=None,
    help="Requests allowed to wait for a worker before shedding [default: 4 x workers].",
)
@click.option(
    "--retry-after",
    envvar="SLOW_WEB_RETRY_AFTER",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Retry-After seconds sent with 503 answers.",
)
@click.option(
    "--instance-name",
    envvar="SLOW_WEB_INSTANCE",
    default=None,
    help="Name reported in replies [default: hostname].",
)
@click.option(
    "--drain-timeout",
    envvar="SLOW_WEB_DRAIN_TIMEOUT",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Longest wait for in-flight requests when draining.",
)
@click.option("--admin-host", envvar="SLOW_WEB_ADMIN_HOST", default="127.0.0.1", show_default=True)
@click.option(
    "--admin-port",
    envvar="SLOW_WEB_ADMIN_PORT",
    type=click.IntRange(0, 65535),
    default=8081,
    show_default=True,
)
@click.option(
    "--admin-token-file",
    envvar="SLOW_WEB_ADMIN_TOKEN_FILE",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="File holding the admin bearer token (wins over SLOW_WEB_ADMIN_TOKEN). "
    "Without a token the admin API is not started.",
)
@click.option(
    "--worker-nice",
    envvar="SLOW_WEB_WORKER_NICE",
    type=click.IntRange(0, 19),
    default=10,
    show_default=True,
    help="Nice value added to workers so /health wins the CPU.",
)
@click.option(
    "--access-log/--no-access-log",
    envvar="SLOW_WEB_ACCESS_LOG",
    default=False,
    show_default=True,
    help="One log line per request on the main port.",
)
def serve(
    host: str,
    port: int,
    work_ms: int,
    max_work_ms: int,
    load_seconds: float,
    max_load_seconds: float,
    workers: int | None,
    max_queue: int | None,
    retry_after: int,
    instance_name: str | None,
    drain_timeout: float,
    admin_host: str,
    admin_port: int,
    admin_token_file: Path | None,
    worker_nice: int,
    access_log: bool,
) -> None:
    """Serve the slow web app (and the admin API when a token is configured)."""
    try:
        settings = Settings(
            instance_name=instance_name or socket.gethostname(),
            workers=workers or usable_cpu_count(),
            host=host,
            port=port,
            work_ms=work_ms,
            max_work_ms=max_work_ms,
            load_seconds=load_seconds,
            max_load_seconds=max_load_seconds,
            max_queue=max_queue,
            retry_after_seconds=retry_after,
            drain_timeout=drain_timeout,
            admin_host=admin_host,
            admin_port=admin_port,
            admin_token=_admin_token(admin_token_file),
            worker_nice=worker_nice,
            access_log=access_log,
        )
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format=_LOG_FORMAT, force=True)
    try:
        code = run(settings)
    except StartupError as error:
        raise StartFailed(str(error)) from None
    sys.exit(code)


def _admin_token(token_file: Path | None) -> str | None:
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as error:
            raise click.UsageError(f"cannot read admin token file {token_file}: {error}") from None
        if not token:
            raise click.UsageError(f"admin token file {token_file} is empty")
        return token
    return os.environ.get("SLOW_WEB_ADMIN_TOKEN") or None


def main(argv: list[str] | None = None) -> None:
    """Entry point (the `slow-web` console script)."""
    cli.main(args=argv, prog_name="slow-web")


if __name__ == "__main__":
    main()
