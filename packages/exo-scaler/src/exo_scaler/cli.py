"""`exo-scaler serve`: a thin click layer over ScalerSettings and `start`.

The project's one error convention: bad usage is click's usage error (exit 2); a failed start
is one line on stderr naming the program, the problem and what to do (exit 1); never a
traceback, and nothing left behind (the socket and the API client are closed).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import click
from prometheus_client import CollectorRegistry

from exo_client import (
    AuthError,
    ClientSettings,
    ExoApiError,
    ExoClient,
    MissingCredentialError,
    NotFoundError,
    RetryPolicy,
)

from .app import create_app
from .events import EventLog
from .exoscale import ExoPoolTarget
from .metrics import ScalerMetrics
from .scaler import Scaler
from .server import listen
from .server import serve as serve_app
from .settings import (
    DEFAULT_DRAIN_URL,
    POLICIES,
    SCALE_DOWN_POLICIES,
    SIGNAL_NAMES,
    ScalerSettings,
    SettingsError,
)

log = logging.getLogger("exo_scaler.cli")


class StartError(click.ClickException):
    """A start that cannot go on: one line on stderr, exit 1, never a traceback."""

    def show(self, file: object = None) -> None:
        click.echo(f"exo-scaler: error: {self.format_message()}", err=True)


def _secret(path: Path | None, env_name: str, what: str) -> str | None:
    """A secret from a file (flag wins) or the environment; never from the command line."""
    if path is not None:
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise click.UsageError(f"cannot read the {what} file {path}: {exc.strerror}") from None
        if not value:
            raise click.UsageError(f"the {what} file {path} is empty")
        return value
    return os.environ.get(env_name) or None


def _signal_refs(given: tuple[str, ...], value_ref: str | None) -> tuple[tuple[str, str], ...]:
    """--signal NAME=REFID pairs; --value-ref X (the old flag) is --signal cpu=X."""
    pairs = []
    for text in given:
        name, sep, ref = text.partition("=")
        if not sep:
            raise click.BadParameter(f"{text!r} is not NAME=REFID", param_hint="--signal")
        pairs.append((name.strip(), ref.strip()))
    if value_ref is not None:
        if any(name == "cpu" for name, _ in pairs):
            raise click.UsageError("--value-ref is the old --signal cpu=REFID: give one of them")
        pairs.append(("cpu", value_ref))
    return tuple(pairs)


@click.group()
def main() -> None:
    """Webhook-driven scaler for an Exoscale instance pool."""


@main.command()
@click.option("--pool", envvar="EXOSCALE_INSTANCEPOOL_ID", default="", help="Pool id or name.")
@click.option("--min", "min_size", envvar="EXO_SCALER_MIN", type=int, default=1, show_default=True)
@click.option("--max", "max_size", envvar="EXO_SCALER_MAX", type=int, default=4, show_default=True)
@click.option("--step", type=int, default=1, show_default=True)
@click.option(
    "--interval", envvar="EXO_SCALER_INTERVAL", type=float, default=60.0, show_default=True
)
@click.option(
    "--policy",
    envvar="EXO_SCALER_POLICY",
    type=click.Choice(POLICIES),
    default="demand",
    show_default=True,
    help="demand: sized from arrivals × CPU per request; proportional: from the alert's CPU "
    "value; step: the seed's ±step a tick.",
)
@click.option(
    "--target-value", type=float, default=70.0, show_default=True, help="Value to track (CPU %)."
)
@click.option("--max-step", type=int, default=2, show_default=True)
@click.option(
    "--saturation",
    type=float,
    default=98.0,
    show_default=True,
    help="A value at or above this means saturated members: scale up at least ×2.",
)
@click.option("--value-annotation", "value_annotations", multiple=True, default=("value", "cpu"))
@click.option(
    "--signal",
    "signals",
    multiple=True,
    metavar="NAME=REFID",
    help="Where a demand signal is read: Grafana values[REFID], else annotation value_REFID "
    f"(repeatable; NAME: {', '.join(SIGNAL_NAMES)}; default REFID = NAME).",
)
@click.option("--value-ref", default=None, hidden=True, help="Old name of --signal cpu=REFID.")
@click.option(
    "--member-cores",
    type=float,
    default=1.0,
    show_default=True,
    help="vCPUs of a member (the instance type's), for the demand policy.",
)
@click.option(
    "--nlb",
    envvar="EXO_SCALER_NLB",
    default=None,
    help="NLB id whose health checks tell which members serve (else: the VM state).",
)
@click.option(
    "--warm-up",
    type=float,
    default=70.0,
    show_default=True,
    help="Seconds from new members serving to an alert value that measures them.",
)
@click.option("--warm-up-limit", type=float, default=600.0, show_default=True)
@click.option("--carry-ticks", type=int, default=5, show_default=True)
@click.option("--unhealthy-after", type=float, default=300.0, show_default=True)
@click.option("--max-hourly-cost", type=float, default=None, help="Cap on members x price.")
@click.option("--price-per-member-hour", type=float, default=None)
@click.option("--dry-run", is_flag=True, help="Decide and log, never call the API to scale.")
@click.option("--direction-label", default="action", show_default=True)
@click.option(
    "--scale-down-policy",
    type=click.Choice(SCALE_DOWN_POLICIES),
    default="newest",
    show_default=True,
)
@click.option("--prometheus-url", envvar="PROMETHEUS_URL", default=None)
@click.option("--drain-url", default=DEFAULT_DRAIN_URL, show_default=True)
@click.option("--drain-token-file", type=click.Path(path_type=Path), default=None)
@click.option("--drain-seconds", type=float, default=0.0, show_default=True)
@click.option("--operation-timeout", type=float, default=600.0, show_default=True)
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", envvar="LISTEN_PORT", type=int, default=8090, show_default=True)
@click.option("--token-file", type=click.Path(path_type=Path), default=None)
@click.option("--basic-user", default=None, help="Basic auth user name (default: any).")
@click.option(
    "--no-auth",
    is_flag=True,
    envvar="EXO_SCALER_NO_AUTH",
    help="Leave mutating routes open (explicit opt-in; warns at start).",
)
@click.option("--api-key", default=None, hidden=True)
@click.option("--zone", default=None)
@click.option("--api-endpoint", default=None)
@click.option("--log-level", default="info", show_default=True)
def serve(
    pool: str,
    min_size: int,
    max_size: int,
    step: int,
    interval: float,
    policy: str,
    target_value: float,
    max_step: int,
    saturation: float,
    value_annotations: tuple[str, ...],
    signals: tuple[str, ...],
    value_ref: str | None,
    member_cores: float,
    nlb: str | None,
    warm_up: float,
    warm_up_limit: float,
    carry_ticks: int,
    unhealthy_after: float,
    max_hourly_cost: float | None,
    price_per_member_hour: float | None,
    dry_run: bool,
    direction_label: str,
    scale_down_policy: str,
    prometheus_url: str | None,
    drain_url: str,
    drain_token_file: Path | None,
    drain_seconds: float,
    operation_timeout: float,
    host: str,
    port: int,
    token_file: Path | None,
    basic_user: str | None,
    no_auth: bool,
    api_key: str | None,
    zone: str | None,
    api_endpoint: str | None,
    log_level: str,
) -> None:
    """Receive webhooks and scale the pool every --interval seconds."""
    logging.basicConfig(
        level=log_level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    # Under --no-auth a token set in the environment is not even read, so an environment
    # that carries both still starts; what --no-auth means for the routes is app._protect alone.
    token = None if no_auth else _secret(token_file, "EXO_SCALER_TOKEN", "token")
    drain_token = _secret(drain_token_file, "SLOW_WEB_ADMIN_TOKEN", "drain token")
    try:
        settings = ScalerSettings(
            pool=pool,
            min_size=min_size,
            max_size=max_size,
            step=step,
            interval=interval,
            policy=policy,  # type: ignore[arg-type]
            target_value=target_value,
            max_step=max_step,
            saturation=saturation,
            value_annotations=tuple(value_annotations),
            signals=_signal_refs(signals, value_ref),
            member_cores=member_cores,
            nlb=nlb,
            warm_up=warm_up,
            warm_up_limit=warm_up_limit,
            carry_ticks=carry_ticks,
            unhealthy_after=unhealthy_after,
            max_hourly_cost=max_hourly_cost,
            price_per_member_hour=price_per_member_hour,
            dry_run=dry_run,
            direction_label=direction_label,
            scale_down_policy=scale_down_policy,  # type: ignore[arg-type]
            prometheus_url=prometheus_url,
            drain_url=drain_url,
            drain_token=drain_token,
            drain_seconds=drain_seconds,
            operation_timeout=operation_timeout,
            # operation_poll left unset: the SDKs' 3 s schedule, shrunk for ticks < 1 min.
            auth_token=token,
            basic_user=basic_user,
            no_auth=no_auth,
        )
        client_settings = ClientSettings.from_env(
            api_key=api_key, zone=zone, endpoint=api_endpoint, timeout=5.0
        )
    except (SettingsError, MissingCredentialError) as exc:
        raise click.UsageError(str(exc)) from None
    start(settings, client_settings, host=host, port=port, log_level=log_level.lower())


def start(
    settings: ScalerSettings,
    client_settings: ClientSettings,
    *,
    host: str,
    port: int,
    log_level: str = "info",
) -> None:
    """Check the pool (and --nlb), listen, and serve until SIGTERM/SIGINT; StartError when
    that cannot be done."""
    # A short retry budget: a tick is never worth more than a few seconds of backoff.
    client = ExoClient(client_settings, retry=RetryPolicy(attempts=3, base_delay=0.2, max_delay=2))
    try:
        metrics = ScalerMetrics(CollectorRegistry())
        events = EventLog()
        target = ExoPoolTarget(settings, client, metrics, events=events)
        app = create_app(settings, target, metrics=metrics, events=events)
        _check_pool(target, app.state.scaler)
        try:
            sock = listen(host, port)
        except OSError as exc:
            raise StartError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                "choose another --port (or LISTEN_PORT) or stop what uses it"
            ) from None
        serve_app(app, sock, log_level=log_level)
    finally:
        client.close()


def _check_pool(target: ExoPoolTarget, scaler: Scaler) -> None:
    """The one lookup by reference (later reads use the id it resolves to), and --nlb: an
    unknown pool, rejected credentials, or an NLB without a service for the pool stop the
    start; an unreachable API or a refused NLB read do not."""
    try:
        found = target.read_pool()
    except NotFoundError as exc:
        raise StartError(f"{exc}; check --pool (or EXOSCALE_INSTANCEPOOL_ID)") from None
    except AuthError as exc:
        raise StartError(
            f"{exc}; check EXOSCALE_API_KEY/EXOSCALE_API_SECRET and the key's role"
        ) from None
    except ExoApiError as exc:
        log.warning("cannot read the pool yet (%s); the loop will keep trying", exc)
        return
    log.info("pool %s (%s): size %d, %s", found.name, found.id, found.size, found.state)
    nlb = target.settings.nlb
    if nlb is None:
        return
    try:
        health = target.read_health()
    except NotFoundError as exc:
        # A typo, or an NLB whose service targets another pool: every scale-up would only
        # wait --warm-up-limit for members nobody can see serve.
        raise StartError(f"--nlb {nlb}: {exc}; check --nlb (or EXO_SCALER_NLB)") from None
    except AuthError as exc:
        # Refused (403): run on, members counted as warming until the limit (conditions.py).
        scaler.conditions.nlb_health(str(exc), time.time(),
                                     warm_up_limit=target.settings.warm_up_limit)  # fmt: skip
    except ExoApiError as exc:
        log.warning("cannot read NLB %s yet (%s); the loop will keep trying", nlb, exc)
    else:
        healthy = sum(health.values())
        log.info("NLB %s: %d of %d member(s) pass its health check", nlb, healthy, len(health))
