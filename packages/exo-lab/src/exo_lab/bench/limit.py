"""The reactive limit: the benchmark's bound on what any reactive scaler can do here.

The same stack as every contestant (same alerts, notifications, zone, boot and provisioning),
with a scaler that knows the profile's true demand: the oracle's member count over the run,
handed to it as a schedule. It waits for the pipeline to speak — nothing happens before the
first firing alert that points the way the oracle's size has moved from the pool's (a
`scale_down` alert firing at idle on a pool already at the oracle's size does not count) —
and at the first tick after that alert, and at the first tick after every later change of the
oracle's size, it sets the pool to the oracle's size at once. So its reaction is the
pipeline's (rate window, pending period, notification, tick, boot, provisioning) and nothing
else: no policy can size better, and no reactive one can be told sooner.

Built like the naive baseline (bench/naive.py): exo-scaler's payload parser, authentication,
body limit and decision log, so the benchmark reads its decisions as every other contestant's.
Scale-down is `scale` (Exoscale picks who leaves), as the naive baseline does.

    python -m exo_lab.bench.limit --pool ID --port P --token-file F --schedule FILE \
        --min 1 --max 5 --interval 6
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from exo_client import NO_RETRY, ClientSettings, ConflictError, ExoApiError, ExoClient
from exo_scaler import (
    ALL_TRIGGERS,
    Decision,
    DecisionRecord,
    Direction,
    EventLog,
    IntentBook,
    Reason,
)

from ..report.quality import DemandSchedule
from .naive import baseline_app, read_alerts

log = logging.getLogger("exo_lab.bench.limit")

POLICY = "reactive-limit"


def limit_decision(
    armed: bool, asked: Sequence[Direction], oracle: int, pool: int
) -> tuple[bool, int | None]:
    """One tick of the reactive limit, pure: (armed after this tick, the size to set or None).

    `asked` are the directions firing alerts asked for since the last tick. Not armed yet, it
    arms when one of them points the way the oracle's size lies from the pool's; armed, it
    sets the pool to the oracle's size whenever the two differ."""
    if not armed:
        way = Direction.UP if oracle > pool else Direction.DOWN if oracle < pool else None
        armed = way is not None and way in asked
    return armed, (oracle if armed and oracle != pool else None)


@dataclass(frozen=True)
class LimitSettings:
    pool: str
    token: str
    schedule: Path
    min_size: int = 1
    max_size: int = 5
    interval: float = 60.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_size <= self.max_size:
            raise ValueError("need 0 <= min <= max")
        if not self.token:
            raise ValueError("a webhook token is required")
        if self.interval <= 0:
            raise ValueError("the tick interval must be positive")


@dataclass
class LimitScaler:
    settings: LimitSettings
    client: ExoClient
    events: EventLog = field(default_factory=EventLog)
    clock: Callable[[], float] = time.time
    book: IntentBook = field(default_factory=IntentBook)
    armed: bool = False
    ticks: int = 0
    last_decision: DecisionRecord | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def oracle(self) -> int | None:
        """The oracle's size now, within the bounds; None before the load's schedule exists."""
        try:
            schedule = DemandSchedule.from_json(json.loads(self.settings.schedule.read_text()))
        except (OSError, ValueError):
            return None
        size = schedule.size_at(self.clock())
        return max(self.settings.min_size, min(self.settings.max_size, size))

    def tick(self) -> DecisionRecord | None:
        """Read the pool, decide, scale. A record when it acted or failed, else None."""
        s = self.settings
        intents = self.book.take()
        self.ticks += 1
        oracle = self.oracle()
        if oracle is None:
            return None
        try:
            size = self.client.get_pool(s.pool).size
        except ExoApiError as exc:
            return self._record(Decision(None, None, None, Reason.API_ERROR, intents,
                                              str(exc), POLICY, desired=oracle))  # fmt: skip
        was_armed = self.armed
        self.armed, target = limit_decision(
            self.armed, [i.direction for i in intents], oracle, size
        )
        if target is None:
            return None
        direction = Direction.UP if target > size else Direction.DOWN
        detail = f"oracle's size {oracle}" + ("" if was_armed else " (armed by this tick's alert)")
        operation_id: str | None = None
        try:
            operation_id = self.client.scale_pool(s.pool, target).id
            decision = Decision(direction, size, target, Reason.SCALED, intents, detail,
                                     POLICY, desired=oracle)  # fmt: skip
        except ConflictError as exc:
            decision = Decision(direction, size, size, Reason.POOL_BUSY, intents, str(exc),
                                     POLICY, desired=oracle)  # fmt: skip
        except ExoApiError as exc:
            decision = Decision(direction, size, size, Reason.API_ERROR, intents, str(exc),
                                     POLICY, desired=oracle)  # fmt: skip
        return self._record(decision, operation_id)

    def _record(self, decision: Decision, operation_id: str | None = None) -> DecisionRecord:
        with self._lock:
            record = DecisionRecord.of(
                decision,
                wall_time=self.clock(),
                pool=self.settings.pool,
                tick=self.ticks,
                operation_id=operation_id,
            )
            self.last_decision = record
            self.events.decision(record)
        return record

    def run_ticks(self, stop: threading.Event) -> None:
        """Tick every `interval` seconds until `stop` is set (bounded by it, as every loop)."""
        # A fixed grid, as exo-scaler's loop: a tick's own time must not push the next ones
        # (the benchmark puts the load at a phase of this grid).
        interval = self.settings.interval
        next_at = time.monotonic() + interval
        while not stop.wait(max(0.0, next_at - time.monotonic())):
            next_at = max(next_at + interval, time.monotonic())
            try:
                self.tick()
            except Exception:  # a tick that failed is logged; the next one tries again
                log.exception("tick %d failed", self.ticks)

    def status(self) -> dict[str, Any]:
        with self._lock:
            last = self.last_decision
            return {
                "scaler": POLICY,
                "pool": {"ref": self.settings.pool},
                "min": self.settings.min_size,
                "max": self.settings.max_size,
                "interval": self.settings.interval,
                "ticks": self.ticks,
                "armed": self.armed,
                "last_decision": None if last is None else last.to_json(),
                "in_flight": None,
            }


def _receiver(route: Direction | None) -> Callable[[Request], Awaitable[Response]]:
    async def receive(request: Request) -> Response:
        scaler: LimitScaler = request.app.state.scaler
        parsed = await read_alerts(request, route, triggers=ALL_TRIGGERS)
        if isinstance(parsed, Response):
            return parsed
        recorded = scaler.book.record(parsed.directions, route.value if route else parsed.source)
        return JSONResponse({"recorded": [d.value for d in recorded]})

    return receive


def create_app(scaler: LimitScaler) -> Starlette:
    return baseline_app(scaler, scaler.settings.token, _receiver)


@click.command()
@click.option("--pool", required=True, help="Pool id or name.")
@click.option("--schedule", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The oracle's schedule (JSON), written when the load starts.")  # fmt: skip
@click.option("--min", "min_size", type=click.IntRange(0, 100), default=1, show_default=True)
@click.option("--max", "max_size", type=click.IntRange(1, 100), default=5, show_default=True)
@click.option("--interval", type=click.FloatRange(0.05), default=60.0, show_default=True,
              help="Seconds between ticks.")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8090, show_default=True)
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="File holding the webhook Bearer token.")  # fmt: skip
def main(
    pool: str,
    schedule: Path,
    min_size: int,
    max_size: int,
    interval: float,
    host: str,
    port: int,
    token_file: Path,
) -> None:
    """Set the pool to the oracle's size at the first tick after the pipeline speaks."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = LimitSettings(
            pool=pool,
            token=token_file.read_text().strip(),
            schedule=schedule,
            min_size=min_size,
            max_size=max_size,
            interval=interval,
        )
        client = ExoClient(ClientSettings.from_env(), retry=NO_RETRY)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    scaler = LimitScaler(settings, client)
    stop = threading.Event()
    ticker = threading.Thread(target=scaler.run_ticks, args=(stop,), daemon=True)
    ticker.start()
    try:
        uvicorn.run(create_app(scaler), host=host, port=port, log_level="warning",
                    access_log=False)  # fmt: skip
    finally:
        stop.set()
        ticker.join(timeout=5)


if __name__ == "__main__":
    main()
