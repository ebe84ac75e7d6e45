"""The public HTTP app: `/` and `/load` burn CPU, `/health`, `/metrics`."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import time
from collections.abc import AsyncIterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slow_web.drain import DrainController
from slow_web.metrics import Metrics, route_label
from slow_web.settings import Settings
from slow_web.workpool import Abandoned, Overloaded, WorkerFailed, WorkPool

_WHOLE_NUMBER = re.compile(r"[0-9]{1,12}")
_DECIMAL_NUMBER = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?")


@dataclasses.dataclass
class Runtime:
    """Everything the main app and the admin app share inside one process."""

    settings: Settings
    registry: CollectorRegistry
    pool: WorkPool
    drain: DrainController
    metrics: Metrics

    @classmethod
    def build(cls, settings: Settings, registry: CollectorRegistry) -> Runtime:
        pool = WorkPool(settings.workers, settings.queue_limit, settings.worker_nice)
        drain = DrainController(pool, settings.drain_timeout)
        metrics = Metrics(registry)
        metrics.observe_runtime(pool, drain)
        return cls(settings, registry, pool, drain, metrics)


class BadParameter(Exception):
    pass


def create_app(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    runtime: Runtime | None = None,
) -> Starlette:
    """The main app. Metrics go to `registry` (a fresh one if omitted, never the global one);
    pass `runtime` to share the pool and drain state with an admin app."""
    if runtime is None:
        runtime = Runtime.build(settings, registry or CollectorRegistry())
    shared = runtime

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await shared.pool.start()
        try:
            yield
        finally:
            await shared.pool.stop()

    async def burn_ms(request: Request) -> Response:
        try:
            ms = _whole_ms(request, shared.settings)
        except BadParameter as error:
            return _error(400, str(error))
        return await _do_work(shared, "/", ms / 1000.0, requested={"requested_ms": ms})

    async def load(request: Request) -> Response:
        try:
            seconds = _load_seconds(request, shared.settings)
        except BadParameter as error:
            return _error(400, str(error))
        return await _do_work(shared, "/load", seconds, requested={"requested_seconds": seconds})

    async def health(_request: Request) -> Response:
        if shared.drain.draining:
            return PlainTextResponse("DRAINING", status_code=503)
        return PlainTextResponse("OK")

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(shared.registry), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(
        routes=[
            Route("/", burn_ms, methods=["GET"]),
            Route("/load", load, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.runtime = shared
    app.add_middleware(_RequestMetrics, metrics=shared.metrics)
    return app


async def _do_work(
    runtime: Runtime, route: str, cpu_seconds: float, requested: dict[str, float]
) -> Response:
    retry_after = {"Retry-After": str(runtime.settings.retry_after_seconds)}
    if runtime.drain.draining:
        # Connection: close moves keep-alive clients (and balancers) off this instance.
        return _error(503, "draining", headers={**retry_after, "Connection": "close"})
    started = time.monotonic()
    try:
        async with runtime.pool.admission():
            outcome = await runtime.pool.burn(cpu_seconds)
    except Overloaded as error:
        runtime.metrics.shed.labels(route=route).inc()
        return _error(503, f"overloaded: {error}", headers=retry_after)
    except Abandoned:
        return _error(503, "abandoned: the instance is shutting down", headers=retry_after)
    except WorkerFailed as error:
        return _error(500, str(error))
    runtime.metrics.work_cpu_seconds.inc(outcome.burn.cpu_seconds)
    runtime.metrics.queue_wait.observe(max(0.0, outcome.queue_wait_seconds))
    return JSONResponse(
        {
            "instance": runtime.settings.instance_name,
            **requested,
            "cpu_ms": round(outcome.burn.cpu_seconds * 1000, 3),
            "worker_wall_ms": round(outcome.burn.wall_seconds * 1000, 3),
            "queue_wait_ms": round(max(0.0, outcome.queue_wait_seconds) * 1000, 3),
            "total_ms": round((time.monotonic() - started) * 1000, 3),
            "worker_pid": outcome.burn.worker_pid,
        }
    )


def _whole_ms(request: Request, settings: Settings) -> int:
    raw = request.query_params.get("ms")
    if raw is None:
        return settings.work_ms
    if _WHOLE_NUMBER.fullmatch(raw) is None or int(raw) > settings.max_work_ms:
        raise BadParameter(
            f"ms must be an integer between 0 and {settings.max_work_ms}, got {raw[:40]!r}"
        )
    return int(raw)


def _load_seconds(request: Request, settings: Settings) -> float:
    raw = request.query_params.get("seconds")
    if raw is None:
        return settings.load_seconds
    if _DECIMAL_NUMBER.fullmatch(raw) is None or not 0 < float(raw) <= settings.max_load_seconds:
        raise BadParameter(
            f"seconds must be a number > 0 and <= {settings.max_load_seconds:g}, got {raw[:40]!r}"
        )
    return float(raw)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class _RequestMetrics:
    """Counts and times every HTTP request by route and status (pure ASGI middleware)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        route = route_label(scope["path"])
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, send_and_record)
        finally:
            self._metrics.requests.labels(route=route, status=str(status)).inc()
            self._metrics.latency.labels(route=route).observe(time.perf_counter() - started)
