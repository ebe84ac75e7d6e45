from __future__ import annotations

import json
from collections.abc import Callable
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
