"""Recorded API conversations of the agent: the vcrpy setup and the scenarios.

Each scenario runs the real Agent against a client and returns what the tests assert on.
record_cassettes.py runs the same functions against a live exo-lab zone, so cassettes and
tests cannot drift apart. Pool and member ids are random per recording; they are stored in
cassettes/ids.json and the tests use those.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import vcr
from prometheus_client import CollectorRegistry

from exo_client import ExoApiError, ExoClient
from exo_sd.agent import Agent, AgentConfig
from exo_sd.metrics import SdMetrics
from exo_testkit import cassette_vcr

CASSETTES = Path(__file__).parent / "cassettes"
IDS_FILE = CASSETTES / "ids.json"
# The manager filter travels in the query, so replay also checks that it is sent.
MATCH_ON = ("method", "path", "query")
TARGET_PORT = 9100


def make_vcr(record_mode: str) -> vcr.VCR:
    return cassette_vcr(CASSETTES, record_mode, MATCH_ON)


@dataclass
class Outcome:
    agent: Agent
    registry: CollectorRegistry
    #: the targets file's bytes after each step (None: no file)
    snapshots: list[bytes | None] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)


def make_agent(client: ExoClient, pool: str, out: Path) -> tuple[Agent, CollectorRegistry]:
    registry = CollectorRegistry()
    config = AgentConfig(pool=pool, out=out, port=TARGET_PORT, zone=client.settings.zone)
    return Agent(client, config, metrics=SdMetrics(registry)), registry


def _snapshot(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def _run(client: ExoClient, pool: str, out: Path, refreshes: int) -> Outcome:
    agent, registry = make_agent(client, pool, out)
    outcome = Outcome(agent, registry)
    for _ in range(refreshes):
        outcome.results.append(agent.refresh_safely())
        outcome.snapshots.append(_snapshot(out))
    return outcome


def steady_pool(client: ExoClient, ids: dict[str, str], out: Path) -> Outcome:
    """Two running members; the second refresh finds the same and must not rewrite."""
    return _run(client, ids["pool_id"], out, 2)


def pool_booting(client: ExoClient, ids: dict[str, str], out: Path) -> Outcome:
    """Recorded right after a scale 2 → 3: the new member is still `starting`."""
    return _run(client, ids["pool_id"], out, 1)


def empty_pool(client: ExoClient, ids: dict[str, str], out: Path) -> Outcome:
    """Recorded after a scale to 0: the one case where an empty list is right."""
    return _run(client, ids["pool_id"], out, 1)


def unknown_pool_id(client: ExoClient, ids: dict[str, str], out: Path) -> Outcome:
    """A pool id that does not exist: the zone lists no member for it (exo-sd cannot tell
    this from an empty pool without reading the pool, which its role does not allow)."""
    return _run(client, "00000000-0000-4000-8000-000000000000", out, 1)


def api_unavailable(client: ExoClient, ids: dict[str, str], out: Path) -> Outcome:
    """The first two list calls answer 503, the third succeeds."""
    return _run(client, ids["pool_id"], out, 3)


def wrong_secret(client: ExoClient, ids: dict[str, str], out: Path) -> ExoApiError | None:
    agent, _ = make_agent(client, ids["pool_id"], out)
    try:
        agent.run_once()
    except ExoApiError as exc:
        return exc
    return None


Scenario = Callable[[ExoClient, dict[str, str], Path], Any]

SCENARIOS: dict[str, Scenario] = {
    f.__name__: f
    for f in (
        steady_pool,
        pool_booting,
        empty_pool,
        unknown_pool_id,
        api_unavailable,
        wrong_secret,
    )
}
