"""The demand signals from real payload shapes: Grafana's `values` by refId, the lab's
`value_<refId>` annotations, --signal NAME=REFID, and the hygiene that still never scales."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from exo_client import ExoClient
from exo_scaler.cli import main
from exo_scaler.decision import Direction
from exo_scaler.settings import ScalerSettings, SettingsError
from exo_scaler.webhooks import Skip, parse_alert_payload

from .conftest import TOKEN, exo_app

UP, DOWN = Direction.UP, Direction.DOWN
BEARER = {"Authorization": f"Bearer {TOKEN}"}
MEASURED = {
    "cpu": 99.31,
    "arrivals": 35.2,
    "cpu_per_request": 0.1,
    "serving": 1.0,
    "evaluated_at": 1764869940.012,
}
LETTERS = {"cpu": "A", "arrivals": "D", "cpu_per_request": "E", "serving": "F",
           "evaluated_at": "G"}  # fmt: skip


def parse(body: bytes, **more: object) -> dict[Direction, dict[str, float]]:
    parsed = parse_alert_payload(body, label="action", **more)  # type: ignore[arg-type]
    return {d: dict(s) for d, s in parsed.signals.items()}


def test_grafana_values_by_refid(fixture_bytes: Callable[[str], bytes]) -> None:
    assert parse(fixture_bytes("grafana_demand_up.json")) == {UP: MEASURED}  # no `threshold`
    down = parse(fixture_bytes("grafana_demand_down.json"))[DOWN]
    assert (down["arrivals"], down["serving"], down["cpu"]) == (6.4, 4.0, 15.87)


def test_the_labs_value_annotations_read_the_same(fixture_bytes: Callable[[str], bytes]) -> None:
    [lab] = parse(fixture_bytes("alertmanager_demand_up.json")).values()
    assert lab == pytest.approx(MEASURED, rel=1e-6)


def test_signal_names_map_to_any_refid(fixture_bytes: Callable[[str], bytes]) -> None:
    body = fixture_bytes("grafana_demand_letter_refids.json")
    assert parse(body, signal_refs=LETTERS) == {UP: MEASURED}
    # Unmapped, only the CPU is found (the largest percentage that is not 0/1), never the
    # Unix time under G nor a rate mistaken for it.
    assert parse(body) == {UP: {"cpu": 99.31}}


def test_zeros_are_carried_and_dropped_values_are_absent(
    fixture_bytes: Callable[[str], bytes],
) -> None:
    unknown = parse(fixture_bytes("grafana_demand_unknown.json"))[UP]
    assert (unknown["arrivals"], unknown["serving"], unknown["cpu_per_request"]) == (0, 0, 0)
    # One NaN made Grafana drop every value: no signal at all, the direction still records.
    dropped = parse_alert_payload(fixture_bytes("grafana_demand_values_dropped.json"),
                                  label="action")  # fmt: skip
    assert (dropped.directions, dict(dropped.signals)) == ((UP,), {})


def test_signals_never_make_a_nodata_or_contradicting_alert_count(
    fixture_bytes: Callable[[str], bytes],
) -> None:
    body = json.loads(fixture_bytes("grafana_demand_up.json"))
    body["alerts"][0]["labels"]["alertname"] = "DatasourceNoData"
    nodata = parse_alert_payload(json.dumps(body).encode(), label="action")
    assert (nodata.directions, nodata.skipped, dict(nodata.signals)) == ((), (Skip.NO_DATA,), {})
    down = fixture_bytes("grafana_demand_down.json")
    misrouted = parse_alert_payload(down, label="action", route_direction=UP)
    assert (misrouted.directions, misrouted.skipped) == ((), (Skip.CONTRADICTS_ROUTE,))
    assert dict(misrouted.signals) == {}


@pytest.fixture
def client(
    make_settings: Callable[..., ScalerSettings], offline_client: ExoClient
) -> Iterator[TestClient]:
    app = exo_app(make_settings(signals=tuple(LETTERS.items())), offline_client)
    with TestClient(app) as test_client:
        yield test_client


def test_a_webhook_records_its_signals_with_the_intent(
    client: TestClient, fixture_bytes: Callable[[str], bytes]
) -> None:
    body = fixture_bytes("grafana_demand_letter_refids.json")
    assert client.post("/webhook", content=body, headers=BEARER).json()["recorded"] == ["up"]
    status = client.get("/status").json()
    assert (status["signals"], status["member_cores"]) == (LETTERS, 1.0)
    [intent] = status["pending_intents"]
    assert intent["signals"] == MEASURED
    assert intent["signals_at"] is not None and intent["value"] == 99.31


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--signal", "arrivals"], "is not NAME=REFID"),
        (["--signal", "queue=q"], "NAME must be one of"),
        (["--signal", "cpu=a", "--signal", "cpu=b"], "names each signal once"),
        (["--signal", "cpu=A", "--value-ref", "B"], "--value-ref is the old --signal cpu"),
        (["--member-cores", "0"], "--member-cores must be a positive number"),
    ],
)
def test_bad_signal_flags_are_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(
        main, ["serve", "--pool", "web", "--no-auth", *args],
        env={"EXOSCALE_API_KEY": "EXOx", "EXOSCALE_API_SECRET": "y"},
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_value_ref_is_the_cpu_signal(make_settings: Callable[..., ScalerSettings]) -> None:
    from exo_scaler.cli import _signal_refs

    assert _signal_refs((), "B") == (("cpu", "B"),)
    settings = make_settings(signals=(("cpu", "B"),))
    assert (settings.signal_ref("cpu"), settings.signal_ref("arrivals")) == ("B", "arrivals")
    with pytest.raises(SettingsError, match="REFID must not be empty"):
        make_settings(signals=(("cpu", ""),))


def test_an_intent_keeps_the_signals_evaluated_last() -> None:
    """Re-sent notifications of one tick fold into one intent: the signals of the latest
    evaluation (all of one evaluation, never mixed), the CPU value the largest any carried."""
    from exo_scaler.intents import IntentBook

    clock = iter([100.0, 101.0, 102.0]).__next__
    book = IntentBook(clock)
    newer = {"cpu": 85.0, "arrivals": 30.0, "serving": 2.0, "evaluated_at": 95.0}
    older = {"cpu": 99.0, "arrivals": 20.0, "serving": 1.0, "evaluated_at": 80.0}
    book.record((UP,), "grafana", signals={UP: newer})
    book.record((UP,), "grafana", signals={UP: older})  # delivered later, evaluated earlier
    [intent] = book.take()
    assert (dict(intent.signals), intent.signals_at, intent.value) == (newer, 100.0, 99.0)
    assert intent.signals_age(110.0) == 15.0  # from evaluated_at, not from the arrival
    undated = {"arrivals": 30.0}
    book.record((UP,), "grafana", signals={UP: undated})
    [alone] = book.take()
    assert alone.signals_age(110.0) == 8.0  # no evaluated_at: from the arrival (102)
