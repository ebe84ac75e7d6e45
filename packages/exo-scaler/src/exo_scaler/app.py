"""The HTTP face of the scaler: webhooks, /up and /down, pause/resume, status, metrics.

Handlers are module-level functions that find the scaler, its settings and metrics on
`request.app.state`; `create_app(settings, target)` wires them, the loop, the metrics and the
authentication together. The caller chooses the target (the CLI: `ExoPoolTarget`; tests and
the lab: their own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, make_asgi_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .acting import Actuator
from .auth import Authenticator, AuthMiddleware
from .body import BodyTooLarge, read_limited
from .events import EventLog
from .intents import Direction
from .metrics import ScalerMetrics, StateCollector
from .overview import gauges, status_json
from .scaler import Scaler
from .settings import SIGNAL_NAMES, ScalerSettings
from .strategy import TRIGGERS
from .target import PoolTarget
from .webhooks import ParsedPayload, PayloadError, parse_alert_payload

log = logging.getLogger("exo_scaler.app")


class GuardedRoute(Route):
    """A route that needs credentials; `counted_as` is the (source, direction) its refusals
    are counted under in exo_scaler_webhooks_received_total."""

    def __init__(
        self, path: str, endpoint: Callable[..., Any], *, methods: Sequence[str],
        counted_as: tuple[str, str],
    ) -> None:  # fmt: skip
        super().__init__(path, endpoint, methods=list(methods))
        self.counted_as = counted_as


class _Asgi:
    """An ASGI callable Starlette's Route mounts as is (a plain function it would wrap as a
    request handler)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def create_app(
    settings: ScalerSettings,
    target: PoolTarget,
    *,
    metrics: ScalerMetrics | None = None,
    events: EventLog | None = None,
    http: httpx.AsyncClient | None = None,
) -> Starlette:
    """The app; its lifespan runs the tick loop.

    `metrics` carries the registry /metrics serves (a new one when None; pass the one the
    target counts into). `app.state` holds `settings`, `metrics`, `registry`, `target` and
    `scaler` (the loop).
    """
    metrics = metrics if metrics is not None else ScalerMetrics(CollectorRegistry())
    registry = metrics.registry
    events = events or EventLog()
    http_client = http if http is not None else httpx.AsyncClient()
    actuator = Actuator(settings, target, events=events, http=http_client)
    scaler = Scaler(settings, target, metrics, actuator, events=events)
    registry.register(StateCollector(lambda: gauges(scaler)))
    routes: list[BaseRoute] = [
        GuardedRoute("/webhook", webhook, methods=["POST"], counted_as=("unknown", "none")),
        GuardedRoute("/up", scale_up, methods=["GET", "POST"], counted_as=("route", "up")),
        GuardedRoute("/down", scale_down, methods=["GET", "POST"], counted_as=("route", "down")),
        GuardedRoute("/pause", pause, methods=["POST"], counted_as=("admin", "none")),
        GuardedRoute("/resume", resume, methods=["POST"], counted_as=("admin", "none")),
        # Read-only, but decisions say when and how a deployment scales: same credentials.
        GuardedRoute("/decisions", decisions, methods=["GET"], counted_as=("admin", "none")),
        Route("/status", status, methods=["GET"]),
        Route("/metrics", _Asgi(make_asgi_app(registry)), methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=_lifespan)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.registry = registry
    app.state.target = target
    app.state.scaler = scaler
    app.state.owned_http = http_client if http is None else None
    _protect(app, settings, {r.path: r.counted_as for r in routes
                             if isinstance(r, GuardedRoute)})  # fmt: skip
    return app


def _protect(app: Starlette, settings: ScalerSettings, guarded: dict[str, tuple[str, str]]) -> None:
    """The one place --no-auth is honoured: without it, the middleware guards every
    GuardedRoute; with it, nothing does, and we say so loudly."""
    if settings.no_auth or settings.auth_token is None:
        log.warning("--no-auth: every mutating route is open to anyone who can reach it")
        return
    app.state.guarded = guarded
    app.add_middleware(
        AuthMiddleware,
        authenticator=Authenticator(settings.auth_token, basic_user=settings.basic_user),
        protected=guarded.keys(),
        on_refused=_count_refusal,
    )


def _count_refusal(scope: Scope) -> None:
    state = scope["app"].state
    source, direction = state.guarded[scope["path"]]
    state.metrics.webhooks.labels(source, direction, "unauthorized").inc()


# -- state ---------------------------------------------------------------------------------------


def _scaler(request: Request) -> Scaler:
    scaler: Scaler = request.app.state.scaler
    return scaler


def _metrics(request: Request) -> ScalerMetrics:
    metrics: ScalerMetrics = request.app.state.metrics
    return metrics


def _settings(request: Request) -> ScalerSettings:
    settings: ScalerSettings = request.app.state.settings
    return settings


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# -- intents -------------------------------------------------------------------------------------


async def webhook(request: Request) -> Response:
    return await _receive(request, None)


async def scale_up(request: Request) -> Response:
    return await _receive(request, Direction.UP)


async def scale_down(request: Request) -> Response:
    return await _receive(request, Direction.DOWN)


async def _receive(request: Request, route: Direction | None) -> Response:
    """Read, parse and record one request; a refused body records nothing."""
    settings, metrics = _settings(request), _metrics(request)
    source, direction = ("unknown", "none") if route is None else ("route", route.value)
    try:
        raw = await read_limited(request, settings.max_body_bytes)
    except BodyTooLarge as exc:
        metrics.webhooks.labels(source, direction, "too_large").inc()
        return _error(413, str(exc))
    try:
        parsed = parse_alert_payload(
            raw,
            label=settings.direction_label,
            route_direction=route,
            value_annotations=settings.value_annotations,
            signal_refs={name: settings.signal_ref(name) for name in SIGNAL_NAMES},
            triggers=TRIGGERS[settings.policy],
        )
    except PayloadError as exc:
        result = "malformed" if exc.status == 400 else "invalid"
        metrics.webhooks.labels(source, direction, result).inc()
        log.info("refused a %s body: %s", source, exc.message)
        return _error(exc.status, exc.message)
    return _record(request, parsed, route)


def _record(request: Request, parsed: ParsedPayload, route: Direction | None) -> JSONResponse:
    metrics = _metrics(request)
    metric_source = parsed.source if route is None else "route"
    source = parsed.source if route is None else f"{route.value}-{parsed.source}"
    recorded = _scaler(request).record_intents(parsed.directions, source, signals=parsed.signals)
    for direction in recorded:
        metrics.webhooks.labels(metric_source, direction.value, "recorded").inc()
    for skip in parsed.skipped:
        metrics.alerts_ignored.labels(skip.value).inc()
    if parsed.test_notification:
        # Acknowledged with a 2xx so Grafana's "Test" button reports the contact point works.
        log.warning("%s: contact-point test notification received; it never scales", source)
    elif parsed.ignored:
        log.info("%s: %s", source, "; ".join(parsed.ignored))
    if parsed.truncated:
        log.warning("%s: the sender left out %d alert(s) (max_alerts)", source, parsed.truncated)
    if not recorded:
        direction_label = "none" if route is None else route.value
        metrics.webhooks.labels(metric_source, direction_label, "ignored").inc()
    return JSONResponse(
        {
            "source": parsed.source,
            "recorded": [d.value for d in recorded],
            "ignored": list(parsed.ignored),
            "test_notification": parsed.test_notification,
        }
    )


# -- administration and observation --------------------------------------------------------------


async def pause(request: Request) -> Response:
    _scaler(request).set_paused(True)
    return JSONResponse({"paused": True})


async def resume(request: Request) -> Response:
    _scaler(request).set_paused(False)
    return JSONResponse({"paused": False})


async def status(request: Request) -> Response:
    return JSONResponse(status_json(_scaler(request)))


async def decisions(request: Request) -> Response:
    """The recent decisions, newest last (a bounded ring: scaler.DECISION_RING), for a load
    test against a real deployment that cannot read the scaler's log."""
    raw = request.query_params.get("since")
    since: float | None = None
    if raw is not None:
        try:
            since = float(raw)
        except ValueError:
            since = math.nan
        if not math.isfinite(since):
            return _error(400, "since must be a number of unix seconds")
    records = _scaler(request).decisions_since(since)
    return JSONResponse({"decisions": [r.to_json() for r in records]})


async def healthz(_request: Request) -> Response:
    return PlainTextResponse("OK")


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    """Runs the tick loop while the app serves."""
    scaler: Scaler = app.state.scaler
    stop = asyncio.Event()
    loop_task = asyncio.create_task(scaler.run(stop), name="exo-scaler-loop")
    try:
        yield
    finally:
        stop.set()
        # A tick blocked on a slow API call must not hold up SIGTERM.
        done, _ = await asyncio.wait({loop_task}, timeout=1.0)
        if not done:
            loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await loop_task
        await scaler.close()
        owned: httpx.AsyncClient | None = app.state.owned_http
        if owned is not None:
            await owned.aclose()
