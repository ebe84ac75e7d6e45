"""One measured run for every system under test: the loop (`loop.py`) and its probe seam
(`probe.py`)."""

from .loop import MeasuredRun, RunFailed, RunHooks
from .probe import Probe, RunClock, SettlePlan, query_scalar

__all__ = [
    "MeasuredRun",
    "Probe",
    "RunClock",
    "RunFailed",
    "RunHooks",
    "SettlePlan",
    "query_scalar",
]
