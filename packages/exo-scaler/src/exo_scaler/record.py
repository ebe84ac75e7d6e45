"""The decision record: one type from the scaler's log line to every reader of that log.

The scaler writes one `DecisionRecord` per decision (`EventLog.decision`); a report, a figure or
a benchmark reads them back with `read_decision_log`. The JSON keys are the log's public
format: `action` is `up`, `down` or `none`; `from`/`to` are sizes (null when the pool could not
be read); `wall_time` is the wall clock (Unix seconds; logs written before it was named read
back from `time`); `wish` is the strategy's and `capped_by` each cap that changed it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .caps import Capped
from .decision import Decision
from .intents import Direction, Intent
from .reason import Reason, action_label
from .strategy import Wish

DECISION_EVENT = "decision"


class DecisionLogError(ValueError):
    """A decision line that does not describe a decision (the message says what is wrong)."""


@dataclass(frozen=True)
class DecisionRecord:
    wall_time: float  # wall-clock (Unix) seconds when the decision was taken
    action: Direction | None
    from_size: int | None
    to_size: int | None
    reason: Reason
    detail: str = ""
    intents: tuple[Intent, ...] = ()
    pool: str = ""  # the pool's id (its reference until the first successful read)
    tick: int = 0  # 1 for the first decision of a process
    operation_id: str | None = None  # the scale or evict operation it started
    members: tuple[str, ...] = ()  # the members a scale-down evicts
    dry_run: bool = False
    # Added with the policies; absent from older lines (read back as these defaults).
    policy: str = ""  # step | proportional
    value: float | None = None  # the alert's measured value the policy used
    desired: int | None = None  # the size that value asked for, before the clamps
    warming: int = 0  # asked-for members not serving yet, counted as capacity
    # Added with the caps (issue 19); absent from older lines (None and ()).
    wish: Wish | None = None  # the strategy's, before the caps
    capped_by: tuple[Capped, ...] = ()  # each cap that changed the wish, in order
    # Taken when the operation of the tick's first step ended, not at a tick (the demand
    # policy's 2 first, then the need); absent from older lines.
    follow_up: bool = False

    @classmethod
    def of(
        cls,
        decision: Decision,
        *,
        wall_time: float,
        pool: str = "",
        tick: int = 0,
        operation_id: str | None = None,
        members: Iterable[str] = (),
        dry_run: bool = False,
        follow_up: bool = False,
    ) -> DecisionRecord:
        """The record of an evaluated (and maybe acted on) decision: the one place the scaler
        builds one."""
        return cls(
            wall_time=wall_time,
            action=decision.action,
            from_size=decision.from_size,
            to_size=decision.to_size,
            reason=decision.reason,
            detail=decision.detail,
            intents=decision.intents,
            pool=pool,
            tick=tick,
            operation_id=operation_id,
            members=tuple(members),
            dry_run=dry_run,
            policy=decision.policy,
            value=decision.value,
            desired=decision.desired,
            warming=decision.warming,
            wish=decision.wish,
            capped_by=decision.capped_by,
            follow_up=follow_up,
        )

    @property
    def scaled(self) -> bool:
        """True when the scaler asked the API to change the size (an operation was started)."""
        return self.reason is Reason.SCALED and self.action is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "event": DECISION_EVENT,
            "pool": self.pool,
            "tick": self.tick,
            "wall_time": self.wall_time,
            "action": action_label(self.action),
            "from": self.from_size,
            "to": self.to_size,
            "reason": self.reason.value,
            "intents": [i.to_json() for i in self.intents],
            "detail": self.detail,
            "operation_id": self.operation_id,
            "members": list(self.members),
            "dry_run": self.dry_run,
            "policy": self.policy,
            "value": self.value,
            "desired": self.desired,
            "warming": self.warming,
            "wish": None if self.wish is None else self.wish.to_json(),
            "capped_by": [c.to_json() for c in self.capped_by],
            "signals": None
            if self.wish is None or not self.wish.signals
            else dict(self.wish.signals),
            "signals_age": None if self.wish is None else self.wish.signals_age,
            "follow_up": self.follow_up,
        }

    def to_line(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    @classmethod
    def from_json(cls, value: str | bytes | Mapping[str, Any]) -> DecisionRecord:
        """A record from a log line or its decoded object; DecisionLogError says what is wrong.

        Keys this version does not know are ignored, so an older reader reads a newer log.
        """
        data = _decode(value) if isinstance(value, str | bytes) else value
        if not isinstance(data, Mapping):
            raise DecisionLogError("a decision must be a JSON object")
        event = data.get("event", DECISION_EVENT)
        if event != DECISION_EVENT:
            raise DecisionLogError(f"not a decision event: {event!r:.40}")
        try:
            # `time` in lines written before the wall clock was named so.
            clock = "time" if "time" in data and "wall_time" not in data else "wall_time"
            measured = _optional_number(data, "value")
            desired = _size(data, "desired")
            return cls(
                wall_time=_number(data, clock),
                action=_action(data.get("action")),
                from_size=_size(data, "from"),
                to_size=_size(data, "to"),
                reason=_reason(data.get("reason")),
                detail=_typed(data, "detail", str, ""),
                intents=tuple(Intent.from_json(i) for i in _list(data, "intents", dict)),
                pool=_typed(data, "pool", str, ""),
                tick=_typed(data, "tick", int, 0),
                operation_id=_typed(data, "operation_id", str, None),
                members=tuple(_list(data, "members", str)),
                dry_run=_typed(data, "dry_run", bool, False),
                policy=_typed(data, "policy", str, ""),
                value=measured,
                desired=desired,
                warming=_typed(data, "warming", int, 0),
                wish=_wish(data, measured, desired),
                capped_by=tuple(_capped(c) for c in _list(data, "capped_by", dict)),
                follow_up=_typed(data, "follow_up", bool, False),
            )
        except DecisionLogError:
            raise
        except ValueError as exc:  # from Intent.from_json
            raise DecisionLogError(str(exc)) from None


def read_decision_log(source: str | os.PathLike[str] | Iterable[str]) -> list[DecisionRecord]:
    """Every decision in a log file (a path) or in its lines, in the order written.

    Lines that are not JSON objects (stderr logging sharing the file, a line still being
    written) and events other than decisions are skipped; a decision line that is wrong raises
    DecisionLogError with its line number, since a silently dropped decision would skew a
    report.
    """
    if isinstance(source, str | os.PathLike):
        lines: Iterable[str] = Path(source).read_text(errors="replace").splitlines()
    else:
        lines = source
    records: list[DecisionRecord] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text.startswith("{"):
            continue
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if not isinstance(data, dict) or data.get("event") != DECISION_EVENT:
            continue
        try:
            records.append(DecisionRecord.from_json(data))
        except DecisionLogError as exc:
            raise DecisionLogError(f"line {number}: {exc}") from None
    return records


def _decode(raw: str | bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise DecisionLogError(f"not a JSON line: {exc}") from None


def _number(data: Mapping[str, Any], key: str) -> float:
    value = data.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise DecisionLogError(f"{key!r} must be a number, got {value!r:.40}")
    return float(value)


def _optional_number(data: Mapping[str, Any], key: str) -> float | None:
    return None if data.get(key) is None else _number(data, key)


def _size(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DecisionLogError(f"{key!r} must be a size or null, got {value!r:.40}")
    return value


def _wish(data: Mapping[str, Any], measured: float | None, desired: int | None) -> Wish | None:
    value = data.get("wish")
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise DecisionLogError("'wish' must be an object or null")
    direction = _action(value.get("direction"))
    if direction is None:
        raise DecisionLogError("'wish.direction' must be up or down")
    size = _size(value, "size")
    if size is None:
        raise DecisionLogError("'wish.size' must be a size")
    signals = data.get("signals") or {}
    if not isinstance(signals, Mapping) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in signals.values()
    ):
        raise DecisionLogError("'signals' must map names to numbers")
    return Wish(
        direction,
        size,
        _typed(value, "why", str, ""),
        measured,
        desired,
        need=_size(value, "need"),
        fallback=_typed(value, "fallback", str, None),
        signals={str(k): float(v) for k, v in signals.items()},
        signals_age=_optional_number(data, "signals_age"),
        shedding=_typed(value, "shedding", bool, False),
        then=_size(value, "then"),
    )


def _capped(value: Mapping[str, Any]) -> Capped:
    cap, before, after = _typed(value, "cap", str, ""), _size(value, "from"), _size(value, "to")
    if not cap or before is None or after is None:
        raise DecisionLogError("'capped_by' entries need a cap name, from and to")
    return Capped(cap, before, after, _typed(value, "detail", str, ""))


def _action(value: Any) -> Direction | None:
    if value is None or value == "none":
        return None
    try:
        return Direction(value)
    except (ValueError, TypeError):
        raise DecisionLogError(f"'action' must be up, down or none, got {value!r:.40}") from None


def _reason(value: Any) -> Reason:
    try:
        return Reason(value)
    except (ValueError, TypeError):
        known = ", ".join(r.value for r in Reason)
        raise DecisionLogError(f"'reason' must be one of {known}, got {value!r:.40}") from None


def _typed(data: Mapping[str, Any], key: str, kind: type[Any], default: Any) -> Any:
    value = data.get(key, default)
    if value is None and default is None:
        return None
    # bool is an int: a tick of `true` is as wrong as a dry_run of 1.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DecisionLogError(f"{key!r} must be a {kind.__name__}, got {value!r:.40}")
    return value


def _list(data: Mapping[str, Any], key: str, kind: type[Any]) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise DecisionLogError(f"{key!r} must be a list of {kind.__name__}")
    return value
