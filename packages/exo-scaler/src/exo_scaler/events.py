"""One JSON line per event on stdout, for humans, journald, log shippers and the lab alike."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from .record import DecisionRecord


def stdout_writer(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class EventLog:
    """`write` gets one complete line at a time (no newline); the default is stdout."""

    def __init__(self, write: Callable[[str], None] = stdout_writer) -> None:
        self._write = write

    def decision(self, record: DecisionRecord) -> None:
        """The decision line, in the format `read_decision_log` reads back."""
        self._write(record.to_line())

    def emit(self, event: str, **fields: Any) -> None:
        """Any other event (operation, drain, paused, ...): `event` plus the fields."""
        self._write(json.dumps({"event": event, **fields}, default=str, separators=(",", ":")))
