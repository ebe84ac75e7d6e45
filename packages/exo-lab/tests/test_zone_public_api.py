"""exo-lab and exo-testkit use exo-zone through its public API: no private submodule, no lock."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGES = Path(__file__).resolve().parents[2]
CALLERS = [PACKAGES / "exo-lab" / "src", PACKAGES / "exo-testkit" / "src"]


def sources() -> list[Path]:
    return sorted(p for root in CALLERS for p in root.rglob("*.py"))


def test_the_callers_are_found() -> None:
    assert len(sources()) > 20


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(PACKAGES)))
def test_only_the_public_exo_zone_api(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    reaching = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("exo_zone."):
            reaching.append(f"line {node.lineno}: from {node.module} import ...")
        elif isinstance(node, ast.Import):
            reaching += [
                f"line {node.lineno}: import {a.name}"
                for a in node.names
                if a.name.startswith("exo_zone.")
            ]
        elif (
            isinstance(node, ast.Attribute)
            and node.attr == "lock"
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "zone"
        ):
            reaching.append(f"line {node.lineno}: takes the zone's lock")
    assert reaching == []


DATA_PLANE = sorted(
    [
        *(PACKAGES / "exo-lab" / "src" / "exo_lab" / "dataplane").rglob("*.py"),
        *(PACKAGES / "exo-zone" / "src").rglob("*.py"),
    ]
)


@pytest.mark.parametrize("path", DATA_PLANE, ids=lambda p: str(p.relative_to(PACKAGES)))
def test_the_data_plane_does_not_import_click(path: Path) -> None:
    """It raises its own errors; the CLI layer turns them into the CLI convention."""
    tree = ast.parse(path.read_text(), filename=str(path))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}  # fmt: skip
    imported |= {
        (n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
    }
    assert "click" not in imported
