"""The whole autoscaling loop in the lab, sped up: capacity follows a load step and comes back.

Real Prometheus and Alertmanager, real member processes under CPU caps behind the NLB,
exo-sd and exo-scaler as child processes, open-loop load. On the realistic timing model
(two-stage members, the default). About a minute and a half at speed 20.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from exo_lab.load.generator import RequestResult
from exo_lab.measure import MeasuredRun
from exo_lab.report.quality import oracle_demand
from exo_lab.stack.lab_probe import LabProbe
from exo_lab.stack.lab_stack import LabStack
from exo_lab.stack.settings import LabSettings
from exo_testkit import free_member_network

pytestmark = pytest.mark.e2e

PROVISIONING = Path(__file__).resolve().parents[3] / "grafana-provisioning"


def test_capacity_follows_a_load_step(tmp_path: Path) -> None:
    settings = LabSettings(
        out=tmp_path / "run",
        speed=20,
        profile="step",
        # The peak (half the run) must outlast the pool's growth on the realistic model (VM
        # boot, guest boot, apt, pip, slow-web's start paid back to its ×1 length, a health
        # check: ~2½ minutes a member, a warm-up, a tick). When the peak ends just as a warm-up
        # does, the next tick still reads the rate window's stale ~100 % and scales up as the
        # load is gone, then back down: a reversal (seen with a 400 s peak before the real
        # start was paid back, and with a 700 s one after). 900 s lets the pool reach its
        # largest size while the load is still there.
        duration=1800,
        min_size=1,
        max_size=5,
        peak_members=3.5,
        member_network=free_member_network(),
        provisioning=PROVISIONING,
        progress=print,
    )
    with LabStack(settings) as lab:
        lab.start()
        report = MeasuredRun(LabProbe(lab)).run()
        paths = report.write(settings.out)
        assert lab.zone is not None
        operations = [
            op
            for op in lab.zone.operation_snapshots()
            if op.command in ("scale-instance-pool", "evict-instance-pool-members")
        ]

    figures = report.figures()
    peak_demand = oracle_demand(
        settings.peak_members * settings.member_rps_at_line, settings.work_ms, settings.member_cores
    )
    sizes = [s.pool_size for s in report.samples]
    # Grows to the oracle's size ±1 and never past max.
    assert peak_demand - 1 <= max(sizes) <= settings.max_size
    assert max(sizes) <= peak_demand + 1
    # Shrinks back to min once the load is gone.
    assert sizes[-1] == settings.min_size
    # One scaling operation per decision, one decision per tick — but for the 2-first step's
    # follow-up, which waits for that step's operation to end: the pool converged, its new
    # member `running` after its VM boot.
    scaled = report.actions()
    assert len(operations) == len(scaled) == figures["scaling_actions"]
    # Each decision names the operation it started: the scaler's record and the zone agree.
    assert {d.operation_id for d in scaled} == {op.id for op in operations}
    tick = settings.lab(settings.timings.tick)
    boot = settings.lab(settings.timings.boot_delay)
    for a, b in itertools.pairwise(scaled):
        if b.follow_up:
            assert (a.from_size, a.to_size, b.from_size) == (1, 2, 2)
            assert b.wall_time - a.wall_time >= boot
        else:
            assert b.wall_time - a.wall_time >= tick * 0.5
    # No reversal at steady load: all ups come before all downs.
    directions = [d.action for d in scaled]
    assert directions == sorted(directions, key=lambda a: a != "up")
    assert figures["reversals"] == 0
    assert figures["scale_ups"] >= peak_demand - 2

    # The report agrees with the raw series it was computed from.
    body = json.loads(paths["json"].read_text())
    assert body["figures"]["max_pool_size"] == max(sizes)
    raw = [
        RequestResult(**json.loads(line))
        for line in (settings.out / "load-results.jsonl").read_text().splitlines()
    ]
    assert body["figures"]["requests"] == len(raw)
    assert body["figures"]["failed_requests"] == sum(not r.ok for r in raw)
    assert len(body["samples"]) == len(report.samples)
    assert paths["png"].stat().st_size > 10_000
    # Capacity arrives, if late: with two-stage members (VM boot, guest boot, packages,
    # Python; lifecycle.py) a member serves about 2½ minutes after its decision (slow-web's
    # real start is paid back from the modelled stages, as far as they allow at ×20). The
    # scaler waits for each step's warm-up, so the oracle's 4th member may serve only late in
    # the peak: a finding (README, timing model), not something to wait out here. What must
    # hold is that the pool does serve more.
    assert max(s.supply for s in report.samples) >= peak_demand - 1
    # Capacity helped: once the pool reached the oracle's size, most requests succeeded
    # (often vacuous at ×20 under the realistic model, see above; `make demo` at ×10 with a
    # 1200 s run has the 4th member serving during the peak).
    late_peak = [
        r
        for r in raw
        if any(s.t <= r.scheduled < s.t + 1 and s.supply >= peak_demand for s in report.samples)
        and r.scheduled < settings.load_profile().duration * 5 / 8
    ]
    if late_peak:
        assert sum(r.ok for r in late_peak) / len(late_peak) >= 0.9
