"""A lab that stands in for a deployment: `exo-lab up` as its own process, `verify` and
`check-keys` (what `make deploy` runs after apply) on its outputs (all pass, then exo-sd frozen
and named), the target load test checked against the zone's own records, and `exo-lab down`
leaving nothing. About a minute at speed 20.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from exo_lab.dataplane.members import lab_prefix_for
from exo_lab.deployment.access import SignedApi
from exo_testkit import free_member_network

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[3]


def exo_lab(
    *args: str | Path, env: dict[str, str], timeout: float, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "exo_lab", *map(str, args)],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_up_verify_break_load_test_down(tmp_path: Path) -> None:
    network = free_member_network()
    state = tmp_path / "up"
    runtime = tmp_path / "runtime"
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    up = exo_lab("up", "--state-dir", state, "--speed", "20", "--max", "3",
                 "--member-network", network, env=env, timeout=150)  # fmt: skip
    outputs: dict[str, dict[str, object]] = {}
    try:
        assert up.returncode == 0, up.stderr
        outputs_file = state / "outputs.json"
        assert stat.S_IMODE(outputs_file.stat().st_mode) == 0o600
        outputs = json.loads(outputs_file.read_text())
        # terraform output -json's shape; every secret masked on the terminal.
        expected = {
            "app_url",
            "instance_pool_id",
            "nlb_id",
            "prometheus_url",
            "scaler_internal_url",
            "scaler_token",
            "exo_sd_api_key",
            "exo_sd_api_secret",
            "exo_scaler_api_key",
            "exo_scaler_api_secret",
            "iam_scope_by_id",
            "cost_estimate_eur_per_hour",
        }
        assert expected <= set(outputs)
        for name, entry in outputs.items():
            assert set(entry) == {"sensitive", "type", "value"}, name
            if entry["sensitive"]:
                assert str(entry["value"]) not in up.stdout, name
                assert f"{name} = <sensitive>" in up.stdout
        lab = outputs["lab"]["value"]
        assert isinstance(lab, dict)

        verified = exo_lab("verify", "--outputs", outputs_file, env=env, timeout=60)
        print(verified.stdout)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        lines = verified.stdout.splitlines()
        assert sum(line.startswith("PASS") for line in lines) >= 7
        assert sum("[lab stand-in:" in line for line in lines) == 3
        # The lab zone enforces Terraform's roles, one per service: the key checks run for real.
        for service in ("exo-sd", "exo-scaler"):
            assert any(line.startswith(f"PASS  {service}'s key") for line in lines), service
        # Two keys, two roles: exo-sd's is not exo-scaler's.
        assert outputs["exo_sd_api_key"]["value"] != outputs["exo_scaler_api_key"]["value"]
        for name in ("exo_sd_api_key", "exo_scaler_api_key"):
            assert outputs[name]["sensitive"] is True

        # make deploy's post-apply step, on the lab's outputs.
        proven = exo_lab("check-keys", "--outputs", outputs_file, "--settle", "0", env=env,
                         timeout=60)  # fmt: skip
        print(proven.stdout)
        assert proven.returncode == 0, proven.stdout + proven.stderr
        assert proven.stdout.splitlines()[-1].startswith("keys proven: 10/10")

        # Break one thing: freeze exo-sd. Prometheus's scrape of it times out; verify names it.
        exo_sd = int(lab["children"]["exo-sd"])
        os.killpg(exo_sd, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 20
            while True:
                broken = exo_lab("verify", "--outputs", "-", env=env, timeout=60,
                                 stdin=outputs_file.read_text())  # fmt: skip
                failed = [line for line in broken.stdout.splitlines() if line.startswith("FAIL")]
                if broken.returncode == 1 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            print(broken.stdout)
            assert broken.returncode == 1
            assert len(failed) == 1 and "exo-sd" in failed[0], failed
        finally:
            os.killpg(exo_sd, signal.SIGCONT)

        # The target load test, on the lab's outputs from stdin.
        out = tmp_path / "target-run"
        loaded = exo_lab("run", "--target", "-", "--duration", "300", "--settle", "600",
                         "--out", out, env=env, timeout=150,
                         stdin=outputs_file.read_text())  # fmt: skip
        print(loaded.stdout, loaded.stderr)
        assert loaded.returncode == 0, loaded.stderr
        for name in ("report.json", "report.md", "timeline.png"):
            assert (out / name).stat().st_size > 0
        report = json.loads((out / "report.json").read_text())
        assert report["config"]["speed"] == 20
        assert report["figures"]["requests"] > 0
        assert report["config"]["cost"]["total_eur"] > 0

        # Against the zone's own records: every scaling decision names an operation the zone
        # ran on this pool, and the sizes the report saw are the zone's.
        pool_id = str(outputs["instance_pool_id"]["value"])
        api = SignedApi(str(outputs["api_endpoint"]["value"]),
                        str(outputs["exo_scaler_api_key"]["value"]),
                        str(outputs["exo_scaler_api_secret"]["value"]))  # fmt: skip
        scaled = [d for d in report["decisions"] if d["reason"] == "scaled"]
        assert scaled, "a 3.5 members' worth step should scale the pool up"
        for decision in scaled:
            operation = api.get_operation(decision["operation_id"])
            assert operation.ok, operation.describe()
            assert operation.body["reference"]["id"] == pool_id
            assert operation.body["reference"]["command"] in (
                "scale-instance-pool", "evict-instance-pool-members")  # fmt: skip
        sizes = [s["pool_size"] for s in report["samples"]]
        for decision in scaled:
            assert decision["to"] in sizes, decision
        assert max(sizes) == report["figures"]["max_pool_size"] <= 3
        pool = api.get_instance_pool(pool_id)
        assert pool.ok
        # The run watched the pool back to its minimum, so the zone agrees with its last sample.
        assert pool.body["size"] == sizes[-1] == 1
    finally:
        down = exo_lab("down", "--state-dir", state, env=env, timeout=150)
    assert down.returncode == 0, down.stderr
    assert "lab stopped" in down.stdout

    # Nothing left behind: the lab process and its children, the cgroups, the lab lock.
    if outputs:
        lab = outputs["lab"]["value"]
        assert isinstance(lab, dict)
        for pid in (lab["pid"], *lab["children"].values()):
            assert not psutil.pid_exists(int(pid)) or (
                psutil.Process(int(pid)).status() == psutil.STATUS_ZOMBIE
            )
    prefix = lab_prefix_for(network)
    assert not (Path("/sys/fs/cgroup/cpu") / prefix).exists()
    assert not list(runtime.rglob("*.lock"))
    assert not (state / "outputs.json").exists()
    assert not (state / "up.pid").exists()
