"""Injected API faults against a live lab zone: the last good file stays, byte for byte."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sd_support import member_targets, target_set, wait_for

from exo_client import NO_RETRY, ClientSettings, ExoClient
from exo_sd.agent import Agent, AgentConfig
from exo_sd.metrics import SdMetrics
from exo_testkit import RunningZone, running_zone
from exo_zone import FaultPlan

pytestmark = pytest.mark.integration
PORT = 9100


@pytest.fixture
def zone() -> Iterator[RunningZone]:
    with running_zone({"web": 2}) as rz:
        yield rz


def errors(registry: CollectorRegistry, kind: str) -> float:
    return registry.get_sample_value("exo_sd_errors_total", {"kind": kind}) or 0.0


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param(FaultPlan(rate=1.0, statuses=(503,)), id="503"),
        pytest.param(FaultPlan(rate=1.0, statuses=(500, 502, 429)), id="5xx-429"),
        pytest.param(FaultPlan(latency=1.0), id="timeout"),
    ],
)
def test_faults_keep_the_last_good_file_then_recover(
    zone: RunningZone, tmp_path: Path, faults: FaultPlan
) -> None:
    pool_id = zone.pools["web"].id
    out = tmp_path / "sd" / "targets.json"
    registry = CollectorRegistry()
    settings = ClientSettings(
        api_key=zone.settings.api_key,
        api_secret=zone.settings.api_secret,
        endpoint=zone.endpoint,
        timeout=0.3,
    )
    config = AgentConfig(
        pool=pool_id, out=out, port=PORT, interval=0.1, backoff_base=0.05, backoff_cap=0.2
    )
    stop = threading.Event()
    agent = Agent(
        ExoClient(settings, retry=NO_RETRY), config, metrics=SdMetrics(registry), stop=stop
    )
    worker = threading.Thread(target=agent.run, daemon=True)
    worker.start()
    try:
        wait_for(
            lambda: (
                target_set(out) == member_targets(zone, pool_id, PORT)
                and len(target_set(out) or ()) == 2
            ),
            what="the first complete file",
        )
        last_good = out.read_bytes()
        zone.api.faults = faults
        # The pool changes while the API fails: the agent must not guess, nor empty the file.
        zone.zone.scale(pool_id, 3)
        wait_for(lambda: errors(registry, "unavailable") >= 4, what="several failed refreshes")
        assert out.read_bytes() == last_good
        assert [p.name for p in out.parent.iterdir()] == ["targets.json"]

        zone.api.faults = FaultPlan()
        wait_for(lambda: len(target_set(out) or ()) == 3, what="recovery to 3 targets")
        assert target_set(out) == member_targets(zone, pool_id, PORT)
        # The count and the gauge follow once the refresh that wrote the file returns: a moment
        # later, which a loaded machine makes visible.
        wait_for(lambda: agent.consecutive_errors == 0, what="the error count to reset")
        wait_for(lambda: registry.get_sample_value("exo_sd_targets") == 3, what="the gauge")
    finally:
        stop.set()
        worker.join(5)
    assert not worker.is_alive()
