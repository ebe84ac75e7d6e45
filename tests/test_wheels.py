"""Every package builds into its own wheel, with its own version and no path requirements."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["exo-client", "exo-zone", "exo-sd", "exo-scaler", "slow-web", "exo-lab"]
INTERNAL = {name.replace("-", "_") for name in SHIPPED} | set(SHIPPED)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    built = {}
    for name in SHIPPED:
        subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(ROOT / "packages" / name)],
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
