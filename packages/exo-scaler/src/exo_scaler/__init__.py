"""Webhook-driven scaler for Exoscale instance pools (Grafana / Alertmanager)"""

__version__ = "0.1.0"
