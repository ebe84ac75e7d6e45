"""Webhook-driven scaler for Exoscale instance pools (Grafana / Alertmanager).

The public API is what is listed in `__all__`: the app and the decision for running the
scaler, and the pieces another scaler (exo-lab's naive baseline) and the readers of the
decision log (reports, benchmarks) reuse, so that they differ from this one only in policy.
"""

from .app import create_app
from .auth import Authenticator, AuthMiddleware
from .body import BodyTooLarge, read_limited
from .decision import PoolView, Reason, ScaleDecision, action_label, decide
from .events import EventLog
from .intents import Direction, Intent, IntentBook
from .record import DecisionLogError, DecisionRecord, read_decision_log
from .settings import MAX_BODY_BYTES, ScalerSettings, SettingsError
from .target import ExoPoolTarget, InFlight, Launched, PoolTarget
from .webhooks import ParsedPayload, PayloadError, parse_alert_payload

__version__ = "0.1.0"

__all__ = [
    "MAX_BODY_BYTES",
    "AuthMiddleware",
    "Authenticator",
    "BodyTooLarge",
    "DecisionLogError",
    "DecisionRecord",
    "Direction",
    "EventLog",
    "ExoPoolTarget",
    "InFlight",
    "Intent",
    "IntentBook",
    "Launched",
    "ParsedPayload",
    "PayloadError",
    "PoolTarget",
    "PoolView",
    "Reason",
    "ScaleDecision",
    "ScalerSettings",
    "SettingsError",
    "action_label",
    "create_app",
    "decide",
    "parse_alert_payload",
    "read_decision_log",
    "read_limited",
]
