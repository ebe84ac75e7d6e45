"""The naive scaler over real HTTP, against a record-only lab zone."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from exo_client import NO_RETRY, ExoClient
from exo_lab.bench.naive import NaiveSettings, create_app, main
from exo_scaler import EventLog, read_decision_log
from exo_testkit import RunningZone, running_zone
from exo_zone import ZoneTimings, serve_in_thread

TOKEN = "naive-test-token"
# Operations stay pending for 5 s: long enough for a second webhook to find the pool busy.
SLOW_OPERATIONS = ZoneTimings(boot_delay=0.2, operation_delay=5.0, tick_interval=0.02)


def alertmanager_payload(action: str, status: str = "firing") -> dict[str, object]:
    return {
        "version": "4",
        "status": status,
        "receiver": "exo-scaler",
        "groupKey": "{}:{}",
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": f"pool_cpu_{action}", "action": action},
                "annotations": {},
                "startsAt": "2026-01-01T00:00:00Z",
                "fingerprint": "abc",
            }
        ],
    }


@dataclass
class Naive:
    url: str
    rz: RunningZone
    pool_id: str
    lines: list[str]

    def post(self, body: object, token: str = TOKEN, path: str = "/webhook") -> httpx.Response:
        return httpx.post(
            self.url + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )

    def scale_operations(self) -> int:
        return sum(
            1 for op in self.rz.zone.operation_snapshots() if op.command == "scale-instance-pool"
        )


@pytest.fixture
def naive() -> Iterator[Naive]:
    with running_zone({"web": 2}, timings=SLOW_OPERATIONS) as rz:
        pool_id = rz.pools["web"].id
        settings = NaiveSettings(pool=pool_id, token=TOKEN, min_size=1, max_size=5)
        app = create_app(settings, ExoClient(rz.settings, retry=NO_RETRY))
        lines: list[str] = []
        app.state.scaler.events = EventLog(lines.append)
        with serve_in_thread(app) as url:
            yield Naive(url, rz, pool_id, lines)


def test_every_firing_webhook_scales_at_once_even_while_the_pool_is_busy(naive: Naive) -> None:
    first = naive.post(alertmanager_payload("scale_up"))
    assert first.status_code == 200
    assert first.json()["decisions"][0]["reason"] == "scaled"
    assert naive.rz.zone.pool_snapshot(naive.pool_id).size == 3
    assert naive.scale_operations() == 1

    # The pool is still scaling up: no single flight, so the naive scaler calls again and the
    # zone refuses with 409 (which exo-scaler never provokes).
    second = naive.post(alertmanager_payload("scale_up"))
    assert second.json()["decisions"][0]["reason"] == "pool-busy"
    third = naive.post(alertmanager_payload("scale_down"))
    assert third.json()["decisions"][0]["reason"] == "pool-busy"
    assert naive.rz.zone.pool_snapshot(naive.pool_id).size == 3
    assert naive.scale_operations() == 1

    # Its log is exo-scaler's format: the benchmark reads both with the same reader.
    logged = read_decision_log(naive.lines)
    assert [r.reason.value for r in logged] == ["scaled", "pool-busy", "pool-busy"]
    assert [r.scaled for r in logged] == [True, False, False]
    assert (logged[0].action, logged[0].from_size, logged[0].to_size) == ("up", 2, 3)
    assert logged[0].operation_id is not None
    assert logged[0].intents[0].direction == "up"
    status = httpx.get(naive.url + "/status", timeout=5).json()
    assert status["ticks"] == 3
    assert status["last_decision"]["reason"] == "pool-busy"


def test_scale_down_uses_scale_not_evict(naive: Naive) -> None:
    response = naive.post(alertmanager_payload("scale_down"))
    assert response.json()["decisions"][0]["reason"] == "scaled"
    commands = [op.command for op in naive.rz.zone.operation_snapshots()]
    assert commands == ["scale-instance-pool"]
    assert naive.rz.zone.pool_snapshot(naive.pool_id).size == 1


def test_bounds_are_kept_without_an_api_call(naive: Naive) -> None:
    naive.rz.zone.pools[naive.pool_id].size = 1  # at min already
    response = naive.post(alertmanager_payload("scale_down"))
    assert response.json()["decisions"][0]["reason"] == "at-min"
    assert naive.scale_operations() == 0


def test_wrong_token_and_resolved_alerts_record_nothing(naive: Naive) -> None:
    assert naive.post(alertmanager_payload("scale_up"), token="wrong").status_code == 401
    resolved = naive.post(alertmanager_payload("scale_up", status="resolved"))
    assert resolved.status_code == 200
    assert resolved.json()["decisions"] == []
    assert naive.post({"alerts": "nope"}).status_code == 422
    assert naive.scale_operations() == 0
    assert naive.lines == []


def test_the_shedding_trigger_is_not_the_naive_designs(naive: Naive) -> None:
    """The naive design scales on the CPU rule, like the seed: the shedding rule's alerts
    (exo-scaler's demand policy's faster trigger) are acknowledged and move nothing."""
    shedding = alertmanager_payload("scale_up")
    shedding["alerts"][0]["labels"]["trigger"] = "shedding"  # type: ignore[index]
    response = naive.post(shedding)
    assert response.status_code == 200 and response.json()["decisions"] == []
    assert naive.scale_operations() == 0
    assert len(naive.post(alertmanager_payload("scale_up")).json()["decisions"]) == 1


def test_route_paths_take_the_direction_from_the_path(naive: Naive) -> None:
    # The course robot's bare POST /up, as exo-scaler accepts it.
    response = httpx.post(
        naive.url + "/up", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert response.json()["decisions"][0]["reason"] == "scaled"
    assert naive.rz.zone.pool_snapshot(naive.pool_id).size == 3


def test_one_webhook_with_duplicate_alerts_is_one_decision(naive: Naive) -> None:
    body = alertmanager_payload("scale_up")
    body["alerts"] = [*body["alerts"], *body["alerts"]]  # type: ignore[list-item]
    assert len(naive.post(body).json()["decisions"]) == 1
    assert naive.scale_operations() == 1


def test_bad_bodies_get_exo_scalers_answers(naive: Naive) -> None:
    assert naive.post({"alerts": "nope"}).status_code == 422
    too_large = httpx.post(
        naive.url + "/webhook",
        content=b"x" * (64 * 1024 + 1),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert too_large.status_code == 413
    assert naive.scale_operations() == 0


def test_cli_refuses_missing_credentials(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    result = CliRunner().invoke(
        main,
        ["--pool", "p", "--token-file", str(token)],
        env={"EXOSCALE_API_KEY": "", "EXOSCALE_API_SECRET": "", "EXOSCALE_KEY": ""},
    )
    assert result.exit_code == 2
    assert "EXOSCALE_API_KEY" in result.output
