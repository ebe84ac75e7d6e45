"""One JSON line per decision on stdout, for humans, journald and log shippers alike."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any


def stdout_writer(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class EventLog:
    def __init__(self, write: Callable[[str], None] = stdout_writer) -> None:
        self._write = write

    def emit(self, event: str, **fields: Any) -> None:
        self._write(json.dumps({"event": event, **fields}, default=str, separators=(",", ":")))
