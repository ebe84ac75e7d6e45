"""The provider-free cloud-init module, applied for real and checked with each file's own tool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_support import (
    RUNTIME,
    USER_DATA_LIMIT,
    WHEEL_PACKAGES,
    decode_user_data,
    file_text,
    write_files,
)

MONITOR_SECRET_FILES = {
    "/etc/exo-autoscale/exoscale.env",
    "/etc/exo-autoscale/grafana.env",
    "/etc/exo-autoscale/scaler-token",
}


def test_user_data_is_gzip_base64_of_the_cloud_config(rendered: Any) -> None:
    outputs = rendered.outputs
    assert decode_user_data(outputs["pool_user_data"]) == outputs["pool_cloud_config"]
    assert decode_user_data(outputs["monitor_user_data"]) == outputs["monitor_cloud_config"]
    for text in (outputs["pool_cloud_config"], outputs["monitor_cloud_config"]):
        assert text.startswith("#cloud-config\n")


@pytest.mark.parametrize("role", ["pool", "monitor"])
def test_cloud_config_passes_cloud_init_schema(rendered: Any, role: str, tmp_path: Path) -> None:
    if shutil.which("cloud-init") is None:
        pytest.fail("cloud-init is not installed (make system-packages installs it)")
    config = tmp_path / f"{role}.yaml"
    config.write_text(rendered.outputs[f"{role}_cloud_config"])
    done = subprocess.run(
        ["cloud-init", "schema", "--config-file", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Valid" in done.stdout


def test_real_wheels_against_the_provider_limit(
    rendered: Any, apply_module: Any, wheel_dir: Path
) -> None:
    """Real wheels either fit under 32,768 encoded bytes or the plan stops with the remedy."""
    sizes = rendered.outputs["user_data_bytes"]
    wheels = sorted(p.name for p in wheel_dir.glob("*.whl"))
    print(f"\nuser-data encoded bytes with {wheels}: {sizes}")
    assert len(rendered.outputs["pool_user_data"]) == sizes["pool"]
    assert len(rendered.outputs["monitor_user_data"]) == sizes["monitor"]
    # The plan-time bound really bounds the applied size, and not absurdly loosely.
    assert sizes["monitor"] <= sizes["monitor_bound"]
    assert sizes["monitor_bound"] - sizes["monitor"] < 2048

    run = apply_module(wheel_dir, command="plan")  # the provider's real limit
    fits = sizes["pool"] < USER_DATA_LIMIT and sizes["monitor_bound"] < USER_DATA_LIMIT
    if fits:
        assert run.result.returncode == 0, run.result.output
    else:
        assert run.result.returncode != 0
        assert 'set wheel_source = "index"' in " ".join(run.result.output.split())


def test_embedded_wheels_are_the_built_ones(
    rendered: Any, wheel_dir: Path, monitor_files: dict[str, Any], pool_files: dict[str, Any]
) -> None:
    import base64

    expected = sorted(p.name for dist in WHEEL_PACKAGES for p in wheel_dir.glob(f"{dist}-*.whl"))
    assert rendered.outputs["embedded_wheels"] == expected
    for files, dists in (
        (monitor_files, ["exo_client", "exo_sd", "exo_scaler"]),
        (pool_files, ["slow_web"]),
    ):
        for dist in dists:
            (wheel,) = wheel_dir.glob(f"{dist}-*.whl")
            entry = files[f"/opt/exo-autoscale/wheels/{wheel.name}"]
            assert entry["encoding"] == "b64"
            assert base64.b64decode(entry["content"]) == wheel.read_bytes()
    assert not any("slow_web" in path for path in monitor_files)
    assert not any("exo_sd" in path for path in pool_files)


def test_secrets_only_in_root_only_files(
    monitor_files: dict[str, Any], pool_files: dict[str, Any]
) -> None:
    secrets = [RUNTIME["api_secret"], RUNTIME["scaler_token"], RUNTIME["grafana_admin_password"]]
    for path, entry in monitor_files.items():
        text = entry["content"] if entry.get("encoding") == "b64" else file_text(entry)
        if path in MONITOR_SECRET_FILES:
            assert entry["permissions"] == "0600", path
        else:
            assert not any(secret in text for secret in secrets), f"secret leaked into {path}"
    assert set(monitor_files) >= MONITOR_SECRET_FILES
    env = file_text(monitor_files["/etc/exo-autoscale/exoscale.env"])
    assert f"EXOSCALE_API_SECRET={RUNTIME['api_secret']}\n" in env
    assert f"EXOSCALE_INSTANCEPOOL_ID={RUNTIME['pool_id']}\n" in env
    assert file_text(monitor_files["/etc/exo-autoscale/scaler-token"]) == RUNTIME["scaler_token"]
    grafana_env = file_text(monitor_files["/etc/exo-autoscale/grafana.env"])
    assert f"EXO_SCALER_TOKEN={RUNTIME['scaler_token']}\n" in grafana_env
    assert f"GF_SECURITY_ADMIN_PASSWORD={RUNTIME['grafana_admin_password']}\n" in grafana_env
    for entry in pool_files.values():
        text = entry["content"]
        assert not any(secret in text for secret in [*secrets, RUNTIME["api_key"]])


def test_grafana_provisioning_travels_unchanged(monitor_files: dict[str, Any]) -> None:
    from infra_support import PROVISIONING_DIR

    for relative in [
        "datasources/prometheus.yaml",
        "dashboards/provider.yaml",
        "dashboards/autoscaling.json",
        "alerting/rules.yaml",
        "alerting/contact-points.yaml",
        "alerting/policies.yaml",
    ]:
        entry = monitor_files[f"/etc/grafana/provisioning/{relative}"]
        assert file_text(entry) == (PROVISIONING_DIR / relative).read_text()


def test_setup_scripts_are_valid_shell_and_run_last(
    rendered: Any, monitor_files: dict[str, Any], pool_files: dict[str, Any], tmp_path: Path
) -> None:
    for role, files in (("monitor", monitor_files), ("pool", pool_files)):
        entry = files["/usr/local/sbin/exo-autoscale-setup"]
        assert entry["permissions"] == "0755"
        script = tmp_path / f"{role}-setup.sh"
        script.write_text(file_text(entry))
        done = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        document = yaml.safe_load(rendered.outputs[f"{role}_cloud_config"])
        assert document["runcmd"] == [["/usr/local/sbin/exo-autoscale-setup"]]
    monitor_script = file_text(monitor_files["/usr/local/sbin/exo-autoscale-setup"])
    assert "https://apt.grafana.com" in monitor_script
    assert "enable --now exo-sd.service exo-scaler.service" in monitor_script
    assert (
        "prometheus-node-exporter"
        in yaml.safe_load(rendered.outputs["pool_cloud_config"])["packages"]
    )
    assert "enable --now slow-web.service" in file_text(
        pool_files["/usr/local/sbin/exo-autoscale-setup"]
    )


def _oversize_wheels(wheel_dir: Path, target: Path) -> Path:
    """The real wheels with exo_sd replaced by 30 kB of incompressible bytes."""
    import os

    target.mkdir()
    for wheel in wheel_dir.glob("*.whl"):
        shutil.copy(wheel, target / wheel.name)
    (big,) = target.glob("exo_sd-*.whl")
    big.write_bytes(os.urandom(30_000))
    return target


def test_oversize_user_data_fails_the_plan_clearly(
    apply_module: Any, wheel_dir: Path, tmp_path: Path
) -> None:
    wheels = _oversize_wheels(wheel_dir, tmp_path / "wheels")
    # The real pool id is unknown until apply: the check must still fail at plan time.
    run = apply_module(wheels, command="plan", unknown_pool_id=True)
    assert run.result.returncode != 0
    message = " ".join(run.result.output.split())
    assert "monitor's user-data could reach" in message
    assert "accepts less than 32768" in message
    assert 'wheel_source = "index"' in message


def test_oversize_wheels_are_fine_from_an_index(
    apply_module: Any, wheel_dir: Path, tmp_path: Path
) -> None:
    wheels = _oversize_wheels(wheel_dir, tmp_path / "wheels")
    run = apply_module(
        wheels,
        extra='wheel_source      = "index"\npackage_index_url = "https://pkgs.example.org/simple/"',
    )
    assert run.result.returncode == 0, run.result.output
    assert run.outputs["embedded_wheels"] == []
    for role in ("pool", "monitor"):
        files = write_files(run.outputs[f"{role}_cloud_config"])
        assert not any(path.endswith(".whl") for path in files)
        script = file_text(files["/usr/local/sbin/exo-autoscale-setup"])
        assert "--extra-index-url 'https://pkgs.example.org/simple/'" in script
    sizes = run.outputs["user_data_bytes"]
    assert sizes["monitor_bound"] < 16_000
    assert sizes["pool"] < 4_000


def test_missing_wheel_is_a_clear_error(apply_module: Any, wheel_dir: Path, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for wheel in wheel_dir.glob("*.whl"):
        if not wheel.name.startswith("exo_scaler-"):
            shutil.copy(wheel, wheels / wheel.name)
    run = apply_module(wheels, command="plan")
    assert run.result.returncode != 0
    message = " ".join(run.result.output.split())
    assert "missing or ambiguous: exo_scaler" in message
    assert "make wheels" in message


def test_index_mode_needs_an_index_url(apply_module: Any, wheel_dir: Path) -> None:
    run = apply_module(wheel_dir, command="plan", extra='wheel_source = "index"')
    assert run.result.returncode != 0
    assert "needs package_index_url" in " ".join(run.result.output.split())


def test_weak_grafana_password_is_rejected(apply_module: Any, wheel_dir: Path) -> None:
    run = apply_module(
        wheel_dir, command="plan", runtime={**RUNTIME, "grafana_admin_password": "short"}
    )
    assert run.result.returncode != 0
    assert "grafana_admin_password" in run.result.output
