"""Webhook-driven scaler for Exoscale instance pools (Grafana / Alertmanager)."""

from .app import create_app
from .decision import Direction, PoolView, Reason, ScaleDecision, decide
from .settings import ScalerSettings, SettingsError

__version__ = "0.1.0"

__all__ = [
    "Direction",
    "PoolView",
    "Reason",
    "ScaleDecision",
    "ScalerSettings",
    "SettingsError",
    "create_app",
    "decide",
]
