"""The systemd unit shown in the README must be one systemd accepts."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is needed (make bootstrap installs systemd)"
    match = re.search(r"```ini\n# \S+/slow-web\.service\n(.*?)```", README.read_text(), re.S)
    assert match is not None, "README has no slow-web.service example"
    unit = match[1]
    assert "KillSignal=SIGTERM" in unit
    # The wheel's install path does not exist here; any executable keeps verify meaningful.
    unit_file = tmp_path / "slow-web.service"
    unit_file.write_text(
        unit.replace("/opt/slow-web/bin/slow-web", shutil.which("true") or "/bin/true")
    )
    result = subprocess.run(
        [analyze, "verify", str(unit_file)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "slow-web.service" not in result.stderr, result.stderr
