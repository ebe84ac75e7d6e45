"""What the scaler shows of itself: the /status document and the gauges /metrics reads."""

from __future__ import annotations

from typing import Any

from .intents import Direction
from .metrics import Gauges
from .scaler import Scaler
from .settings import SIGNAL_NAMES
from .strategy import TRIGGERS


def status_json(scaler: Scaler) -> dict[str, Any]:
    settings, status = scaler.settings, scaler.last_status
    in_flight, last = scaler.in_flight, scaler.last_decision
    return {
        "pool": {
            "ref": settings.pool,
            "id": status.id if status else None,
            "name": status.name if status else None,
            "size": status.size if status else None,
            "state": status.state if status else None,
        },
        "size": status.size if status else None,
        "state": status.state if status else None,
        "min": settings.min_size,
        "max": settings.max_size,
        "effective_max": settings.effective_max,
        "step": settings.step,
        "interval": settings.interval,
        "pending_intents": [i.to_json() for i in scaler.intents.pending()],
        "paused": scaler.paused,
        "dry_run": settings.dry_run,
        "ticks": scaler.ticks,
        "last_decision": last.to_json() if last else None,
        "in_flight": in_flight.to_json() if in_flight else None,
        "auth": "none" if settings.no_auth else "token",
        "policy": settings.policy,
        # The alerts the policy acts on (webhooks.py, "Triggers"); others are skipped.
        "triggers": sorted(TRIGGERS[settings.policy]),
        # What the demand policy reads and sizes with (README, "demand").
        "signals": {name: settings.signal_ref(name) for name in SIGNAL_NAMES},
        "member_cores": settings.member_cores,
        "warming": scaler.warm_up.to_json("nlb" if settings.nlb else "vm-state"),
        "quota_left": scaler.quota_left,
        "conditions": scaler.conditions.to_json(),
    }


def gauges(scaler: Scaler) -> Gauges:
    """The state /metrics shows, read at scrape time."""
    pending = {i.direction for i in scaler.intents.pending()}
    status = scaler.last_status
    return Gauges(
        pool_size=None if status is None else status.size,
        min_size=scaler.settings.min_size,
        max_size=scaler.settings.effective_max,
        pending={d.value: int(d in pending) for d in Direction},
        paused=scaler.paused,
        in_flight=scaler.target.in_flight is not None,
        last_tick=scaler.last_tick,
        warming=scaler.warm_up.members_warming,
        pool_unhealthy=scaler.conditions.pool_unhealthy,
    )
