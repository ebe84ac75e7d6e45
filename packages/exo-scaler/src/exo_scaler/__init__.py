"""Webhook-driven scaler for Exoscale instance pools (Grafana / Alertmanager).

The public API is what is listed in `__all__`: the app, its target seam and the evaluation for
running the scaler, and the pieces another scaler (exo-lab's naive baseline) and the readers of the
decision log (reports, benchmarks) reuse, so that they differ from this one only in policy.
"""

from .app import create_app
from .auth import Authenticator, AuthMiddleware
from .body import BodyTooLarge, read_limited
from .caps import CAPS, Cap, Capped
from .decision import Decision, evaluate
from .events import EventLog
from .exoscale import ExoPoolTarget
from .intents import Direction, Intent, IntentBook
from .reason import Reason, action_label
from .record import DecisionLogError, DecisionRecord, read_decision_log
from .settings import MAX_BODY_BYTES, ScalerSettings, SettingsError
from .strategy import STRATEGIES, Wish
from .target import InFlight, Launched, Member, MemberState, PoolStatus, PoolTarget
from .webhooks import ALL_TRIGGERS, CPU_TRIGGERS, ParsedPayload, PayloadError, parse_alert_payload

__version__ = "0.1.0"

__all__ = [
    "ALL_TRIGGERS",
    "CAPS",
    "CPU_TRIGGERS",
    "MAX_BODY_BYTES",
    "STRATEGIES",
    "AuthMiddleware",
    "Authenticator",
    "BodyTooLarge",
    "Cap",
    "Capped",
    "Decision",
    "DecisionLogError",
    "DecisionRecord",
    "Direction",
    "EventLog",
    "ExoPoolTarget",
    "InFlight",
    "Intent",
    "IntentBook",
    "Launched",
    "Member",
    "MemberState",
    "ParsedPayload",
    "PayloadError",
    "PoolStatus",
    "PoolTarget",
    "Reason",
    "ScalerSettings",
    "SettingsError",
    "Wish",
    "action_label",
    "create_app",
    "evaluate",
    "parse_alert_payload",
    "read_decision_log",
    "read_limited",
]
