"""The naive autoscaler: the baseline the benchmark compares exo-scaler with.

The common design of public solutions to this assignment: every firing webhook scales the pool
by one at once. It reads the size from the API on each webhook, ignores the pool's state, keeps
no tick, no single flight and no record of operations in progress, and scales down with
`scale` (Exoscale picks who leaves; no evict, no drain). It accepts the same Alertmanager and
Grafana webhooks with the same Bearer token as exo-scaler, so the rest of the lab is unchanged.

    python -m exo_lab.bench.naive --pool ID --port P --token-file F --min 1 --max 5

Each decision is one JSON line on stdout in exo-scaler's shape (event, time, action, from, to,
reason, intents), so the benchmark reads both scalers' logs the same way.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from exo_client import NO_RETRY, ClientSettings, ConflictError, ExoApiError, ExoClient

log = logging.getLogger("exo_lab.bench.naive")

MAX_BODY_BYTES = 64 * 1024
_DIRECTIONS = {"scale_up": "up", "scale-up": "up", "up": "up",
               "scale_down": "down", "scale-down": "down", "down": "down"}  # fmt: skip


@dataclass(frozen=True)
class NaiveSettings:
    pool: str
    token: str
    min_size: int = 1
    max_size: int = 5
    direction_label: str = "action"

    def __post_init__(self) -> None:
        if not 0 <= self.min_size <= self.max_size:
            raise ValueError("need 0 <= min <= max")
        if not self.token:
            raise ValueError("a webhook token is required")


def stdout_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass
class NaiveScaler:
    settings: NaiveSettings
    client: ExoClient
    write: Callable[[str], None] = stdout_line
    clock: Callable[[], float] = time.time
    decisions: int = 0
    last_decision: dict[str, Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def scale(self, direction: str, received_at: float, source: str) -> dict[str, Any]:
        """One webhook's action: read the size, call scale with size±1. Blocking (a thread)."""
        s = self.settings
        size: int | None = None
        try:
            size = self.client.get_pool(s.pool).size
            target = size + 1 if direction == "up" else size - 1
            if target > s.max_size:
                entry = self._entry(direction, size, size, "at-max")
            elif target < s.min_size:
                entry = self._entry(direction, size, size, "at-min")
            else:
                operation = self.client.scale_pool(s.pool, target)
                entry = self._entry(direction, size, target, "scaled", operation=operation.id)
        except ConflictError as exc:
            entry = self._entry(direction, size, size, "pool-busy", detail=str(exc))
        except ExoApiError as exc:
            entry = self._entry(direction, size, size, "api-error", detail=str(exc))
        entry["intents"] = [{"direction": direction, "first_at": received_at,
                             "last_at": received_at, "source": source, "count": 1}]  # fmt: skip
        with self._lock:
            self.decisions += 1
            self.last_decision = entry
            self.write(json.dumps({"event": "decision", "pool": s.pool, "tick": self.decisions,
                                   **entry}, default=str, separators=(",", ":")))  # fmt: skip
        return entry

    def _entry(
        self, direction: str, size: int | None, to: int | None, reason: str, **extra: Any
    ) -> dict[str, Any]:
        action = direction if reason == "scaled" else "none"
        return {"time": self.clock(), "action": action, "from": size, "to": to,
                "reason": reason, "wanted": direction, **extra}  # fmt: skip

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "scaler": "naive",
                "pool": {"ref": self.settings.pool},
                "min": self.settings.min_size,
                "max": self.settings.max_size,
                # LabRun polls `ticks` for a new decision; here every webhook is a "tick".
                "ticks": self.decisions,
                "last_decision": self.last_decision,
                "in_flight": None,
            }


def firing_directions(body: Any, label: str, route: str | None) -> list[str]:
    """Directions of the firing alerts of an Alertmanager (v4) or Grafana (v1) payload."""
    if not isinstance(body, dict) or not isinstance(body.get("alerts"), list):
        raise ValueError("body must be a JSON object with an `alerts` list")
    found: list[str] = []
    for alert in body["alerts"]:
        if not isinstance(alert, dict) or alert.get("status") != "firing":
            continue
        labels = alert.get("labels")
        direction = route or (
            _DIRECTIONS.get(str(labels.get(label, ""))) if isinstance(labels, dict) else None
        )
        if direction and direction not in found:
            found.append(direction)
    return found


def create_app(settings: NaiveSettings, client: ExoClient) -> Starlette:
    scaler = NaiveScaler(settings, client)
    expected = f"Bearer {settings.token}".encode()

    def authorized(request: Request) -> bool:
        given = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(given, expected)

    def handler(route: str | None) -> Callable[[Request], Any]:
        async def receive(request: Request) -> Response:
            received_at = time.time()
            if not authorized(request):
                return JSONResponse({"error": "missing or wrong credentials"}, status_code=401)
            raw = b""
            async for chunk in request.stream():
                raw += chunk
                if len(raw) > MAX_BODY_BYTES:
                    return JSONResponse({"error": "body too large"}, status_code=413)
            if route is not None and not raw.strip():
                directions = [route]
            else:
                try:
                    directions = firing_directions(json.loads(raw), settings.direction_label, route)
                except ValueError as exc:
                    return JSONResponse({"error": str(exc)}, status_code=422)
            # At once, on every webhook: no tick, no check of what is already in progress.
            results = [
                await asyncio.to_thread(scaler.scale, d, received_at, route or "webhook")
                for d in directions
            ]
            return JSONResponse({"decisions": results})

        return receive

    async def status(_: Request) -> Response:
        return JSONResponse(scaler.status())

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("OK")

    async def metrics(_: Request) -> Response:
        text = f"naive_scaler_decisions_total {scaler.decisions}\n"
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    app = Starlette(
        routes=[
            Route("/webhook", handler(None), methods=["POST"]),
            Route("/up", handler("up"), methods=["POST"]),
            Route("/down", handler("down"), methods=["POST"]),
            Route("/status", status, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )
    app.state.scaler = scaler
    return app


@click.command()
@click.option("--pool", required=True, help="Pool id or name.")
@click.option("--min", "min_size", type=click.IntRange(0, 100), default=1, show_default=True)
@click.option("--max", "max_size", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8090, show_default=True)
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="File holding the webhook Bearer token.")  # fmt: skip
def main(pool: str, min_size: int, max_size: int, host: str, port: int, token_file: Path) -> None:
    """Scale on every firing webhook at once (the benchmark's baseline)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = NaiveSettings(
            pool=pool, token=token_file.read_text().strip(), min_size=min_size, max_size=max_size
        )
        client = ExoClient(ClientSettings.from_env(), retry=NO_RETRY)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    uvicorn.run(create_app(settings, client), host=host, port=port, log_level="warning",
                access_log=False)  # fmt: skip


if __name__ == "__main__":
    main()
