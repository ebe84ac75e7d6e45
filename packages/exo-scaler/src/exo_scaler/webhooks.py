"""Reading Grafana unified-alerting (version "1") and Alertmanager (version "4") payloads.

Pure: bytes in, directions out, or a `PayloadError` carrying the HTTP status to answer. A body
is accepted or refused as a whole, so a refused body never records anything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .intents import Direction

DIRECTION_VALUES: Mapping[str, Direction] = {
    "scale_up": Direction.UP,
    "scale-up": Direction.UP,
    "up": Direction.UP,
    "scale_down": Direction.DOWN,
    "scale-down": Direction.DOWN,
    "down": Direction.DOWN,
}


class PayloadError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ParsedPayload:
    source: str  # grafana | alertmanager | plain | unknown
    # One per firing alert that names a direction, duplicates kept: the receiver's IntentBook
    # folds them into one intent per direction.
    directions: tuple[Direction, ...]
    ignored: tuple[str, ...] = field(default=())  # why each other alert recorded nothing


def detect_source(body: Mapping[str, Any]) -> str:
    version = body.get("version")
    if version == "4":
        return "alertmanager"
    if version == "1" or "orgId" in body:
        return "grafana"
    return "unknown"


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(400, f"body is not valid JSON: {exc}") from None


def _alerts(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    alerts = body.get("alerts")
    if not isinstance(alerts, list):
        raise PayloadError(422, "`alerts` must be a list")
    for index, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise PayloadError(422, f"alerts[{index}] must be an object")
        if not isinstance(alert.get("status"), str):
            raise PayloadError(422, f"alerts[{index}].status must be a string")
        labels = alert.get("labels", {})
        if not isinstance(labels, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in labels.items()
        ):
            raise PayloadError(422, f"alerts[{index}].labels must map strings to strings")
    return alerts


def parse_alert_payload(
    raw: bytes, *, label: str, route_direction: Direction | None = None
) -> ParsedPayload:
    """Directions of the firing alerts; from the route when given, else from `label`.

    A route (`/up`, `/down`) also accepts an empty body or any JSON object without `alerts`,
    as simple callers (the course's robot, curl) send.
    """
    if route_direction is not None and not raw.strip():
        return ParsedPayload("plain", (route_direction,))
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise PayloadError(422, "body must be a JSON object")
    source = detect_source(body)
    if route_direction is not None and "alerts" not in body:
        # /up and /down accept any JSON object (or none) from simple callers.
        return ParsedPayload("plain", (route_direction,))
    alerts = _alerts(body)
    directions: list[Direction] = []
    ignored: list[str] = []
    for index, alert in enumerate(alerts):
        status = alert["status"]
        if status != "firing":
            ignored.append(f"alerts[{index}] is {status[:20]!r}, not firing")
            continue
        if route_direction is not None:
            directions.append(route_direction)
            continue
        value = alert.get("labels", {}).get(label)
        if value is None:
            ignored.append(f"alerts[{index}] has no {label!r} label")
            continue
        direction = DIRECTION_VALUES.get(value.strip().lower())
        if direction is None:
            raise PayloadError(
                422, f"alerts[{index}] label {label}={value[:40]!r}: unknown direction"
            )
        directions.append(direction)
    return ParsedPayload(source, tuple(directions), tuple(ignored))
