"""`exo-lab run`: a lab stack up, one measured run through `LabProbe`, the report, all stopped."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..dataplane.lock import LabBusyError
from ..measure import MeasuredRun, RunFailed, RunHooks
from ..report.run_report import RunReport
from .grafana import ProvisioningError
from .lab_probe import LabProbe, OracleScheduleHook, OutageHook, TickPhaseHook
from .lab_stack import LabStack
from .processes import ChildExited
from .settings import LabError, LabSettings


def lab_hooks(probe: LabProbe) -> list[RunHooks]:
    """The hooks a lab run has: the load's phase against the tick, the monitoring outage and
    the reactive limit's schedule, when the settings ask for them."""
    hooks: list[RunHooks] = []
    if probe.s.tick_phase is not None:
        hooks.append(TickPhaseHook(probe.stack))
    if probe.s.monitoring_outage is not None:
        hooks.append(OutageHook(probe.stack))
    if probe.s.scaler == "limit":
        hooks.append(OracleScheduleHook(probe))
    return hooks


def run_lab(settings: LabSettings) -> tuple[RunReport, dict[str, Path]]:
    """Run, report, stop everything. Failures come out as LabError, with nothing left running.

    A run that failed before starting any child (a held lab lock, a port taken) also removes
    the output folder it created; once a child ran, its logs are kept for the message to name.
    """
    created_out = not settings.out.exists()
    stack = LabStack(settings)
    try:
        with stack:
            stack.start()
            probe = LabProbe(stack)
            report = MeasuredRun(probe, lab_hooks(probe)).run()
            paths = report.write(settings.out)
    except BaseException as exc:
        if created_out and stack.children.started == 0:
            shutil.rmtree(settings.out, ignore_errors=True)
        failed = LabBusyError | ChildExited | ProvisioningError | RunFailed | TimeoutError | OSError
        if isinstance(exc, failed):
            raise LabError(str(exc)) from exc
        raise
    return report, paths
