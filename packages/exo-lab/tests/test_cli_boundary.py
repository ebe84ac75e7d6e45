"""exo-lab's CLI boundary: a bug in any command still ends in one line naming it, exit 1."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from exo_lab.cli import load as load_command
from exo_lab.cli import main


def test_a_bug_is_one_line_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(load_command, "run_load", broken)
    result = CliRunner().invoke(
        main, ["load", "--target", "http://127.0.0.1:9/", "--duration", "1"], prog_name="exo-lab"
    )
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "exo-lab load: error: unexpected RuntimeError: boom; this is a bug, please report it "
        "with the command line"
    ]
    assert isinstance(result.exception, SystemExit)


def test_bad_usage_is_clicks_usage_error() -> None:
    result = CliRunner().invoke(main, ["load", "--target", "ftp://x/"], prog_name="exo-lab")
    assert result.exit_code == 2
    assert result.stderr.startswith("Usage: exo-lab load ")
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: Invalid value for --target: must be an http(s) URL"
    )
