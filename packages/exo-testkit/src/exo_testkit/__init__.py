"""Shared test helpers for the exo-autoscale packages (not shipped)"""

__version__ = "0.1.0"
