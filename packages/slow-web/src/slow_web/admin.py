"""The admin app on its own port: authenticated drain, resume and status."""

from __future__ import annotations

import hmac
import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from slow_web.app import Runtime

logger = logging.getLogger("slow_web.admin")

_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def create_admin_app(runtime: Runtime) -> Starlette:
    """Every request must carry `Authorization: Bearer <admin token>`."""
    token = runtime.settings.admin_token
    if not token:
        raise ValueError("the admin app needs an admin token")

    def status_body() -> dict[str, object]:
        return {
            "instance": runtime.settings.instance_name,
            "draining": runtime.drain.draining,
            "drained": runtime.drain.drained,
            "exit_after_drain": runtime.drain.exit_after_drain,
            "in_flight": runtime.pool.admitted,
            "queued": max(0, runtime.pool.waiting),
            "workers": runtime.pool.workers,
            "queue_limit": runtime.pool.queue_limit,
        }

    async def drain(request: Request) -> Response:
        raw = request.query_params.get("exit", "true").lower()
        if raw not in _BOOLEANS:
            return JSONResponse({"error": f"exit must be true or false, got {raw[:20]!r}"}, 400)
        runtime.drain.begin(exit_after=_BOOLEANS[raw], reason="admin")
        return JSONResponse(status_body(), status_code=202)

    async def resume(_request: Request) -> Response:
        if not runtime.drain.resume():
            return JSONResponse(
                {"error": "an exit after drain was requested; it cannot be undone"}, 409
            )
        return JSONResponse(status_body())

    async def status(_request: Request) -> Response:
        return JSONResponse(status_body())

    app = Starlette(
        routes=[
            Route("/admin/drain", drain, methods=["POST"]),
            Route("/admin/resume", resume, methods=["POST"]),
            Route("/admin/status", status, methods=["GET"]),
        ]
    )
    app.add_middleware(_BearerAuth, token=token)
    return app


class _BearerAuth:
    """401 without credentials, 403 with wrong ones; the token is compared in constant time."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, presented = header.partition(b" ")
        if scheme.lower() != b"bearer" or not presented.strip():
            response: Response = JSONResponse(
                {"error": "missing bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="slow-web-admin"'},
            )
        elif not hmac.compare_digest(presented.strip(), self._token):
            client = scope.get("client")
            logger.warning(
                "admin request refused: wrong token from %s", client[0] if client else "?"
            )
            response = JSONResponse({"error": "invalid token"}, status_code=403)
        else:
            await self._app(scope, receive, send)
            return
        await response(scope, receive, send)
