"""The pieces a baseline scaler reuses, wired into an app of its own as exo-lab's naive does."""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import Scope

from exo_scaler import (
    MAX_BODY_BYTES,
    Authenticator,
    AuthMiddleware,
    BodyTooLarge,
    Direction,
    IntentBook,
    PayloadError,
    parse_alert_payload,
    read_limited,
)

from .conftest import TOKEN

BEARER = {"Authorization": f"Bearer {TOKEN}"}


def baseline_app(refused: list[str]) -> Starlette:
    book = IntentBook()

    async def webhook(request: Request) -> Response:
        try:
            raw = await read_limited(request, MAX_BODY_BYTES)
            parsed = parse_alert_payload(raw, label="action")
        except BodyTooLarge as exc:
            return JSONResponse({"error": str(exc)}, 413)
        except PayloadError as exc:
            return JSONResponse({"error": exc.message}, exc.status)
        recorded = book.record(parsed.directions, parsed.source)
        return JSONResponse({"recorded": [d.value for d in recorded]})

    async def status(_request: Request) -> Response:
        return JSONResponse({"pending": [i.to_json() for i in book.pending()]})

    def count(scope: Scope) -> None:
        refused.append(scope["path"])

    app = Starlette(
        routes=[
            Route("/webhook", webhook, methods=["POST"]),
            Route("/status", status, methods=["GET"]),
        ]
    )
    app.add_middleware(
        AuthMiddleware,
        authenticator=Authenticator(TOKEN),
        protected={"/webhook"},
        realm="naive",
        on_refused=count,
    )
    return app


def test_a_baseline_gets_the_same_auth_body_limit_and_parser(
    fixture_bytes: Callable[[str], bytes],
) -> None:
    refused: list[str] = []
    client = TestClient(baseline_app(refused))
    body = fixture_bytes("alertmanager_mixed.json")  # two firing "down" alerts
    response = client.post("/webhook", content=body)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="naive", Basic realm="naive"'
    assert refused == ["/webhook"]
    assert client.get("/status").status_code == 200  # unprotected paths pass
    assert client.post("/webhook", content=body, headers=BEARER).json() == {"recorded": ["down"]}
    [intent] = client.get("/status").json()["pending"]
    assert (intent["direction"], intent["count"]) == (Direction.DOWN.value, 1)
    big = b"{" + b" " * MAX_BODY_BYTES + b"}"
    assert client.post("/webhook", content=big, headers=BEARER).status_code == 413
    assert client.post("/webhook", content=b"{bad", headers=BEARER).status_code == 400
