"""`exo-lab run --target`: the lab's load test and report against a deployment, through
`DeploymentProbe` and the one measured-run loop."""

from __future__ import annotations

import json
from pathlib import Path

from ..files import write_atomically
from ..measure import MeasuredRun, RunFailed
from ..report.run_report import RunReport
from .cost import run_cost
from .outputs import Deployment, OutputsError
from .probe import DeploymentProbe, TargetError, TargetSettings


def run_target(
    deployment: Deployment, settings: TargetSettings, admin_key: tuple[str, str]
) -> tuple[RunReport, dict[str, Path]]:
    deployment.require(
        ("app_url", "instance_pool_id", "prometheus_url", "scaler_internal_url"),
        hint={"prometheus_url": "--prometheus-url", "scaler_internal_url": "--scaler-url"},
    )
    probe = DeploymentProbe(deployment, settings, admin_key)
    try:
        probe.prepare()
        report = MeasuredRun(probe).run()
        figures = report.figures()
        # The members as billed (create to delete, from the API), the monitor and NLB for the
        # whole window: what the run cost at Terraform's prices.
        report.config["cost"] = run_cost(
            report.config["cost_estimate_eur_per_hour"],
            instance_seconds=figures["billed_instance_seconds"] or 0.0,
            run_seconds=figures["evaluation_window_s"],
        )
        paths = report.write(settings.out)
        write_atomically(
            settings.out / "decisions.jsonl",
            "".join(json.dumps(d.to_json()) + "\n" for d in report.decisions),
        )
    except RunFailed as exc:
        raise TargetError(str(exc)) from exc
    except (OSError, ValueError) as exc:
        if isinstance(exc, OutputsError):
            raise
        raise TargetError(str(exc)) from exc
    finally:
        probe.close()
    return report, paths
