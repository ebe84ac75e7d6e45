"""The exact pip commands cloud-init runs, against a loopback server shaped like the SOS bucket.

The server answers `/<bucket>/<sha256>/<wheel file>` like https://sos-<zone>.exo.io/<bucket>/<key>
(the object key carries the wheel's sha256, as main.tf uploads it), and
plays the dependency index too (it has nothing: every request to it is recorded). The throwaway
venv sees this test environment's third-party packages through a .pth file (tox.ini installs
them), so step 2 resolves without any download — and must not ask the index for our names.
"""

from __future__ import annotations

import hashlib
import shutil
import site
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from infra_support import WHEEL_PACKAGES, file_text, write_files

BUCKET = "exo-autoscale-wheels-0a1b2c3d"
SCRIPTS = {"monitor": ["exo-sd", "exo-scaler"], "pool": ["slow-web"]}


class _Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        super().do_GET()


@pytest.fixture
def bucket(tmp_path: Path, wheel_dir: Path) -> Any:
    root = tmp_path / "served"
    (root / BUCKET).mkdir(parents=True)
    for wheel in wheel_dir.glob("*.whl"):
        key = root / BUCKET / hashlib.sha256(wheel.read_bytes()).hexdigest() / wheel.name
        key.parent.mkdir()
        shutil.copy(wheel, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    server.requests = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, root / BUCKET
    server.shutdown()


def _commands(apply_module: Any, wheel_dir: Path, port: int, role: str) -> tuple[list[str], str]:
    run = apply_module(
        wheel_dir,
        wheel_base_url=f"http://127.0.0.1:{port}/{BUCKET}",
        extra=f'dependency_index_url = "http://127.0.0.1:{port}/simple/"',
    )
    assert run.result.returncode == 0, run.result.output
    files = write_files(run.outputs[f"{role}_cloud_config"])
    script = file_text(files["/usr/local/sbin/exo-autoscale-setup"])
    commands = [line for line in script.splitlines() if "/bin/pip " in line]
    assert len(commands) == 3, commands  # our wheels, their dependencies, pip check
    return commands, file_text(files["/etc/exo-autoscale/wheels.txt"])


def _venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    (purelib,) = venv.glob("lib/python3*/site-packages")
    # This environment's dependencies (click, starlette, exoscale, ...) stand in for PyPI's.
    (purelib / "test-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return venv


def _run(command: str, venv: Path, wheels_txt: Path) -> subprocess.CompletedProcess[str]:
    command = command.replace("/opt/exo-autoscale/venv", str(venv)).replace(
        "/etc/exo-autoscale/wheels.txt", str(wheels_txt)
    )
    return subprocess.run(
        ["sh", "-c", command], capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.parametrize("role", ["monitor", "pool"])
def test_cloud_init_pip_commands_install_from_the_bucket(
    role: str, bucket: Any, apply_module: Any, wheel_dir: Path, tmp_path: Path
) -> None:
    server, _ = bucket
    commands, wheels_txt = _commands(apply_module, wheel_dir, server.server_port, role)
    requirements = tmp_path / "wheels.txt"
    requirements.write_text(wheels_txt)
    venv = _venv(tmp_path)
    for command in commands:
        done = _run(command, venv, requirements)
        assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"
    for script in SCRIPTS[role]:
        assert (venv / "bin" / script).exists(), script
    # Our wheels came from the bucket only; the index was never asked for our names.
    fetched = {
        path.rsplit("/", 1)[-1] for path in server.requests if path.startswith(f"/{BUCKET}/")
    }
    assert fetched == {
        line.split(" @ ")[1].split()[0].rsplit("/", 1)[-1] for line in wheels_txt.splitlines()
    }
    ours = set(WHEEL_PACKAGES.values()) | set(WHEEL_PACKAGES)
    asked = [path for path in server.requests if path.startswith("/simple/")]
    assert not [path for path in asked if path.strip("/").split("/")[-1] in ours], asked


def test_a_wheel_with_another_hash_is_refused(
    bucket: Any, apply_module: Any, wheel_dir: Path, tmp_path: Path
) -> None:
    server, served = bucket
    commands, wheels_txt = _commands(apply_module, wheel_dir, server.server_port, "monitor")
    # Someone replaced exo-sd in the bucket: same name, other bytes.
    (target,) = served.glob("*/exo_sd-*.whl")
    (other,) = served.glob("*/slow_web-*.whl")
    shutil.copy(other, target)
    requirements = tmp_path / "wheels.txt"
    requirements.write_text(wheels_txt)
    venv = _venv(tmp_path)
    done = _run(commands[0], venv, requirements)
    assert done.returncode != 0
    assert "DO NOT MATCH THE HASHES" in done.stdout + done.stderr
    assert not list(venv.glob("lib/python3*/site-packages/exo_sd*"))
