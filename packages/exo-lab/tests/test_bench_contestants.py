"""The benchmark's contestants start as the settings say (pure command lines)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exo_lab.stack import render
from exo_lab.stack.grafana import load_rules
from exo_lab.stack.settings import SCALERS, LabError, LabSettings, ProductionTimings
from exo_zone.catalog import INSTANCE_TYPES

PROVISIONING = Path(__file__).resolve().parents[3] / "grafana-provisioning"


def _command(tmp_path: Path, scaler: str, speed: float = 20.0) -> list[str]:
    settings = LabSettings(out=tmp_path, scaler=scaler, speed=speed)
    return render.exo_scaler_command(
        "exo-scaler", settings, render.StackFiles(tmp_path), "p", "n", 1
    )


def _flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_the_contestants_are_known_and_others_refused(tmp_path: Path) -> None:
    assert set(SCALERS) == {"naive", "seed", "exo-scaler", "limit"}
    with pytest.raises(LabError, match="scaler must be one of"):
        LabSettings(out=tmp_path, scaler="hpa")


def test_seed_is_exo_scaler_with_the_step_policy(tmp_path: Path) -> None:
    assert _flag(_command(tmp_path, "seed"), "--policy") == "step"


def test_exo_scaler_runs_the_demand_policy_in_member_cores(tmp_path: Path) -> None:
    """As Terraform's unit: --policy demand, one member's CPUs (the lab's cap: a quarter core
    per vCPU of standard.tiny), every signal at the rules' refId of the same name."""
    argv = _command(tmp_path, "exo-scaler")
    assert _flag(argv, "--policy") == "demand"
    cores = LabSettings(out=tmp_path).member_cores
    assert cores == 0.25
    assert float(_flag(argv, "--member-cores") or "nan") == cores
    signals = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--signal"]
    assert signals == [f"{name}={name}" for name in render.SIGNALS]
    rules = load_rules(PROVISIONING)
    for rule in rules:  # each REFID is a refId of every rule: the condition's input or a value
        refs = {rule.ref_id} | {v.ref_id for v in rule.value_queries}
        # (the shedding rule's condition reads `shed`, which is no signal: CPU rides along)
        extra = {"shed"} if rule.labels.get("trigger") == "shedding" else set()
        assert refs == set(render.SIGNALS) | extra
    assert "--member-cores" not in _command(tmp_path, "seed")


def test_terraform_counts_the_vcpus_the_lab_zone_sells(tmp_path: Path) -> None:
    """Terraform's --member-cores map and the lab zone's catalog agree where both know a type."""
    main = (PROVISIONING.parent / "infra/terraform/modules/cloud-init/main.tf").read_text()
    block = re.search(r"standard_vcpus = \{(.*?)\}", main, re.S)
    assert block
    terraform = {k: int(v) for k, v in re.findall(r'"(standard\.[\w-]+)"\s*=\s*(\d+)', block[1])}
    for itype in INSTANCE_TYPES:
        assert terraform[f"standard.{itype.size}"] == itype.cpus


def test_warm_up_timers_are_divided_by_the_speed(tmp_path: Path) -> None:
    timings = ProductionTimings()
    argv = _command(tmp_path, "exo-scaler", speed=20.0)
    assert float(_flag(argv, "--warm-up")) == timings.warm_up / 20
    assert float(_flag(argv, "--warm-up-limit")) == timings.warm_up_limit / 20
    assert float(_flag(argv, "--unhealthy-after")) == timings.unhealthy_after / 20
    assert float(_flag(_command(tmp_path, "seed", speed=1.0), "--warm-up")) == timings.warm_up


def test_the_reactive_limit_ticks_as_exo_scaler_and_reads_the_oracles_schedule(
    tmp_path: Path,
) -> None:
    settings = LabSettings(out=tmp_path, scaler="limit", speed=20.0, min_size=1, max_size=4)
    files = render.StackFiles(tmp_path)
    argv = render.limit_scaler_command(settings, files, "p", 1)
    assert argv[1:3] == ["-m", "exo_lab.bench.limit"]
    assert float(_flag(argv, "--interval")) == ProductionTimings().tick / 20
    assert _flag(argv, "--schedule") == str(files.oracle_schedule)
    assert (_flag(argv, "--min"), _flag(argv, "--max")) == ("1", "4")
