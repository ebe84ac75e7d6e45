"""The HTTP face of the scaler: webhooks, /up and /down, pause/resume, status, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from exo_client import ExoClient

from .auth import Authenticator
from .body import BodyTooLarge, read_limited
from .decision import Direction
from .decision_log import EventLog
from .metrics import ScalerMetrics
from .scaler import Scaler
from .settings import ScalerSettings
from .webhooks import ParsedPayload, PayloadError, parse_alert_payload

log = logging.getLogger("exo_scaler.app")

_UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Bearer realm="exo-scaler", Basic realm="exo-scaler"'}

Handler = Callable[[Request], Awaitable[Response]]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(
    settings: ScalerSettings,
    client: ExoClient,
    *,
    registry: CollectorRegistry | None = None,
    events: EventLog | None = None,
    http: httpx.AsyncClient | None = None,
) -> Starlette:
    """The app; its lifespan runs the tick loop. `app.state.scaler` is the Scaler."""
    registry = registry if registry is not None else CollectorRegistry()
    metrics = ScalerMetrics(registry)
    owns_http = http is None
    http_client = http if http is not None else httpx.AsyncClient()
    scaler = Scaler(settings, client, metrics, events=events or EventLog(), http=http_client)
    auth = Authenticator(
        None if settings.no_auth else settings.auth_token, basic_user=settings.basic_user
    )

    def guarded(handler: Handler, source: str, direction: str) -> Handler:
        async def checked(request: Request) -> Response:
            if not auth.allows(request.headers):
                metrics.webhooks.labels(source, direction, "unauthorized").inc()
                return _error(401, "missing or wrong credentials", _UNAUTHORIZED_HEADERS)
            return await handler(request)

        return checked

    async def read_payload(
        request: Request, source: str, direction: str, route: Direction | None
    ) -> ParsedPayload | Response:
        try:
            raw = await read_limited(request, settings.max_body_bytes)
        except BodyTooLarge as exc:
            metrics.webhooks.labels(source, direction, "too_large").inc()
            return _error(413, str(exc))
        if route is not None and not raw.strip():
            return ParsedPayload("plain", (route,))
        try:
            return parse_alert_payload(raw, label=settings.direction_label, route_direction=route)
        except PayloadError as exc:
            result = "malformed" if exc.status == 400 else "invalid"
            metrics.webhooks.labels(source, direction, result).inc()
            log.info("refused a %s body: %s", source, exc.message)
            return _error(exc.status, exc.message)

    def record(parsed: ParsedPayload, route: Direction | None) -> JSONResponse:
        recorded = sorted(set(parsed.directions))
        metric_source = parsed.source if route is None else "route"
        source = parsed.source if route is None else f"{route.value}-{parsed.source}"
        for direction in recorded:
            scaler.record_intent(direction, source)
            metrics.webhooks.labels(metric_source, direction.value, "recorded").inc()
        if parsed.ignored:
            log.info("%s: %s", source, "; ".join(parsed.ignored))
        if not recorded:
            direction_label = "none" if route is None else route.value
            metrics.webhooks.labels(metric_source, direction_label, "ignored").inc()
        return JSONResponse(
            {
                "source": parsed.source,
                "recorded": [d.value for d in recorded],
                "ignored": list(parsed.ignored),
            }
        )

    async def webhook(request: Request) -> Response:
        parsed = await read_payload(request, "unknown", "none", None)
        if isinstance(parsed, Response):
            return parsed
        return record(parsed, None)

    def route_for(direction: Direction) -> Handler:
        async def handler(request: Request) -> Response:
            parsed = await read_payload(request, "route", direction.value, direction)
            if isinstance(parsed, Response):
                return parsed
            return record(parsed, direction)

        return handler

    async def pause(_request: Request) -> Response:
        scaler.set_paused(True)
        return JSONResponse({"paused": True})

    async def resume(_request: Request) -> Response:
        scaler.set_paused(False)
        return JSONResponse({"paused": False})

    async def status(_request: Request) -> Response:
        return JSONResponse(scaler.status())

    async def metrics_route(_request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    async def healthz(_request: Request) -> Response:
        return PlainTextResponse("OK")

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, Any]]:
        stop = asyncio.Event()
        loop_task = asyncio.create_task(scaler.run(stop), name="exo-scaler-loop")
        if settings.no_auth:
            log.warning("--no-auth: every mutating route is open to anyone who can reach it")
        try:
            yield {}
        finally:
            stop.set()
            # A tick blocked on a slow API call must not hold up SIGTERM.
            done, _ = await asyncio.wait({loop_task}, timeout=1.0)
            if not done:
                loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await loop_task
            await scaler.close()
            if owns_http:
                await http_client.aclose()

    app = Starlette(
        routes=[
            Route("/webhook", guarded(webhook, "unknown", "none"), methods=["POST"]),
            Route("/up", guarded(route_for(Direction.UP), "route", "up"), methods=["GET", "POST"]),
            Route(
                "/down",
                guarded(route_for(Direction.DOWN), "route", "down"),
                methods=["GET", "POST"],
            ),
            Route("/pause", guarded(pause, "admin", "none"), methods=["POST"]),
            Route("/resume", guarded(resume, "admin", "none"), methods=["POST"]),
            Route("/status", status, methods=["GET"]),
            Route("/metrics", metrics_route, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.scaler = scaler
    app.state.registry = registry
    return app
