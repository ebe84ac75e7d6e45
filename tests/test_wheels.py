"""Every package builds into its own wheel, with its own version and no path requirements, and
the same tree always gives the same bytes: the build backend is pinned exactly and `make wheels`
fixes SOURCE_DATE_EPOCH, so a new poetry-core release or another clock never changes a sha256
(cloud-init pins each wheel by it, and the SOS object key carries it)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALL_PACKAGES = sorted(p.parent.name for p in (ROOT / "packages").glob("*/pyproject.toml"))
# poetry-core's own zip timestamp (2016-01-01), which `make wheels` pins: a SOURCE_DATE_EPOCH
# left in someone's environment would otherwise change every wheel's sha256.
SOURCE_DATE_EPOCH = "1451606400"
# What a checkout does not have: build output and caches.
NOT_IN_A_CLEAN_TREE = shutil.ignore_patterns(
    "__pycache__", "*.pyc", "build", "dist", "*.egg-info", ".pytest_cache", ".mypy_cache"
)
SHIPPED = ["exo-client", "exo-zone", "exo-sd", "exo-scaler", "slow-web", "exo-lab"]
INTERNAL = {name.replace("-", "_") for name in SHIPPED} | set(SHIPPED)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    built = {}
    for name in SHIPPED:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "build",
                "--wheel",
                "--outdir",
                str(out),
                str(ROOT / "packages" / name),
            ],
            check=True,
            capture_output=True,
        )
        (wheel,) = out.glob(f"{name.replace('-', '_')}-*.whl")
        built[name] = wheel
    return built


def metadata(wheel: Path) -> dict[str, list[str]]:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(archive.read(name).decode())
    return {
        "Version": message.get_all("Version") or [],
        "Requires-Dist": message.get_all("Requires-Dist") or [],
    }


@pytest.mark.parametrize("name", SHIPPED)
def test_wheel_has_its_own_version(wheels: dict[str, Path], name: str) -> None:
    project = tomllib.loads((ROOT / "packages" / name / "pyproject.toml").read_text())["project"]
    assert metadata(wheels[name])["Version"] == [project["version"]]


@pytest.mark.parametrize("name", SHIPPED)
def test_no_path_or_url_requirement(wheels: dict[str, Path], name: str) -> None:
    for requirement in metadata(wheels[name])["Requires-Dist"]:
        assert "@" not in requirement, requirement
        assert "file:" not in requirement and "../" not in requirement, requirement


@pytest.mark.parametrize("name", SHIPPED)
def test_internal_dependencies_are_version_ranges(wheels: dict[str, Path], name: str) -> None:
    for requirement in metadata(wheels[name])["Requires-Dist"]:
        dist = requirement.split(";")[0].split("(")[0].split(">")[0].split("<")[0].split("=")[0]
        if dist.strip() in INTERNAL:
            assert ">=" in requirement and "<" in requirement, requirement


@pytest.mark.parametrize("name", SHIPPED)
def test_wheel_carries_its_module_and_type_marker(wheels: dict[str, Path], name: str) -> None:
    module = name.replace("-", "_")
    with zipfile.ZipFile(wheels[name]) as archive:
        names = set(archive.namelist())
    assert f"{module}/__init__.py" in names
    assert f"{module}/py.typed" in names
    assert not any(n.startswith("tests/") for n in names)


@pytest.mark.parametrize("name", ALL_PACKAGES)
def test_build_backend_is_pinned_exactly(name: str) -> None:
    system = tomllib.loads((ROOT / "packages" / name / "pyproject.toml").read_text())
    build = system["build-system"]
    assert build["build-backend"] == "poetry.core.masonry.api"
    (requirement,) = build["requires"]
    assert re.fullmatch(r"poetry-core==\d+\.\d+\.\d+", requirement), requirement


def test_every_package_pins_the_same_backend() -> None:
    pins = {
        tomllib.loads((ROOT / "packages" / n / "pyproject.toml").read_text())["build-system"][
            "requires"
        ][0]
        for n in ALL_PACKAGES
    }
    assert len(pins) == 1, pins


def test_make_wheels_fixes_the_zip_timestamps() -> None:
    recipe = subprocess.run(
        ["make", "-n", "wheels"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    builds = [line for line in recipe.splitlines() if "-m build" in line]
    assert builds and all(f"SOURCE_DATE_EPOCH={SOURCE_DATE_EPOCH}" in b for b in builds), builds


def _clean_copy(name: str, into: Path, *, disturb: bool) -> Path:
    """The package as a fresh checkout has it; `disturb`: other mtimes and modes, as another
    machine's checkout (another umask, another clock) would."""
    tree = into / name
    shutil.copytree(ROOT / "packages" / name, tree, ignore=NOT_IN_A_CLEAN_TREE)
    if disturb:
        for path in tree.rglob("*"):
            if path.is_file():
                path.chmod(0o600)
                os.utime(path, (1_900_000_000, 1_900_000_000))
    return tree


def _build(tree: Path, out: Path, epoch: str | None) -> Path:
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = epoch
    # Isolated: the build installs exactly the pinned backend into a fresh environment.
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(tree)],
        check=True, capture_output=True, env=env, timeout=600,
    )  # fmt: skip
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.mark.parametrize("name", SHIPPED)
def test_the_same_tree_gives_the_same_wheel(name: str, tmp_path: Path) -> None:
    digests = set()
    for i, (disturb, epoch) in enumerate(((False, SOURCE_DATE_EPOCH), (True, SOURCE_DATE_EPOCH),
                                          (False, None))):  # fmt: skip
        tree = _clean_copy(name, tmp_path / f"tree{i}", disturb=disturb)
        wheel = _build(tree, tmp_path / f"dist{i}", epoch)
        digests.add(hashlib.sha256(wheel.read_bytes()).hexdigest())
    # Twice from a clean tree (the second with other modes and mtimes, as another checkout has
    # them), once more without the pinned epoch (poetry-core's default instant): one sha256.
    assert len(digests) == 1, digests
