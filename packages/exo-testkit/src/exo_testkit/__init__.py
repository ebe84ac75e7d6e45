"""Shared test helpers for the exo-autoscale packages (not shipped)."""

from .cassettes import cassette_vcr, credentials_in
from .waiting import eventually
from .zone import FAST_TIMINGS, RunningZone, free_member_network, running_zone

__version__ = "0.1.0"
__all__ = [
    "FAST_TIMINGS",
    "RunningZone",
    "cassette_vcr",
    "credentials_in",
    "eventually",
    "free_member_network",
    "running_zone",
]
