"""The CLI's boundary: even a bug ends in one line naming exo-sd, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from exo_sd import cli as exo_sd_cli


def test_a_bug_is_one_line_not_a_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(exo_sd_cli, "Agent", broken)
    out = tmp_path / "targets.json"
    args = [
        "--pool",
        "00000000-0000-4000-8000-000000000000",
        "--out",
        str(out),
        "--api-key",
        "EXOkey",
        "--api-secret",
        "s",
    ]
    result = CliRunner().invoke(exo_sd_cli.main, [*args, "--endpoint", "http://127.0.0.1:9/v2"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "exo-sd: error: unexpected RuntimeError: boom; this is a bug, please report it"
    ]
    assert isinstance(result.exception, SystemExit)
    assert not out.exists()
