"""The naive autoscaler: the baseline the benchmark compares exo-scaler with.

The common design of public solutions to this assignment: every firing webhook of the CPU
rules scales the pool by one at once (the shedding rule's alerts are exo-scaler's demand
policy's trigger, not this design's: skipped, as the seed skips them). It reads the size from
the API on each webhook, ignores the pool's state, keeps no tick, no single flight and no
record of operations in progress, and scales down with `scale` (Exoscale picks who leaves; no
evict, no drain).

Only the policy is its own. The payload parser, the body limit, the authentication and the
decision log are exo-scaler's (its public pieces), so the benchmark compares two policies, not
two implementations, and reads both scalers' logs as the same `DecisionRecord`s.

    python -m exo_lab.bench.naive --pool ID --port P --token-file F --min 1 --max 5
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
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
from exo_scaler import (
    CPU_TRIGGERS,
    MAX_BODY_BYTES,
    Authenticator,
    AuthMiddleware,
    BodyTooLarge,
    Decision,
    DecisionRecord,
    Direction,
    EventLog,
    Intent,
    IntentBook,
    ParsedPayload,
    PayloadError,
    Reason,
    parse_alert_payload,
    read_limited,
)

log = logging.getLogger("exo_lab.bench.naive")


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


@dataclass
class NaiveScaler:
    """The policy: one webhook's direction → read the size → scale to size ± 1, at once."""

    settings: NaiveSettings
    client: ExoClient
    events: EventLog = field(default_factory=EventLog)
    clock: Callable[[], float] = time.time
    decisions: int = 0
    last_decision: DecisionRecord | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def scale(self, book: IntentBook) -> list[DecisionRecord]:
        """Act on every intent the webhook recorded. Blocking (run it in a thread)."""
        return [self._scale_one(intent) for intent in book.take()]

    def _scale_one(self, intent: Intent) -> DecisionRecord:
        s = self.settings
        direction = intent.direction
        size: int | None = None
        operation_id: str | None = None
        try:
            size = self.client.get_pool(s.pool).size
            target = size + 1 if direction is Direction.UP else size - 1
            if target > s.max_size:
                decision = Decision(direction, size, size, Reason.AT_MAX, (intent,))
            elif target < s.min_size:
                decision = Decision(direction, size, size, Reason.AT_MIN, (intent,))
            else:
                operation_id = self.client.scale_pool(s.pool, target).id
                decision = Decision(direction, size, target, Reason.SCALED, (intent,))
        except ConflictError as exc:
            decision = Decision(direction, size, size, Reason.POOL_BUSY, (intent,), str(exc))
        except ExoApiError as exc:
            decision = Decision(direction, size, size, Reason.API_ERROR, (intent,), str(exc))
        with self._lock:
            self.decisions += 1
            record = DecisionRecord.of(
                decision,
                wall_time=self.clock(),
                pool=s.pool,
                tick=self.decisions,
                operation_id=operation_id,
            )
            self.last_decision = record
            self.events.decision(record)
        return record

    def status(self) -> dict[str, Any]:
        with self._lock:
            last = self.last_decision
            return {
                "scaler": "naive",
                "pool": {"ref": self.settings.pool},
                "min": self.settings.min_size,
                "max": self.settings.max_size,
                "ticks": self.decisions,  # every webhook is a "tick" here
                "last_decision": None if last is None else last.to_json(),
                "in_flight": None,
            }


async def read_alerts(
    request: Request,
    route: Direction | None,
    label: str = "action",
    triggers: frozenset[str] = CPU_TRIGGERS,
) -> ParsedPayload | Response:
    """The webhook's alerts as exo-scaler parses them, or the error answer to give (413, 4xx).
    Shared with the reactive limit (bench/limit.py). The naive design is the CPU rule's: like
    the seed, it skips the shedding rule's alerts (the limit acts on both, as exo-scaler's
    demand policy does)."""
    try:
        raw = await read_limited(request, MAX_BODY_BYTES)
        return parse_alert_payload(raw, label=label, route_direction=route, triggers=triggers)
    except BodyTooLarge as exc:
        return JSONResponse({"error": str(exc)}, status_code=413)
    except PayloadError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.status)


def _receiver(route: Direction | None) -> Callable[[Request], Awaitable[Response]]:
    async def receive(request: Request) -> Response:
        scaler: NaiveScaler = request.app.state.scaler
        parsed = await read_alerts(request, route, scaler.settings.direction_label)
        if isinstance(parsed, Response):
            return parsed
        # A book per webhook: the naive design keeps nothing between webhooks.
        book = IntentBook()
        book.record(parsed.directions, route.value if route else parsed.source)
        records = await asyncio.to_thread(scaler.scale, book)
        return JSONResponse({"decisions": [r.to_json() for r in records]})

    return receive


async def _status(request: Request) -> Response:
    return JSONResponse(request.app.state.scaler.status())


async def _healthz(_: Request) -> Response:
    return PlainTextResponse("OK")


async def _metrics(request: Request) -> Response:
    text = f"naive_scaler_decisions_total {request.app.state.scaler.decisions}\n"
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


WEBHOOK_PATHS = {"/webhook": None, "/up": Direction.UP, "/down": Direction.DOWN}


def baseline_app(
    scaler: Any,
    token: str,
    receiver: Callable[[Direction | None], Callable[[Request], Awaitable[Response]]],
    *extra: Route,
) -> Starlette:
    """A baseline scaler's app: exo-scaler's webhook routes behind its Bearer check, `/status`
    from `scaler.status()`, `/healthz`, and `extra` routes. The naive scaler's and the
    reactive limit's, so they differ from each other and from exo-scaler only in policy."""
    app = Starlette(
        routes=[
            *(Route(p, receiver(d), methods=["POST"]) for p, d in WEBHOOK_PATHS.items()),
            Route("/status", _status, methods=["GET"]),
            Route("/healthz", _healthz, methods=["GET"]),
            *extra,
        ]
    )
    app.add_middleware(
        AuthMiddleware, authenticator=Authenticator(token), protected=set(WEBHOOK_PATHS)
    )
    app.state.scaler = scaler
    return app


def create_app(settings: NaiveSettings, client: ExoClient) -> Starlette:
    return baseline_app(
        NaiveScaler(settings, client),
        settings.token,
        _receiver,
        Route("/metrics", _metrics, methods=["GET"]),
    )


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
