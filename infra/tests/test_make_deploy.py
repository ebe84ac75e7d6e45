"""`make deploy`'s recipe as make expands it (`make -n`): the documented TF_ARGS reach Terraform
intact, a tfvars file is taken, and the keys are proven right after apply."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from infra_support import REPO, Terraform

# docs/operations.md's example, exactly as documented.
DOCUMENTED = '-var admin_cidrs=["203.0.113.7/32"]'


def recipe(*assignments: str, target: str = "deploy") -> list[str]:
    """The recipe's shell commands, continuation lines joined."""
    if shutil.which("make") is None:
        pytest.fail("make is not installed")
    done = subprocess.run(
        ["make", "-n", "-s", target, *assignments],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.replace("\\\n", " ").splitlines()


def terraform_args(lines: list[str], command: str) -> list[str]:
    """What the shell hands Terraform after `<command> -input=false`."""
    (line,) = [x for x in lines if f"terraform -chdir=infra/terraform {command} " in x]
    argv = shlex.split(line)  # the recipe's shell does the same word splitting and quote removal
    return argv[argv.index(command) + 2 :]


def test_the_documented_tf_args_reach_terraform_intact(
    terraform: Terraform, tmp_path: Path
) -> None:
    lines = recipe(f"TF_ARGS={DOCUMENTED}")
    args = terraform_args(lines, "apply")
    assert args == ["-var", 'admin_cidrs=["203.0.113.7/32"]']
    # And Terraform parses them into the variable's type (it said "Invalid number literal").
    (tmp_path / "main.tf").write_text(
        'variable "admin_cidrs" {\n  type = list(string)\n}\n'
        'output "cidrs" {\n  value = var.admin_cidrs\n}\n'
    )
    terraform.check(["init", "-input=false", "-backend=false"], tmp_path)
    terraform.check(["apply", "-auto-approve", "-input=false", *args], tmp_path)
    assert terraform.outputs(tmp_path)["cidrs"] == ["203.0.113.7/32"]
    # A list with a comma, and a quote inside a word, survive too.
    two = '-var admin_cidrs=["198.51.100.0/24","203.0.113.7/32"] -var name_prefix=it\'s'
    assert terraform_args(recipe(f"TF_ARGS={two}"), "apply") == [
        "-var",
        'admin_cidrs=["198.51.100.0/24","203.0.113.7/32"]',
        "-var",
        "name_prefix=it's",
    ]
    # destroy takes the same arguments.
    assert terraform_args(recipe(f"TF_ARGS={DOCUMENTED}", target="destroy"), "destroy") == args


def test_a_tfvars_file_is_taken_by_absolute_path(terraform: Terraform, tmp_path: Path) -> None:
    tfvars = tmp_path / "my.tfvars"
    tfvars.write_text('admin_cidrs = ["198.51.100.0/24", "203.0.113.7/32"]\n')
    lines = recipe(f"TF_VARS_FILE={tfvars}")
    args = terraform_args(lines, "apply")
    assert args == [f"-var-file={tfvars}"]
    # Terraform runs with -chdir: the path must not depend on the working directory.
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "main.tf").write_text(
        'variable "admin_cidrs" {\n  type = list(string)\n}\n'
        'output "cidrs" {\n  value = var.admin_cidrs\n}\n'
    )
    terraform.check(["init", "-input=false", "-backend=false"], work)
    terraform.check(["apply", "-auto-approve", "-input=false", *args], work)
    assert terraform.outputs(work)["cidrs"] == ["198.51.100.0/24", "203.0.113.7/32"]
    # A missing file is said before Terraform runs.
    assert any("test -f" in x and "no such file" in x for x in recipe("TF_VARS_FILE=nope.tfvars"))


def test_deploy_proves_the_keys_right_after_apply() -> None:
    lines = recipe()
    apply = next(i for i, x in enumerate(lines) if "terraform -chdir=infra/terraform apply" in x)
    check = next(i for i, x in enumerate(lines) if "exo-lab check-keys" in x)
    assert check == apply + 1
    # Terraform's outputs (sensitive keys included: `output -json` prints them) on stdin; a
    # pipeline under bash exits with check-keys' status, so a key not proven fails the deploy.
    assert shlex.split(lines[check])[:4] == [
        "terraform",
        "-chdir=infra/terraform",
        "output",
        "-json",
    ]
    assert lines[check].endswith("check-keys --outputs -")
    makefile = (REPO / "Makefile").read_text()
    assert "SHELL := /bin/bash" in makefile
    assert "deploy: wheels venv" in makefile


def test_documented_commands_match_the_makefile() -> None:
    operations = (REPO / "docs" / "operations.md").read_text()
    assert f"make deploy TF_ARGS='{DOCUMENTED}'" in operations
    assert "TF_VARS_FILE=" in operations
    assert "iam_scope_by_id" in operations
