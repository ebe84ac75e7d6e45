"""Directions and the intents recorded from webhooks between two ticks."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

log = logging.getLogger("exo_scaler")


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"


@dataclass(frozen=True)
class Intent:
    """Every request for one direction since the last tick, folded into one."""

    direction: Direction
    first_at: float  # wall-clock seconds
    last_at: float
    source: str
    count: int = 1
    # The largest measured value the requests carried (the alert's CPU, say), None if none
    # did: the proportional policy sizes its step from it.
    value: float | None = None
    # When `value` was measured: the evaluation time its request carried (the signals'
    # `evaluated_at`: a notifier re-sends a firing alert's values 30–60 s after evaluating
    # them), else the request's arrival. A value older than a scale-up's members serving
    # does not measure them (warmup.py). Of two values the larger is kept with its time, even
    # if older: at worst the warm-up ends a tick later, never too early.
    value_at: float | None = None
    # The demand signals (settings.SIGNAL_NAMES) of the request evaluated last, and when that
    # request arrived: their age is now − `evaluated_at`, else now − `signals_at`.
    signals: Mapping[str, float] = field(default_factory=dict, hash=False)
    signals_at: float | None = None

    def signals_age(self, now: float) -> float | None:
        """How old the signals are at `now`; None without signals."""
        if not self.signals:
            return None
        since = _evaluated(self)
        return None if since is None else max(0.0, now - since)

    def to_json(self) -> dict[str, Any]:
        return {
            "direction": self.direction.value,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "source": self.source,
            "count": self.count,
            "value": self.value,
            "value_at": self.value_at,
            "signals": dict(self.signals),
            "signals_at": self.signals_at,
        }

    def merged(self, other: Intent) -> Intent:
        """Both intents of one direction as one: the earliest start, the latest request."""
        larger = other if other.value is not None and (
            self.value is None or other.value >= self.value
        ) else self  # fmt: skip
        newer = other if other.signals and (
            not self.signals or (_evaluated(other) or 0.0) >= (_evaluated(self) or 0.0)
        ) else self  # fmt: skip
        return replace(
            self,
            signals=newer.signals,
            signals_at=newer.signals_at,
            first_at=min(self.first_at, other.first_at),
            last_at=max(self.last_at, other.last_at),
            count=self.count + other.count,
            value=larger.value,
            value_at=larger.value_at,
            source=self.source if self.last_at >= other.last_at else other.source,
        )

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Intent:
        """The inverse of to_json; ValueError names the first field that is wrong."""
        try:
            direction = Direction(value["direction"])
        except (KeyError, ValueError, TypeError):
            raise ValueError(f"intent direction must be up or down: {value!r:.80}") from None
        first_at, last_at = _seconds(value, "first_at"), _seconds(value, "last_at")
        source, count = value.get("source", ""), value.get("count", 1)
        if not isinstance(source, str):
            raise ValueError("intent source must be a string")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError("intent count must be a positive integer")
        measured = value.get("value")  # absent from logs written before it existed
        if measured is not None and (
            not isinstance(measured, int | float) or isinstance(measured, bool)
        ):
            raise ValueError("intent value must be a number or null")
        value_at = value.get("value_at")  # absent from logs written before it existed
        if value_at is not None:
            value_at = _seconds(value, "value_at")
        signals = value.get("signals") or {}  # absent from logs written before they existed
        if not isinstance(signals, Mapping) or not all(
            isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
            for k, v in signals.items()
        ):
            raise ValueError("intent signals must map names to numbers")
        signals_at = value.get("signals_at")
        if signals_at is not None:
            signals_at = _seconds(value, "signals_at")
        return cls(
            direction,
            first_at,
            last_at,
            source,
            count,
            None if measured is None else float(measured),
            value_at,
            {k: float(v) for k, v in signals.items()},
            signals_at,
        )


def fresh_intents(
    taken: Iterable[Intent], now: float, ttl: float
) -> tuple[tuple[Intent, ...], tuple[Intent, ...]]:
    """(the intents still worth acting on, the stale ones): an intent kept through busy ticks
    whose last request is older than `ttl` is stale."""
    fresh: list[Intent] = []
    stale: list[Intent] = []
    for intent in taken:
        (fresh if now - intent.last_at <= ttl else stale).append(intent)
        if now - intent.last_at > ttl:
            log.info("dropped a stale %s intent (last asked at %.0f)", intent.direction,
                     intent.last_at)  # fmt: skip
    return tuple(fresh), tuple(stale)


def _evaluated(intent: Intent) -> float | None:
    """When an intent's signals were measured: their `evaluated_at` (0 is unknown), else
    when they arrived."""
    evaluated = intent.signals.get("evaluated_at")
    return evaluated if evaluated else intent.signals_at


def _seconds(value: Mapping[str, Any], key: str) -> float:
    seconds = value.get(key)
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        raise ValueError(f"intent {key} must be a number, got {seconds!r:.40}")
    return float(seconds)


class IntentBook:
    """One intent per direction until the next tick takes them.

    This is where duplicate requests (many alerts, many notifications) become one intent, so
    nothing downstream de-duplicates again. Thread-safe: worker threads and the event loop may
    both touch it.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[Direction, Intent] = {}

    def record(
        self,
        directions: Iterable[Direction],
        source: str,
        values: Mapping[Direction, float] | None = None,
        signals: Mapping[Direction, Mapping[str, float]] | None = None,
    ) -> tuple[Direction, ...]:
        """Count one request for each direction it names; returns them, each once, down first.
        `values` are the CPU values the request carried, by direction; `signals` all of its
        demand signals (the CPU value among them)."""
        distinct = tuple(sorted(set(directions)))
        now = self._clock()
        signals = signals or {}
        values = values or {d: s["cpu"] for d, s in signals.items() if "cpu" in s}
        with self._lock:
            for direction in distinct:
                seen = self._pending.get(direction)
                value = values.get(direction)
                carried = dict(signals.get(direction) or {})
                evaluated = carried.get("evaluated_at") or now  # 0: unknown
                arrived = Intent(
                    direction, now, now, source, value=value,
                    value_at=None if value is None else min(now, evaluated),
                    signals=carried, signals_at=now if carried else None,
                )  # fmt: skip
                self._pending[direction] = arrived if seen is None else seen.merged(arrived)
        return distinct

    def restore(self, intents: Iterable[Intent]) -> None:
        """Put back intents a tick took but could not act on; merged with any that arrived
        since, so they still count once per direction."""
        with self._lock:
            for intent in intents:
                seen = self._pending.get(intent.direction)
                self._pending[intent.direction] = intent if seen is None else intent.merged(seen)

    def take(self) -> tuple[Intent, ...]:
        """Everything since the last take, oldest direction first; the book is empty after."""
        with self._lock:
            taken = tuple(sorted(self._pending.values(), key=lambda i: i.first_at))
            self._pending.clear()
            return taken

    def pending(self) -> tuple[Intent, ...]:
        with self._lock:
            return tuple(self._pending.values())
