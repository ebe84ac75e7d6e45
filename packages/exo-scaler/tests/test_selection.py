from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from exo_scaler.decision import Direction, Reason
from exo_scaler.scaler import Scaler
from exo_scaler.selection import choose_members, parse_busy_vector
from exo_scaler.settings import ScalerSettings
from exo_scaler.target import Member, MemberState
from exo_testkit import running_zone

from .conftest import EventSink, exo_app

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def member(name: str, minutes: int, state: MemberState = MemberState.SERVING) -> Member:
    return Member(name, state, "127.0.0.1", T0 + timedelta(minutes=minutes), name)


MEMBERS = [member("a", 0), member("b", 10), member("c", 5), member("d", 20, MemberState.DRAINING)]


def test_newest_and_oldest_skip_leaving_members() -> None:
    assert [m.id for m in choose_members(MEMBERS, 1, "newest")] == ["b"]
    assert [m.id for m in choose_members(MEMBERS, 2, "oldest")] == ["a", "c"]
    assert len(choose_members(MEMBERS, 5, "newest")) == 3


def test_least_busy_prefers_members_without_figures_then_lowest_cpu() -> None:
    busy = {"a": 0.9, "b": 0.7, "c": 0.2}
    assert [m.id for m in choose_members(MEMBERS, 1, "least-busy", busy)] == ["c"]
    assert [m.id for m in choose_members(MEMBERS, 1, "least-busy", {"a": 0.1, "c": 0.5})] == ["b"]
    # No figures at all (Prometheus down): newest first.
    assert [m.id for m in choose_members(MEMBERS, 1, "least-busy", None)] == ["b"]


def test_prometheus_vector_parsing() -> None:
    body = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"instance_id": "a"}, "value": [1700000000.0, "0.93"]},
                {"metric": {"instance_id": "b"}, "value": [1700000000.0, "NaN"]},
                {"metric": {}, "value": [1700000000.0, "1"]},
                {"metric": {"instance_id": "c"}, "value": [1700000000.0, "bad"]},
            ],
        },
    }
    parsed = parse_busy_vector(body)
    assert parsed["a"] == pytest.approx(0.93)
    assert set(parsed) == {"a", "b"}
    with pytest.raises(ValueError, match="did not succeed"):
        parse_busy_vector({"status": "error"})
    with pytest.raises(ValueError, match="vector"):
        parse_busy_vector({"status": "success", "data": {"resultType": "matrix"}})


@pytest.fixture
def prometheus_stub() -> Iterator[tuple[str, dict[str, float], list[str]]]:
    """A loopback HTTP server answering /api/v1/query like Prometheus, from a dict we fill."""
    figures: dict[str, float] = {}
    queries: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            queries.extend(parse_qs(url.query).get("query", []))
            result = [
                {"metric": {"instance_id": k}, "value": [0, str(v)]} for k, v in figures.items()
            ]
            body = json.dumps(
                {"status": "success", "data": {"resultType": "vector", "result": result}}
            ).encode()
            self.send_response(200 if url.path == "/api/v1/query" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", figures, queries
    finally:
        server.shutdown()
        server.server_close()


def test_least_busy_evicts_the_idlest_member_per_prometheus(
    make_settings: Callable[..., ScalerSettings],
    sink: EventSink,
    prometheus_stub: tuple[str, dict[str, float], list[str]],
) -> None:
    url, figures, queries = prometheus_stub
    with running_zone({"web": 3}) as rz:
        ids = list(rz.pools["web"].member_ids)
        figures.update({ids[0]: 0.8, ids[1]: 0.05, ids[2]: 0.6})
        settings = make_settings(scale_down_policy="least-busy", prometheus_url=url)
        app = exo_app(settings, rz.client(), events=sink.log())
        scaler: Scaler = app.state.scaler

        async def scenario() -> None:
            scaler.record_intent(Direction.DOWN, "test")
            assert (await scaler.tick()).reason is Reason.SCALED
            while scaler.in_flight is not None:
                await asyncio.sleep(0.02)

        asyncio.run(scenario())
        assert rz.pools["web"].member_ids == [ids[0], ids[2]]
        assert queries == [settings.busy_query]
