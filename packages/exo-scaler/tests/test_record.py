"""The decision record: the scaler's log line, read back as the same typed value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from exo_scaler import (
    Capped,
    Decision,
    DecisionLogError,
    DecisionRecord,
    Direction,
    EventLog,
    Intent,
    Reason,
    Wish,
    read_decision_log,
)

SCALED_DOWN = DecisionRecord(
    wall_time=1764017463.25,
    action=Direction.DOWN,
    from_size=3,
    to_size=2,
    reason=Reason.SCALED,
    intents=(Intent(Direction.DOWN, 1764017461.0, 1764017462.5, "grafana", 3),),
    pool="3f1c-pool",
    tick=12,
    operation_id="op-1",
    members=("member-b",),
    policy="proportional",
    value=12.5,
    desired=1,
    wish=Wish(Direction.DOWN, 1, "12.5 on 3 serving asks for 1", 12.5, 1),
    capped_by=(Capped("step-limit", 1, 2, "at most -1 a tick"),),
)
IDLE = DecisionRecord(1764017523.0, None, None, None, Reason.API_ERROR, detail="503")


@pytest.mark.parametrize("record", [SCALED_DOWN, IDLE])
def test_round_trip_through_a_line_and_through_a_dict(record: DecisionRecord) -> None:
    assert DecisionRecord.from_json(record.to_line()) == record
    assert DecisionRecord.from_json(record.to_json()) == record
    assert DecisionRecord.from_json(record.to_line().encode()) == record


def test_the_line_keeps_the_log_format() -> None:
    line = json.loads(IDLE.to_line())
    assert line["event"] == "decision"
    assert (line["action"], line["from"], line["to"], line["reason"]) == (
        "none",
        None,
        None,
        "api-error",
    )
    assert json.loads(SCALED_DOWN.to_line())["intents"][0]["direction"] == "down"


def test_of_a_decision_and_scaled() -> None:
    intents = (Intent(Direction.UP, 1.0, 2.0, "route"),)
    wish = Wish(Direction.UP, 3, "+2")
    capped = (Capped("bounds", 3, 2, "max is 2"),)
    decision = Decision(Direction.UP, 1, 2, Reason.SCALED, intents, wish=wish, capped_by=capped)
    record = DecisionRecord.of(decision, wall_time=3.0, pool="p", tick=1, operation_id="op")
    assert (record.action, record.intents, record.operation_id) == (Direction.UP, intents, "op")
    assert (record.wish, record.capped_by) == (wish, capped)
    assert record.scaled
    failed = decision.with_failure(Reason.POOL_BUSY, "409")
    assert not DecisionRecord.of(failed, wall_time=4.0).scaled


def test_unknown_keys_are_ignored_and_missing_optional_keys_default() -> None:
    line = (
        '{"event":"decision","time":5,"action":"none","from":2,"to":2,"reason":"at-max",'
        '"wanted":"up","operation":"op-7"}'
    )
    record = DecisionRecord.from_json(line)
    assert (record.wall_time, record.action, record.intents, record.members) == (5.0, None, (), ())


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not a JSON line"),
        ("[1, 2]", "JSON object"),
        ('{"event":"operation","time":1}', "not a decision event"),
        ('{"action":"up","from":1,"to":2,"reason":"scaled"}', "'wall_time' must be a number"),
        ('{"wall_time":"x","action":"up","from":1,"to":2,"reason":"scaled"}', "'wall_time'"),
        (
            '{"wall_time":1,"action":"up","from":1,"to":2,"reason":"scaled","wish":3}',
            "'wish' must be an object",
        ),
        (
            '{"wall_time":1,"action":"up","from":1,"to":2,"reason":"scaled",'
            '"capped_by":[{"cap":"bounds","from":3}]}',
            "'capped_by' entries need a cap name, from and to",
        ),
        ('{"time":true,"action":"up","from":1,"to":2,"reason":"scaled"}', "'time'"),
        ('{"time":1,"action":"sideways","from":1,"to":2,"reason":"scaled"}', "'action'"),
        ('{"time":1,"action":["up"],"from":1,"to":2,"reason":"scaled"}', "'action'"),
        ('{"time":1,"action":"up","from":"1","to":2,"reason":"scaled"}', "'from'"),
        ('{"time":1,"action":"up","from":1,"to":-2,"reason":"scaled"}', "'to'"),
        ('{"time":1,"action":"up","from":1,"to":2,"reason":"lucky"}', "'reason' must be one of"),
        ('{"time":1,"action":"up","from":1,"to":2,"reason":"scaled","tick":true}', "'tick'"),
        ('{"time":1,"action":"up","from":1,"to":2,"reason":"scaled","intents":[1]}', "intents"),
        (
            '{"time":1,"action":"up","from":1,"to":2,"reason":"scaled",'
            '"intents":[{"direction":"left","first_at":1,"last_at":1}]}',
            "intent direction",
        ),
    ],
)
def test_malformed_lines_are_refused_clearly(line: str, message: str) -> None:
    with pytest.raises(DecisionLogError, match=message):
        DecisionRecord.from_json(line)


def test_the_reader_reads_what_the_event_log_writes(tmp_path: Path) -> None:
    path = tmp_path / "exo-scaler.log"
    with path.open("w") as out:
        events = EventLog(lambda line: out.write(line + "\n"))
        out.write("INFO exo_scaler.cli: pool web (3f1c): size 3, running\n")
        events.decision(SCALED_DOWN)
        events.emit("operation", time=2.0, result="success")
        out.write("{half a line, the scaler is still writing it\n")
        events.emit("paused", time=3.0)
        events.decision(IDLE)
    assert read_decision_log(path) == [SCALED_DOWN, IDLE]
    assert read_decision_log(str(path)) == [SCALED_DOWN, IDLE]
    assert read_decision_log(path.read_text().splitlines()) == [SCALED_DOWN, IDLE]


def test_the_reader_names_the_line_of_a_wrong_decision() -> None:
    lines = [SCALED_DOWN.to_line(), '{"event":"decision","wall_time":"soon"}']
    with pytest.raises(DecisionLogError, match="line 2: 'wall_time' must be a number"):
        read_decision_log(lines)


def test_older_lines_without_the_policy_fields_still_read() -> None:
    old = (
        '{"event":"decision","pool":"p","tick":3,"time":1.5,"action":"up","from":1,"to":2,'
        '"reason":"scaled","intents":[{"direction":"up","first_at":1.0,"last_at":1.2,'
        '"source":"grafana","count":2}],"detail":"","operation_id":"op","members":[],'
        '"dry_run":false}'
    )
    record = DecisionRecord.from_json(old)
    assert (record.policy, record.value, record.desired, record.warming) == ("", None, None, 0)
    assert record.intents[0].value is None
    again = DecisionRecord.from_json(record.to_line())
    assert again == record
    assert (record.wall_time, record.wish, record.capped_by) == (1.5, None, ())
    newer = json.loads(record.to_line())
    assert {"policy", "value", "desired", "warming", "wish", "capped_by"} <= newer.keys()
    # Only `time` was renamed (to `wall_time`, the clock it is on); everything else is added.
    assert set(json.loads(old)) - {"time"} <= set(newer)
    assert newer["wall_time"] == json.loads(old)["time"]


def test_the_wish_and_the_caps_are_in_the_line() -> None:
    line = json.loads(SCALED_DOWN.to_line())
    assert line["wish"] == {
        "direction": "down",
        "size": 1,
        "why": "12.5 on 3 serving asks for 1",
        "need": None,
        "fallback": None,
        "shedding": False,
        "then": None,
    }
    assert line["follow_up"] is False
    assert line["capped_by"] == [
        {"cap": "step-limit", "from": 1, "to": 2, "detail": "at most -1 a tick"}
    ]
