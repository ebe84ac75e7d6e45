"""Intents recorded from webhooks between two ticks; one per direction per tick."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from .decision import Direction


@dataclass(frozen=True)
class Intent:
    direction: Direction
    first_at: float  # wall-clock seconds
    last_at: float
    source: str
    count: int = 1

    def to_json(self) -> dict[str, object]:
        return {
            "direction": self.direction.value,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "source": self.source,
            "count": self.count,
        }


class IntentBook:
    """Thread-safe, so worker threads and the event loop may both touch it."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[Direction, Intent] = {}

    def record(self, direction: Direction, source: str) -> Intent:
        now = self._clock()
        with self._lock:
            seen = self._pending.get(direction)
            intent = (
                Intent(direction, now, now, source)
                if seen is None
                else replace(seen, last_at=now, count=seen.count + 1)
            )
            self._pending[direction] = intent
            return intent

    def take(self) -> tuple[Intent, ...]:
        """Everything since the last take, oldest direction first; the book is empty after."""
        with self._lock:
            taken = tuple(sorted(self._pending.values(), key=lambda i: i.first_at))
            self._pending.clear()
            return taken

    def pending(self) -> tuple[Intent, ...]:
        with self._lock:
            return tuple(self._pending.values())
