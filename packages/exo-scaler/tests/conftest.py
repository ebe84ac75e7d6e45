from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette

from exo_client import ClientSettings, ExoClient
from exo_scaler import DecisionRecord, EventLog, ExoPoolTarget, create_app, read_decision_log
from exo_scaler.metrics import ScalerMetrics
from exo_scaler.settings import ScalerSettings
from exo_scaler.target import InFlight, Launched, Member, MemberState, OnEnd, PoolStatus

FIXTURES = Path(__file__).parent / "fixtures"
TOKEN = "t0ken-for-tests-only"


class EventSink:
    """Collects the scaler's JSON log lines."""

    def __init__(self) -> None:
        self.raw: list[str] = []
        self.lines: list[dict[str, Any]] = []

    def write(self, line: str) -> None:
        self.raw.append(line)
        self.lines.append(json.loads(line))

    def records(self) -> list[DecisionRecord]:
        """The decisions as a reader of the log sees them."""
        return read_decision_log(self.raw)

    def log(self) -> EventLog:
        return EventLog(self.write)

    def of(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["event"] == event]


@pytest.fixture
def sink() -> EventSink:
    return EventSink()


@pytest.fixture
def fixture_bytes() -> Callable[[str], bytes]:
    return lambda name: (FIXTURES / name).read_bytes()


@pytest.fixture
def make_settings() -> Callable[..., ScalerSettings]:
    def build(**overrides: Any) -> ScalerSettings:
        values: dict[str, Any] = {
            "pool": "web",
            "min_size": 1,
            "max_size": 4,
            "interval": 3600.0,
            "operation_poll": 0.05,
            "operation_timeout": 20.0,
            "auth_token": TOKEN,
        }
        values.update(overrides)
        if values.get("no_auth"):
            values["auth_token"] = None
        return ScalerSettings(**values)

    return build


@pytest.fixture
def offline_client() -> ExoClient:
    """A client for apps whose loop never runs (no lifespan): it is never called."""
    return ExoClient(
        ClientSettings(api_key="EXOtest", api_secret="secret", endpoint="http://127.0.0.1:9/v2")
    )


def exo_app(
    settings: ScalerSettings,
    client: ExoClient,
    *,
    events: EventLog | None = None,
    http: httpx.AsyncClient | None = None,
) -> Starlette:
    """The app as the CLI composes it: an ExoPoolTarget on `client`, a fresh registry."""
    metrics = ScalerMetrics(CollectorRegistry())
    events = events or EventLog()
    target = ExoPoolTarget(settings, client, metrics, events=events)
    return create_app(settings, target, metrics=metrics, events=events, http=http)


@dataclass
class ScriptedTarget:
    size: int = 1
    state: str = "running"
    serving_now: int = 1
    error_reason: str = ""
    refuse: Exception | None = None
    scaled: list[tuple[int, int]] = field(default_factory=list)
    serving_reads: int = 0  # status reads that asked for the members
    quota: int | None = None  # instances the organisation may still create; None: unlimited
    quota_refusal: Exception | None = None
    endings: list[OnEnd] = field(default_factory=list)  # of the operations not ended yet

    @property
    def pool_id(self) -> str:
        return "pool"

    @property
    def in_flight(self) -> InFlight | None:
        return None

    async def status(self, *, members: bool = False, quota: bool = False) -> PoolStatus:
        listed = None
        if members:
            self.serving_reads += 1
            listed = tuple(
                Member(f"m{i}", MemberState.SERVING if i < self.serving_now else
                       MemberState.WARMING)
                for i in range(self.size)
            )  # fmt: skip
        room, why = None, None
        if quota and self.state == "running":
            if self.quota_refusal is not None:
                why = str(self.quota_refusal)
            else:
                room = self.quota
        return PoolStatus(self.size, self.state, error_reason=self.error_reason,
                          members=listed, quota_room=room, quota_error=why)  # fmt: skip

    async def grow(self, to: int, *, on_end: OnEnd | None = None) -> Launched:
        if self.refuse is not None:
            raise self.refuse
        self.scaled.append((self.size, to))
        self.size = to
        if on_end is not None:
            self.endings.append(on_end)
        return Launched("op")

    async def end_operations(self, result: str) -> None:
        """Our operations end with `result`: each `on_end` a verb was given is told."""
        endings, self.endings = self.endings, []
        for on_end in endings:
            await on_end(result)

    async def evict(self, members: Sequence[Member], *, on_end: OnEnd | None = None) -> Launched:
        if self.refuse is not None:
            raise self.refuse
        self.scaled.append((self.size, self.size - len(members)))
        self.size -= len(members)
        return Launched("op", tuple(m.id for m in members))

    async def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
