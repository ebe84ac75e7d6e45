"""Judged runs kept beside the docs: each sweep or fidelity run's settings and figures.

A judged sweep is ~40 lab runs an hour on 2 cores, and the whole sweep is more than one sitting
holds. `--keep DIR` writes each run's report.json without its time series (samples, decisions,
members: ~3 KB instead of ~70 KB) into DIR/runs/<run>/report.json, with the commit and machine
it ran on, and reuses a run already kept there when it was made with the same settings
(`reusable_figures`). So a sweep split over sittings, or machines, prints as one run, and the
tables in docs/benchmarks.md are recomputed from the runs they came from
(tests/test_bench_kept.py).

Reuse compares settings, not code: a kept run stays valid across commits that leave the
contestants' behaviour alone. After a change that moves a contestant, keep into a new folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..files import write_atomically

#: what a kept report holds of the lab's report.json (with `commit` and `machine` beside)
KEPT_KEYS = ("config", "figures")


def kept_report(
    report: Mapping[str, Any], *, commit: str | None, machine: Mapping[str, Any]
) -> dict[str, Any]:
    """The part of one run's report that is kept; ValueError when it lacks one."""
    missing = [key for key in KEPT_KEYS if not isinstance(report.get(key), dict)]
    if missing:
        raise ValueError(f"the report has no {' or '.join(missing)}")
    kept = {key: report[key] for key in KEPT_KEYS}
    return {**kept, "commit": commit, "machine": dict(machine)}


def keep_run(report: Path, into: Path, *, commit: str | None, machine: Mapping[str, Any]) -> None:
    """Write `report`'s kept part to `into` atomically: an interrupted sitting leaves the
    earlier kept run or the new one, never half of one. OSError or ValueError when the report
    cannot be read."""
    body = json.loads(report.read_text())
    if not isinstance(body, dict):
        raise ValueError(f"{report} is not a report")
    text = json.dumps(kept_report(body, commit=commit, machine=machine), indent=1, sort_keys=True)
    into.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(into, text + "\n")
