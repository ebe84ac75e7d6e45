"""The provider-free cloud-init module, applied for real and checked with each file's own tool."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_support import (
    MEMBER_ADMIN_TOKEN,
    RUNTIME,
    USER_DATA_LIMIT,
    WHEEL_PACKAGES,
    decode_user_data,
    file_text,
    write_files,
)

MONITOR_SECRET_FILES = {
    "/etc/exo-autoscale/exo-sd.env",
    "/etc/exo-autoscale/exo-scaler.env",
    "/etc/exo-autoscale/grafana.env",
    "/etc/exo-autoscale/scaler-token",
    "/etc/exo-autoscale/member-admin-token",
}
POOL_SECRET_FILES = {"/etc/exo-autoscale/admin-token"}


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


def test_user_data_sizes_are_far_under_the_limit(
    rendered: Any, apply_module: Any, wheel_dir: Path
) -> None:
    """No wheel travels in the user-data any more: both documents are a few kB, bounded at plan."""
    sizes = rendered.outputs["user_data_bytes"]
    print(f"\nuser-data encoded bytes (limit {USER_DATA_LIMIT}): {sizes}")
    assert len(rendered.outputs["pool_user_data"]) == sizes["pool"]
    assert len(rendered.outputs["monitor_user_data"]) == sizes["monitor"]
    # The plan-time bounds really bound the applied sizes, and not absurdly loosely.
    for role in ("pool", "monitor"):
        assert sizes[role] <= sizes[f"{role}_bound"], role
        assert sizes[f"{role}_bound"] - sizes[role] < 2048, role
    # Far under: 40 % of the limit for the monitor (two services' keys and the demand signals'
    # flags took it past a third, 11.6 kB), a sixth for a pool member.
    assert sizes["monitor_bound"] < USER_DATA_LIMIT * 0.4, sizes
    assert sizes["pool_bound"] < USER_DATA_LIMIT / 6, sizes
    # The provider's real limit, with every value that exists only after apply unknown.
    run = apply_module(
        wheel_dir,
        command="plan",
        unknown_pool_id=True,
        unknown_admin_token=True,
        unknown_wheel_base_url=True,
    )
    assert run.result.returncode == 0, run.result.output


def test_wheels_are_pinned_by_url_and_sha256(
    rendered: Any, wheel_dir: Path, monitor_files: dict[str, Any], pool_files: dict[str, Any]
) -> None:
    import hashlib

    from infra_support import WHEEL_BASE_URL

    wheels = rendered.outputs["wheels"]
    assert set(wheels) == set(WHEEL_PACKAGES)
    for files, dists in (
        (monitor_files, ["exo_client", "exo_sd", "exo_scaler"]),
        (pool_files, ["slow_web"]),
    ):
        assert not any(path.endswith(".whl") for path in files)
        lines = file_text(files["/etc/exo-autoscale/wheels.txt"]).splitlines()
        expected = []
        for dist in dists:
            (wheel,) = wheel_dir.glob(f"{dist}-*.whl")
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            assert wheels[dist]["name"] == wheel.name
            assert wheels[dist]["sha256"] == digest
            project = WHEEL_PACKAGES[dist]
            # The object key carries the sha256: new content is a new object, never an overwrite.
            assert wheels[dist]["key"] == f"{digest}/{wheel.name}"
            expected.append(
                f"{project} @ {WHEEL_BASE_URL}/{digest}/{wheel.name} --hash=sha256:{digest}"
            )
        assert lines == expected
        script = file_text(files["/usr/local/sbin/exo-autoscale-setup"])
        assert "--require-hashes --no-deps --only-binary :all: --no-index -r" in script
        assert "--index-url 'https://pypi.org/simple/'" in script
        assert "extra-index-url" not in script


def test_secrets_only_in_root_only_files(
    monitor_files: dict[str, Any], pool_files: dict[str, Any]
) -> None:
    secrets = [
        RUNTIME["sd_api_secret"],
        RUNTIME["scaler_api_secret"],
        RUNTIME["scaler_token"],
        RUNTIME["grafana_admin_password"],
        MEMBER_ADMIN_TOKEN,
    ]
    for files, secret_files in (
        (monitor_files, MONITOR_SECRET_FILES),
        (pool_files, POOL_SECRET_FILES),
    ):
        assert set(files) >= secret_files
        for path, entry in files.items():
            text = entry["content"] if entry.get("encoding") == "b64" else file_text(entry)
            if path in secret_files:
                assert entry["permissions"] == "0600", path
                assert entry["owner"] == "root:root", path
            else:
                assert not any(secret in text for secret in secrets), f"secret leaked into {path}"
    # A key per service, each in its own env file, and neither file holds the other's.
    sd_env = file_text(monitor_files["/etc/exo-autoscale/exo-sd.env"])
    scaler_env = file_text(monitor_files["/etc/exo-autoscale/exo-scaler.env"])
    assert f"EXOSCALE_API_KEY={RUNTIME['sd_api_key']}\n" in sd_env
    assert f"EXOSCALE_API_SECRET={RUNTIME['sd_api_secret']}\n" in sd_env
    assert f"EXOSCALE_API_KEY={RUNTIME['scaler_api_key']}\n" in scaler_env
    assert f"EXOSCALE_API_SECRET={RUNTIME['scaler_api_secret']}\n" in scaler_env
    assert RUNTIME["scaler_api_secret"] not in sd_env and RUNTIME["scaler_api_key"] not in sd_env
    assert RUNTIME["sd_api_secret"] not in scaler_env and RUNTIME["sd_api_key"] not in scaler_env
    for env in (sd_env, scaler_env):
        assert f"EXOSCALE_INSTANCEPOOL_ID={RUNTIME['pool_id']}\n" in env
    assert f"EXOSCALE_NLB_ID={RUNTIME['nlb_id']}\n" in scaler_env
    # Each unit reads its own file and no other.
    for service, own in (("exo-sd", "exo-sd.env"), ("exo-scaler", "exo-scaler.env")):
        unit = file_text(monitor_files[f"/etc/systemd/system/{service}.service"])
        (line,) = [x for x in unit.splitlines() if x.startswith("EnvironmentFile=")]
        assert line == f"EnvironmentFile=/etc/exo-autoscale/{own}", service
    assert file_text(monitor_files["/etc/exo-autoscale/scaler-token"]) == RUNTIME["scaler_token"]
    grafana_env = file_text(monitor_files["/etc/exo-autoscale/grafana.env"])
    assert f"EXO_SCALER_TOKEN={RUNTIME['scaler_token']}\n" in grafana_env
    assert f"GF_SECURITY_ADMIN_PASSWORD={RUNTIME['grafana_admin_password']}\n" in grafana_env
    # The same admin token on both sides of the drain, and nothing else on the pool.
    assert file_text(monitor_files["/etc/exo-autoscale/member-admin-token"]) == MEMBER_ADMIN_TOKEN
    assert file_text(pool_files["/etc/exo-autoscale/admin-token"]) == MEMBER_ADMIN_TOKEN
    for path, entry in pool_files.items():
        if path not in POOL_SECRET_FILES:
            assert MEMBER_ADMIN_TOKEN not in entry["content"], path
        assert not any(
            secret in entry["content"]
            for secret in [*secrets[:4], RUNTIME["sd_api_key"], RUNTIME["scaler_api_key"]]
        )


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
    # Grafana's major is pinned before apt ever sees its repository.
    pin = file_text(monitor_files["/etc/apt/preferences.d/grafana.pref"])
    assert "Pin: version 11.*" in pin
    assert "enable --now exo-sd.service exo-scaler.service" in monitor_script
    assert (
        "prometheus-node-exporter"
        in yaml.safe_load(rendered.outputs["pool_cloud_config"])["packages"]
    )
    assert "enable --now slow-web.service" in file_text(
        pool_files["/usr/local/sbin/exo-autoscale-setup"]
    )


def test_oversize_user_data_fails_the_plan_clearly(
    apply_module: Any, wheel_dir: Path, tmp_path: Path
) -> None:
    from infra_support import PROVISIONING_DIR

    provisioning = tmp_path / "provisioning"
    shutil.copytree(PROVISIONING_DIR, provisioning)
    dashboard = provisioning / "dashboards/autoscaling.json"
    # 30 kB that gzip cannot shrink, as a huge dashboard would be.
    dashboard.write_text(dashboard.read_text() + base64.b64encode(os.urandom(30_000)).decode())
    run = apply_module(
        wheel_dir,
        command="plan",
        unknown_pool_id=True,
        unknown_wheel_base_url=True,
        provisioning_dir=provisioning,
    )
    assert run.result.returncode != 0
    message = " ".join(run.result.output.split())
    assert "monitor's user-data could reach" in message
    assert "accepts less than 32768" in message


def test_index_mode_pins_exact_versions_and_hashes(apply_module: Any, wheel_dir: Path) -> None:
    run = apply_module(
        wheel_dir,
        wheel_base_url=None,
        extra='wheel_source      = "index"\npackage_index_url = "https://pkgs.example.org/simple/"',
    )
    assert run.result.returncode == 0, run.result.output
    for role, dists in (
        ("pool", ["slow_web"]),
        ("monitor", ["exo_client", "exo_sd", "exo_scaler"]),
    ):
        files = write_files(run.outputs[f"{role}_cloud_config"])
        lines = file_text(files["/etc/exo-autoscale/wheels.txt"]).splitlines()
        for dist, line in zip(dists, lines, strict=True):
            wheel = run.outputs["wheels"][dist]
            assert (
                line
                == f"{WHEEL_PACKAGES[dist]}=={wheel['version']} --hash=sha256:{wheel['sha256']}"
            )
        script = file_text(files["/usr/local/sbin/exo-autoscale-setup"])
        index = "--index-url 'https://pkgs.example.org/simple/'"
        assert f"--require-hashes --no-deps --only-binary :all: {index} -r" in script
        assert "extra-index-url" not in script


def test_missing_wheel_is_a_clear_error(apply_module: Any, wheel_dir: Path, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    for wheel in wheel_dir.glob("*.whl"):
        if wheel.name.startswith("exo_scaler-"):
            # Another version than the checked-out one counts as missing.
            shutil.copy(wheel, wheels / "exo_scaler-0.0.1-py3-none-any.whl")
        else:
            shutil.copy(wheel, wheels / wheel.name)
    run = apply_module(wheels, command="plan")
    assert run.result.returncode != 0
    message = " ".join(run.result.output.split())
    assert (
        "lacks the wheels of the checked-out packages: exo_scaler-0.1.0-py3-none-any.whl" in message
    )
    assert "make wheels" in message


def test_bucket_mode_needs_a_url(apply_module: Any, wheel_dir: Path) -> None:
    run = apply_module(wheel_dir, command="plan", wheel_base_url=None)
    assert run.result.returncode != 0
    assert "needs wheel_base_url" in " ".join(run.result.output.split())


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


def test_weak_member_admin_token_is_rejected(apply_module: Any, wheel_dir: Path) -> None:
    run = apply_module(wheel_dir, command="plan", member_admin_token="short")
    assert run.result.returncode != 0
    assert "member_admin_token" in run.result.output


@pytest.mark.parametrize("seconds", ["5", "20.5", "301", "-1"])
def test_bad_drain_seconds_are_rejected(apply_module: Any, wheel_dir: Path, seconds: str) -> None:
    run = apply_module(wheel_dir, command="plan", extra=f"scaler_drain_seconds = {seconds}")
    assert run.result.returncode != 0
    assert "scaler_drain_seconds must be 0" in " ".join(run.result.output.split())
