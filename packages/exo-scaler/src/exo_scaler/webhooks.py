"""Reading Grafana unified-alerting (version "1") and Alertmanager (version "4") payloads.

Pure: bytes in, directions out, or a `PayloadError` carrying the HTTP status to answer. A body
is accepted or refused as a whole, so a refused body never records anything.

The shapes (tests/fixtures/README.md names the upstream file each fixture follows):
- Alertmanager: prometheus/alertmanager notify/webhook/webhook.go `Message` (template `Data`
  plus `version` "4", `groupKey`, `truncatedAlerts`).
- Grafana: grafana/alerting receivers/webhook/v1/webhook.go `webhookMessage` (templates
  `ExtendedData` plus `version` "1", `orgId`, `title`, `state`, `message`); each alert's
  `values` is templates/template_data.go `ExtendedAlert.Values` (the rule's expressions by
  ref id, e.g. {"A": 91.7, "C": 1}, C being the threshold's 0/1).

Signals that never scale (DESIGN.md §4), each skipped with a `Skip` reason:
- `DatasourceNoData` / `DatasourceError`: Grafana renames an alert whose query returned no
  data or failed, keeping every other label of the rule, `action` included
  (grafana/grafana pkg/services/ngalert/state/compat.go, `NoDataAlertName`,
  `ErrorAlertName`); scaling on them would grow the pool to max during a monitoring outage.
- an alert annotated `grafana_state_reason` (`StateReasonAnnotation` in
  pkg/services/ngalert/models/alert_rule.go): its state is not its evaluation's (NoData or
  Error mapped to Alerting, for instance), so it says nothing about load.
- the contact-point test notification: grafana/alerting notify/receivers.go `newTestAlert`
  sends one firing alert labelled `alertname=TestAlert`, `instance=Grafana` (annotation
  `summary: Notification test`) through the real notifier (notify/test_receivers.go).
- on `/up` and `/down`, an alert whose direction label names the other direction.

Triggers: an alert's `trigger` label says what fired it; an alert without one is a CPU alert
(`cpu`: the 80 %/20 % rules, any other caller). The demand policy also acts on the shedding
rule (`trigger: shedding`: members answering 503 now, issue 21's faster trigger); the CPU
policies are the seed's and act on the CPU rules alone, so they skip it (`other-trigger`) and
see exactly what they saw before it existed. The caller passes the triggers it acts on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .intents import Direction
from .settings import SIGNAL_NAMES

NO_DATA_ALERTNAME = "DatasourceNoData"
ERROR_ALERTNAME = "DatasourceError"
STATE_REASON_ANNOTATION = "grafana_state_reason"
TEST_ALERTNAME = "TestAlert"
# `instance` of the test alert: "Grafana" today; "Alertmanager" in older Grafana releases'
# copy of the same function (pkg/services/ngalert/notifier/channels/testreceivers.go).
TEST_INSTANCES = frozenset({"Grafana", "Alertmanager"})
DEFAULT_VALUE_ANNOTATIONS: tuple[str, ...] = ("value", "cpu")
TRIGGER_LABEL = "trigger"
CPU_TRIGGER = "cpu"  # an alert without a trigger label
SHEDDING_TRIGGER = "shedding"
#: the triggers of the CPU policies (and of anyone who does not say)
CPU_TRIGGERS: frozenset[str] = frozenset({CPU_TRIGGER})
ALL_TRIGGERS: frozenset[str] = frozenset({CPU_TRIGGER, SHEDDING_TRIGGER})


class Skip(StrEnum):
    """Why a received alert recorded nothing (the `reason` label of the ignored-alerts metric)."""

    RESOLVED = "resolved"
    NO_LABEL = "no-label"
    NO_DATA = "nodata"
    DATASOURCE_ERROR = "datasource-error"
    STATE_REASON = "state-reason"
    TEST_NOTIFICATION = "test-notification"
    CONTRADICTS_ROUTE = "contradicts-route"
    OTHER_TRIGGER = "other-trigger"


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
    skipped: tuple[Skip, ...] = field(default=())  # the reason of each `ignored`, in order
    # The signals of each direction (see alert_signals), if any alert carried some: those of
    # the alert evaluated last, the largest CPU value among them.
    signals: Mapping[Direction, Mapping[str, float]] = field(default_factory=dict)
    truncated: int = 0  # alerts the sender left out (`truncatedAlerts`, max_alerts)

    @property
    def test_notification(self) -> bool:
        """True when the body was a contact-point test and nothing else."""
        return (
            bool(self.skipped)
            and not self.directions
            and all(s is Skip.TEST_NOTIFICATION for s in self.skipped)
        )


def parse_number(value: Any) -> float | None:
    """A finite, non-negative number from a JSON number or an annotation string ("91.7",
    " 91.7 % "); None for anything else (the value is optional, never a reason to refuse)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        try:
            number = float(text)
        except ValueError:
            return None
    elif isinstance(value, int | float):
        number = float(value)
    else:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def alert_signals(
    alert: Mapping[str, Any],
    *,
    refs: Mapping[str, str] | None = None,
    annotations: Sequence[str] = DEFAULT_VALUE_ANNOTATIONS,
) -> dict[str, float]:
    """The signals an alert carries, by name; a signal it does not carry is absent.

    Each signal NAME is read from Grafana's `values[REFID]` (the rule's expressions by refId,
    grafana/alerting templates/template_data.go `ExtendedAlert.Values`), else from the
    annotation `value_<REFID>` (Alertmanager has no values: exo-lab's rules annotate each by
    a template query). `refs` maps NAME to REFID (settings.signal_ref); a name not in it is
    read under its own name. The CPU value (`cpu`) is also read, in the order given, from the
    legacy `annotations` (a rule's `value: "{{ $value }}"`), then from the largest of `values`
    that is no other signal's refId, not 0/1 and a percentage — a threshold or math condition
    evaluates to 0 or 1, the query and its reduction to the measurement, and a rate or a Unix
    time under a refId nobody mapped is no CPU %.
    """
    refs = refs or {}
    values = alert.get("values")
    values = values if isinstance(values, Mapping) else {}
    notes = alert.get("annotations")
    notes = notes if isinstance(notes, Mapping) else {}
    found: dict[str, float] = {}
    for name in SIGNAL_NAMES:
        ref = refs.get(name, name)
        number = parse_number(values.get(ref))
        if number is None:
            number = parse_number(notes.get(f"value_{ref}"))
        if number is not None:
            found[name] = number
    if "cpu" not in found:
        for key in annotations:
            number = parse_number(notes.get(key))
            if number is not None:
                found["cpu"] = number
                break
    if "cpu" not in found:
        others = {refs.get(n, n) for n in SIGNAL_NAMES if n != "cpu"}
        numbers = (parse_number(v) for k, v in values.items() if k not in others)
        measured = [n for n in numbers if n is not None and n not in (0.0, 1.0) and n <= 100]
        if measured:
            found["cpu"] = max(measured)
    return found


def _skip_reason(alert: Mapping[str, Any]) -> Skip | None:
    """Why a firing alert must not scale, whatever its direction; None if it may."""
    labels = alert.get("labels", {})
    name = labels.get("alertname")
    if name == TEST_ALERTNAME and labels.get("instance") in TEST_INSTANCES:
        return Skip.TEST_NOTIFICATION
    if name == NO_DATA_ALERTNAME:
        return Skip.NO_DATA
    if name == ERROR_ALERTNAME:
        return Skip.DATASOURCE_ERROR
    notes = alert.get("annotations")
    if isinstance(notes, Mapping) and notes.get(STATE_REASON_ANNOTATION):
        return Skip.STATE_REASON
    return None


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
    raw: bytes,
    *,
    label: str,
    route_direction: Direction | None = None,
    value_annotations: Sequence[str] = DEFAULT_VALUE_ANNOTATIONS,
    signal_refs: Mapping[str, str] | None = None,
    triggers: frozenset[str] = CPU_TRIGGERS,
) -> ParsedPayload:
    """Directions of the firing alerts; from the route when given, else from `label`.
    Alerts of a trigger not in `triggers` are skipped (module docstring).

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
    skipped: list[Skip] = []
    signals: dict[Direction, dict[str, float]] = {}

    def skip(reason: Skip, why: str) -> None:
        skipped.append(reason)
        ignored.append(why)

    for index, alert in enumerate(alerts):
        status = alert["status"]
        if status != "firing":
            skip(Skip.RESOLVED, f"alerts[{index}] is {status[:20]!r}, not firing")
            continue
        reason = _skip_reason(alert)
        if reason is not None:
            name = alert.get("labels", {}).get("alertname", "")
            skip(reason, f"alerts[{index}] ({name[:40]}) is a {reason.value} signal")
            continue
        trigger = alert.get("labels", {}).get(TRIGGER_LABEL, CPU_TRIGGER)
        if trigger not in triggers:
            name = alert.get("labels", {}).get("alertname", "")
            skip(
                Skip.OTHER_TRIGGER,
                f"alerts[{index}] ({name[:40]}) is a {trigger[:40]!r} trigger; this policy "
                f"acts on {', '.join(sorted(triggers))}",
            )
            continue
        value = alert.get("labels", {}).get(label)
        named = DIRECTION_VALUES.get(value.strip().lower()) if value is not None else None
        if route_direction is not None:
            # The route names the direction; a label that names the other one is a
            # misrouted alert, and acting on either would be a guess.
            if named is not None and named is not route_direction:
                skip(
                    Skip.CONTRADICTS_ROUTE,
                    f"alerts[{index}] says {label}={value!s:.40} on the "
                    f"{route_direction.value} route",
                )
                continue
            direction = route_direction
        elif value is None:
            skip(Skip.NO_LABEL, f"alerts[{index}] has no {label!r} label")
            continue
        elif named is None:
            raise PayloadError(
                422, f"alerts[{index}] label {label}={value[:40]!r}: unknown direction"
            )
        else:
            direction = named
        directions.append(direction)
        carried = alert_signals(alert, refs=signal_refs, annotations=value_annotations)
        if carried:
            signals[direction] = _newer(signals.get(direction), carried)
    truncated = body.get("truncatedAlerts")
    return ParsedPayload(
        source,
        tuple(directions),
        tuple(ignored),
        tuple(skipped),
        signals,
        truncated if isinstance(truncated, int) and not isinstance(truncated, bool) else 0,
    )


def _newer(kept: dict[str, float] | None, carried: dict[str, float]) -> dict[str, float]:
    """Of two alerts' signals, those evaluated last (the later alert when neither says); the
    CPU value is the largest either carried, as one alert per member would ask."""
    if kept is None:
        return carried
    newer = carried if carried.get("evaluated_at", 0.0) >= kept.get("evaluated_at", 0.0) else kept
    cpus = [c for c in (kept.get("cpu"), carried.get("cpu")) if c is not None]
    return {**newer, **({"cpu": max(cpus)} if cpus else {})}
