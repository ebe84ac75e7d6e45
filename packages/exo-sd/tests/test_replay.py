"""The agent against recorded API conversations, with the network blocked."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sd_cassettes import CASSETTES, SCENARIOS, TARGET_PORT, Outcome, make_vcr

from exo_client import NO_RETRY, AuthError, ClientSettings, ExoClient
from exo_testkit import credentials_in

# Any endpoint: cassettes match on method, path and query, never on host or port.
ENDPOINT = "http://127.0.0.1:9/v2"


@pytest.fixture(autouse=True)
def blocked_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(sock: socket.socket, address: object) -> None:
        raise AssertionError(f"a replayed test tried to reach {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def replay(name: str, ids: dict[str, dict[str, str]], out: Path) -> tuple[Any, ExoClient]:
    client = ExoClient(
        ClientSettings(api_key="EXOreplay", api_secret="replayed", endpoint=ENDPOINT),
        retry=NO_RETRY,
    )
    with make_vcr("none").use_cassette(f"{name}.yaml") as cassette:
        result = SCENARIOS[name](client, ids[name], out)
        assert cassette.all_played, f"{name}: not every recorded call was made"
    return result, client


def sample(registry: CollectorRegistry, name: str, labels: dict[str, str] | None = None) -> float:
    value = registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def test_steady_pool_written_once_with_one_call_per_refresh(
    recorded_ids: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    out = tmp_path / "sd" / "targets.json"
    outcome, client = replay("steady_pool", recorded_ids, out)
    assert isinstance(outcome, Outcome)
    pool_id = recorded_ids["steady_pool"]["pool_id"]
    groups = json.loads(out.read_text())
    assert len(groups) == 2
    for group in groups:
        assert set(group) == {"targets", "labels"}
        assert re.fullmatch(rf"127\.\d+\.\d+\.\d+:{TARGET_PORT}", group["targets"][0])
        assert group["labels"]["pool_id"] == pool_id
        assert group["labels"]["zone"] == "ch-gva-2"
    names = [g["labels"]["instance_name"] for g in groups]
    assert names == sorted(names)
    # Second refresh: same members, identical bytes, no rewrite.
    assert outcome.snapshots[0] == outcome.snapshots[1]
    assert sample(outcome.registry, "exo_sd_file_writes_total") == 1
    assert sample(outcome.registry, "exo_sd_refreshes_total") == 2
    assert sample(outcome.registry, "exo_sd_targets") == 2
    assert sample(outcome.registry, "exo_sd_last_success_timestamp_seconds") > 0
    # The pool is never read: its id is given, and list-instances is all exo-sd's role allows.
    assert dict(client.calls) == {"list-instances": 2}
    assert sample(outcome.registry, "exo_sd_api_calls_total", {"operation": "list-instances"}) == 2


def test_starting_member_is_not_a_target(
    recorded_ids: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    out = tmp_path / "targets.json"
    replay("pool_booting", recorded_ids, out)
    recorded = (CASSETTES / "pool_booting.yaml").read_text()
    assert '"state":"starting"' in recorded, "the recording must hold a booting member"
    assert len(json.loads(out.read_text())) == 2


def test_empty_pool_writes_an_empty_list(
    recorded_ids: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    out = tmp_path / "targets.json"
    out.write_text('[{"targets": ["127.0.0.9:9100"], "labels": {}}]\n')
    outcome, _ = replay("empty_pool", recorded_ids, out)
    assert json.loads(out.read_text()) == []
    assert outcome.results[-1] is True


def test_unavailable_api_keeps_the_last_good_file(
    recorded_ids: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    out = tmp_path / "targets.json"
    last_good = b'[\n  {"targets": ["127.0.0.9:9100"], "labels": {}}\n]\n'
    out.write_bytes(last_good)
    outcome, client = replay("api_unavailable", recorded_ids, out)
    assert outcome.results == [False, False, True]
    assert outcome.snapshots[0] == last_good
    assert outcome.snapshots[1] == last_good
    assert len(json.loads(out.read_text())) == 2
    assert sample(outcome.registry, "exo_sd_errors_total", {"kind": "unavailable"}) == 2
    assert client.calls["list-instances"] == 3
    assert outcome.agent.consecutive_errors == 0


def test_backoff_grows_and_is_capped(
    recorded_ids: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    outcome, _ = replay("api_unavailable", recorded_ids, tmp_path / "t.json")
    agent = outcome.agent
    delays = []
    for errors in range(1, 10):
        agent.consecutive_errors = errors
        delays.append(agent.backoff_delay())
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(delays) == agent.config.backoff_cap == delays[-1]


def test_unknown_pool_id_lists_nothing_and_says_so(
    recorded_ids: dict[str, dict[str, str]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "t.json"
    with caplog.at_level("WARNING", logger="exo_sd"):
        outcome, client = replay("unknown_pool_id", recorded_ids, out)
    assert outcome.results == [True]
    assert json.loads(out.read_text()) == []
    assert "lists no member" in caplog.text and "check the id" in caplog.text
    assert dict(client.calls) == {"list-instances": 1}


def test_wrong_secret_is_an_auth_error(
    recorded_ids: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    error, _ = replay("wrong_secret", recorded_ids, tmp_path / "t.json")
    assert isinstance(error, AuthError)
    assert error.status == 403


def test_every_scenario_has_a_cassette_and_ids(recorded_ids: dict[str, dict[str, str]]) -> None:
    assert set(recorded_ids) == set(SCENARIOS)
    assert {p.stem for p in CASSETTES.glob("*.yaml")} == set(SCENARIOS)


def test_no_credentials_in_cassettes() -> None:
    assert credentials_in(CASSETTES) == []
