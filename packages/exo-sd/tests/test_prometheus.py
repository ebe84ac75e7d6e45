"""The agent's file read by the real Prometheus: its targets follow the pool."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sd_support import agent_env, free_port, member_targets, start_agent, wait_for

from exo_testkit import RunningZone, running_zone

pytestmark = pytest.mark.integration
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PORT = 9100
JOB = "pool"


@pytest.fixture
def zone() -> Iterator[RunningZone]:
    with running_zone({"web": 2}) as rz:
        yield rz


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Prometheus on a free loopback port, reading `<tmp>/sd/targets.json` every second."""
    if not Path(PROMETHEUS).exists():
        pytest.fail(f"the Prometheus binary is required: {PROMETHEUS} is missing")
    targets = tmp_path / "sd" / "targets.json"
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML: no YAML dependency needed for this.
            {
                "global": {"scrape_interval": "1s", "scrape_timeout": "500ms"},
                "scrape_configs": [
                    {
                        "job_name": JOB,
                        "file_sd_configs": [{"files": [str(targets)], "refresh_interval": "1s"}],
                    }
                ],
            }
        )
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url) or process.poll() is not None, timeout=60, what="Prometheus")
        assert process.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
        yield url, targets
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def prometheus_targets(url: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"{url}/api/v1/targets?state=active", timeout=5) as response:
        body = json.load(response)
    return [t for t in body["data"]["activeTargets"] if t["scrapePool"] == JOB]


def addresses(url: str) -> set[str]:
    return {str(t["labels"]["instance"]) for t in prometheus_targets(url)}  # type: ignore[index]


def test_prometheus_follows_the_pool(zone: RunningZone, prometheus: tuple[str, Path]) -> None:
    url, targets_file = prometheus
    pool_id = zone.pools["web"].id
    client = zone.client()
    agent = start_agent(
        ["--interval", "0.5", "--out", str(targets_file), "--port", str(PORT)],
        agent_env(zone, pool_id),
    )
    try:
        # Prometheus' scrape manager applies discovered changes at most every 5 s; the
        # deadline covers that, an agent refresh and the file_sd reload on a loaded machine.
        for size in (2, 5, 1):
            if size != 2:
                client.wait_operation(client.scale_pool(pool_id, size).id, timeout=20, poll=0.05)

            def follows(n: int = size) -> bool:
                expected = member_targets(zone, pool_id, PORT)
                return len(expected) == n and addresses(url) == expected

            wait_for(follows, timeout=30, poll=0.2, what=f"Prometheus to list {size} members")
        listed = prometheus_targets(url)
        member_ids = {m for m in zone.zone.pools[pool_id].member_ids}
        assert {t["labels"]["instance_id"] for t in listed} == member_ids  # type: ignore[index]
        assert {t["labels"]["pool_id"] for t in listed} == {pool_id}  # type: ignore[index]
        assert agent.poll() is None
    finally:
        agent.terminate()
        agent.wait(5)
