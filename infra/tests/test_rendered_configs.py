"""Rendered configuration files pass their own tools: promtool and systemd-analyze."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from infra_support import (
    MEMBER_ADMIN_TOKEN,
    PROVISIONING_DIR,
    decode_user_data,
    file_text,
    write_files,
)

UNITS = {
    "monitor": ["exo-sd.service", "exo-scaler.service"],
    "pool": ["slow-web.service"],
}


def test_prometheus_config_passes_promtool(monitor_files: dict[str, Any], tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(file_text(monitor_files["/etc/prometheus/prometheus.yml"]))
    done = subprocess.run(
        ["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_prometheus_scrapes_pool_scaler_and_itself(monitor_files: dict[str, Any]) -> None:
    import yaml

    config = yaml.safe_load(file_text(monitor_files["/etc/prometheus/prometheus.yml"]))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["pool"]["file_sd_configs"][0]["files"] == ["/srv/targets.json"]
    assert jobs["slow-web"]["file_sd_configs"][0]["files"] == ["/srv/targets.json"]
    assert jobs["exo-scaler"]["static_configs"][0]["targets"] == ["127.0.0.1:8090"]
    assert jobs["prometheus"]["static_configs"][0]["targets"] == ["localhost:9090"]


def _stage_units(files: dict[str, Any], names: list[str], root: Path) -> list[Path]:
    """Write the units with their binaries replaced by stub executables under `root`."""
    staged = []
    for name in names:
        text = file_text(files[f"/etc/systemd/system/{name}"])
        for binary in set(re.findall(r"ExecStart=(\S+)", text)):
            stub = root / binary.lstrip("/")
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\nexit 0\n")
            stub.chmod(0o755)
            text = text.replace(f"ExecStart={binary}", f"ExecStart={stub}")
        unit = root / name
        unit.write_text(text)
        staged.append(unit)
    return staged


@pytest.mark.parametrize("role", ["monitor", "pool"])
def test_systemd_units_verify(
    role: str, monitor_files: dict[str, Any], pool_files: dict[str, Any], tmp_path: Path
) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    files = monitor_files if role == "monitor" else pool_files
    units = _stage_units(files, UNITS[role], tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Users exist only on the instance; everything else must be clean.
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip()
        and "Failed to resolve user" not in line
        and "Failed to resolve group" not in line
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("role", "unit"),
    [
        ("monitor", "exo-sd.service"),
        ("monitor", "exo-scaler.service"),
        ("pool", "slow-web.service"),
    ],
)
def test_units_are_unprivileged_and_restart(
    role: str, unit: str, monitor_files: dict[str, Any], pool_files: dict[str, Any]
) -> None:
    files = monitor_files if role == "monitor" else pool_files
    text = file_text(files[f"/etc/systemd/system/{unit}"])
    assert re.search(r"^User=(exo-sd|exo-scaler|slow-web)$", text, re.M)
    assert "Restart=on-failure" in text
    assert "NoNewPrivileges=yes" in text
    assert "WantedBy=multi-user.target" in text


def _scaler_options(text: str) -> tuple[dict[str, str], list[str]]:
    """exo-scaler's ExecStart as {option: value} and the repeated --signal values, in order."""
    exec_start = re.search(r"^ExecStart=(.*)$", text, re.M)
    assert exec_start
    args = exec_start.group(1).split()
    assert args[1] == "serve"
    pairs = list(zip(args[2::2], args[3::2], strict=True))
    signals = [value for option, value in pairs if option == "--signal"]
    options = dict(pair for pair in pairs if pair[0] != "--signal")
    assert len(options) + len(signals) == len(pairs), "an option other than --signal repeats"
    return options, signals


def test_scaler_unit_matches_the_cli_contract(monitor_files: dict[str, Any]) -> None:
    text = file_text(monitor_files["/etc/systemd/system/exo-scaler.service"])
    options, signals = _scaler_options(text)
    assert options["--pool"] == "${EXOSCALE_INSTANCEPOOL_ID}"
    # Who serves while a scale-up warms: the NLB's health checks (the role grants this NLB).
    assert options["--nlb"] == "${EXOSCALE_NLB_ID}"
    assert options["--min"] == "1"
    assert options["--max"] == "4"
    assert options["--interval"] == "60"
    assert options["--port"] == "8090"
    assert options["--token-file"] == "%d/token"
    assert "LoadCredential=token:/etc/exo-autoscale/scaler-token" in text
    # Drain before evicting: the members' admin token as a credential, never as a value.
    assert options["--drain-seconds"] == "20"
    assert options["--drain-url"] == "http://{ip}:8081/admin/drain"
    assert options["--drain-token-file"] == "%d/member-admin-token"
    credential = "LoadCredential=member-admin-token:/etc/exo-autoscale/member-admin-token"
    assert credential in text.splitlines()
    assert MEMBER_ADMIN_TOKEN not in text
    # The demand policy, sized in members of the pool's instance type (standard.micro: 1 vCPU).
    assert options["--policy"] == "demand"
    assert options["--member-cores"] == "1"
    assert "--value-ref" not in options
    # Each signal read from Grafana's `values` by a refId every scaling rule has.
    rules = yaml.safe_load((PROVISIONING_DIR / "alerting" / "rules.yaml").read_text())
    ref_ids = [{q["refId"] for q in r["data"]} for r in rules["groups"][0]["rules"]]
    named = dict(signal.split("=", 1) for signal in signals)
    assert list(named) == ["cpu", "arrivals", "cpu_per_request", "serving", "evaluated_at"]
    assert all(ref in refs for ref in named.values() for refs in ref_ids), named


@pytest.mark.parametrize(
    ("instance_type", "cores"), [("standard.large", "4"), ("standard.tiny", "1")]
)
def test_member_cores_follow_the_pool_instance_type(
    apply_module: Any, wheel_dir: Path, instance_type: str, cores: str
) -> None:
    extra = f'pool_instance_type = "{instance_type}"\nuser_data_limit = 1048576'
    run = apply_module(wheel_dir, extra=extra)
    assert run.result.returncode == 0, run.result.output
    monitor = write_files(decode_user_data(run.outputs["monitor_user_data"]))
    options, _ = _scaler_options(file_text(monitor["/etc/systemd/system/exo-scaler.service"]))
    assert options["--member-cores"] == cores


def test_an_instance_type_without_a_known_vcpu_count_is_refused(
    apply_module: Any, wheel_dir: Path
) -> None:
    run = apply_module(wheel_dir, command="plan", extra='pool_instance_type = "cpu.huge"')
    assert run.result.returncode != 0
    output = " ".join(run.result.output.split())
    assert "pool_instance_type cpu.huge: its vCPU count is unknown" in output
    assert "standard.micro" in output


def _exec_options(text: str) -> dict[str, str]:
    exec_start = re.search(r"^ExecStart=(.*)$", text, re.M)
    assert exec_start
    args = exec_start.group(1).split()
    assert args[1] == "serve"
    return dict(zip(args[2::2], args[3::2], strict=True))


def _directive(text: str, name: str) -> str:
    (value,) = re.findall(rf"^{name}=(.*)$", text, re.M)
    return value


def test_slow_web_unit_serves_the_admin_api_with_a_credential(pool_files: dict[str, Any]) -> None:
    text = file_text(pool_files["/etc/systemd/system/slow-web.service"])
    options = _exec_options(text)
    assert options["--host"] == "0.0.0.0"
    assert options["--port"] == "8080"
    # Reachable from the monitor (the security group limits who); a token file, never a value.
    assert options["--admin-host"] == "0.0.0.0"
    assert options["--admin-port"] == "8081"
    assert options["--admin-token-file"] == "%d/admin-token"
    assert _directive(text, "LoadCredential") == "admin-token:/etc/exo-autoscale/admin-token"
    assert MEMBER_ADMIN_TOKEN not in text
    assert "SLOW_WEB_ADMIN_TOKEN=" not in text


def test_slow_web_stop_and_drain_timeouts_agree_with_the_scaler(
    monitor_files: dict[str, Any], pool_files: dict[str, Any]
) -> None:
    web = file_text(pool_files["/etc/systemd/system/slow-web.service"])
    scaler = _exec_options(file_text(monitor_files["/etc/systemd/system/exo-scaler.service"]))
    drain_timeout = float(_exec_options(web)["--drain-timeout"])
    # In-flight requests may run until the scaler evicts, and no longer.
    assert drain_timeout == float(scaler["--drain-seconds"])
    # SIGTERM goes to the main process only, and systemd waits the whole drain out.
    assert _directive(web, "KillMode") == "mixed"
    assert float(_directive(web, "TimeoutStopSec")) >= drain_timeout + 10


def test_drain_can_be_turned_off(apply_module: Any, wheel_dir: Path) -> None:
    run = apply_module(wheel_dir, extra="scaler_drain_seconds = 0\nuser_data_limit = 1048576")
    assert run.result.returncode == 0, run.result.output
    monitor = write_files(decode_user_data(run.outputs["monitor_user_data"]))
    pool = write_files(decode_user_data(run.outputs["pool_user_data"]))
    scaler = _exec_options(file_text(monitor["/etc/systemd/system/exo-scaler.service"]))
    assert scaler["--drain-seconds"] == "0"
    web = file_text(pool["/etc/systemd/system/slow-web.service"])
    # Without a scaler drain, SIGTERM drains keep slow-web's usual 30 s.
    assert _exec_options(web)["--drain-timeout"] == "30"
    assert float(_directive(web, "TimeoutStopSec")) >= 40


def test_sd_unit_matches_the_cli_contract(monitor_files: dict[str, Any]) -> None:
    text = file_text(monitor_files["/etc/systemd/system/exo-sd.service"])
    exec_start = re.search(r"^ExecStart=(.*)$", text, re.M)
    assert exec_start
    options = dict(
        zip(exec_start.group(1).split()[1::2], exec_start.group(1).split()[2::2], strict=True)
    )
    assert options == {
        "--pool": "${EXOSCALE_INSTANCEPOOL_ID}",
        "--port": "9100",
        "--out": "/srv/targets.json",
        "--interval": "15",
        "--metrics-port": "9101",
    }


@pytest.mark.parametrize("role", ["monitor", "pool"])
def test_metadata_server_is_root_only_after_boot(
    role: str, monitor_files: dict[str, Any], pool_files: dict[str, Any], tmp_path: Path
) -> None:
    """The user-data (secrets) is served to any local process by 169.254.169.254: an nftables
    rule (owner match, meta skuid) lets only root through, loaded before our services start."""
    files = monitor_files if role == "monitor" else pool_files
    rules = file_text(files["/etc/exo-autoscale/metadata-guard.nft"])
    assert re.search(r"ip daddr 169\.254\.169\.254 meta skuid != 0 .*reject", rules)
    unit = file_text(files["/etc/systemd/system/exo-metadata-guard.service"])
    assert "ExecStart=/usr/sbin/nft -f /etc/exo-autoscale/metadata-guard.nft" in unit
    assert "WantedBy=multi-user.target" in unit
    script = file_text(files["/usr/local/sbin/exo-autoscale-setup"])
    guard = script.index("enable --now exo-metadata-guard.service")
    first_service = min(
        script.index(f"enable --now {name}")
        for name in ("exo-sd.service", "slow-web.service")
        if f"enable --now {name}" in script
    )
    # Before anything unprivileged runs, and before pip fetches code from the network.
    assert guard < script.index("/bin/pip ") < first_service
    if shutil.which("systemd-analyze"):
        staged = tmp_path / "exo-metadata-guard.service"
        staged.write_text(unit.replace("/usr/sbin/nft", "/bin/true"))
        done = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", str(staged)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert not (done.stdout + done.stderr).strip(), done.stdout + done.stderr
    # Packages start no service before the guard: policy-rc.d forbids it until right after.
    assert guard < script.index("rm -f /usr/sbin/policy-rc.d") < script.index("/bin/pip ")
    if shutil.which("nft"):
        check = tmp_path / "guard.nft"
        check.write_text(rules)
        done = subprocess.run(["nft", "-c", "-f", str(check)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def _cloud_init_module_order() -> dict[str, list[str]]:
    """The module lists of the installed cloud-init (canonical/cloud-init config/cloud.cfg.tmpl,
    rendered for this distribution), names normalised to underscores."""
    config = yaml.safe_load(Path("/etc/cloud/cloud.cfg").read_text())
    order = {}
    for stage in ("cloud_init_modules", "cloud_config_modules", "cloud_final_modules"):
        names = []
        for entry in config[stage]:
            name = entry if isinstance(entry, str) else entry[0]
            names.append(name.replace("-", "_"))
        order[stage] = names
    return order


@pytest.mark.parametrize("role", ["monitor", "pool"])
def test_packages_cannot_start_services_before_the_guard(
    role: str, rendered: Any, monitor_files: dict[str, Any], pool_files: dict[str, Any],
    tmp_path: Path,
) -> None:  # fmt: skip
    """dpkg would start Prometheus and node_exporter as soon as cloud-init installs them, which
    is before our runcmd script loads the metadata guard; /usr/sbin/policy-rc.d (exit 101,
    "action forbidden") is written first and removed by the script once the guard is loaded."""
    if not Path("/etc/cloud/cloud.cfg").exists():
        pytest.fail("cloud-init is not installed (make system-packages installs it)")
    order = _cloud_init_module_order()
    # write_files runs in the init stage, before any package; packages before our script.
    assert "write_files" in order["cloud_init_modules"]
    final = order["cloud_final_modules"]
    assert final.index("package_update_upgrade_install") < final.index("scripts_user")
    assert "runcmd" in order["cloud_config_modules"]  # runcmd only writes the script there

    files = monitor_files if role == "monitor" else pool_files
    policy = files["/usr/sbin/policy-rc.d"]
    assert policy["permissions"] == "0755"
    staged = tmp_path / "policy-rc.d"
    staged.write_text(file_text(policy))
    staged.chmod(0o755)
    # What invoke-rc.d / deb-systemd-invoke ask before starting a service: 101 = forbidden.
    assert subprocess.run([str(staged), "prometheus.service", "start"]).returncode == 101
    document = yaml.safe_load(rendered.outputs[f"{role}_cloud_config"])
    service_packages = {"monitor": "prometheus", "pool": "prometheus-node-exporter"}[role]
    assert service_packages in document["packages"]
    script = file_text(files["/usr/local/sbin/exo-autoscale-setup"])
    removed = script.index("rm -f /usr/sbin/policy-rc.d")
    assert script.index("enable --now exo-metadata-guard.service") < removed
    started = {"monitor": "restart prometheus.service",
               "pool": "restart prometheus-node-exporter.service"}[role]  # fmt: skip
    assert removed < script.index(started)
