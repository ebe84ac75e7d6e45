from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from exo_sd.files import remove_stale_temp_files, write_targets_atomically
from exo_sd.targets import TargetGroup

GROUP: TargetGroup = {
    "targets": ["127.0.1.2:9100"],
    "labels": {"instance_id": "i", "instance_name": "n", "pool_id": "p", "zone": "z"},
}


def test_writes_json_and_creates_missing_folders(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "targets.json"
    assert write_targets_atomically(out, [GROUP]) is True
    assert json.loads(out.read_text()) == [GROUP]
    assert out.read_text().endswith("\n")


def test_mode_is_0644_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        out = tmp_path / "targets.json"
        write_targets_atomically(out, [GROUP])
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_unchanged_content_is_not_rewritten(tmp_path: Path) -> None:
    out = tmp_path / "targets.json"
    assert write_targets_atomically(out, [GROUP]) is True
    before = out.stat()
    os.utime(out, ns=(before.st_atime_ns, before.st_mtime_ns - 10_000_000_000))
    pinned = out.stat()
    assert write_targets_atomically(out, [GROUP]) is False
    after = out.stat()
    assert (after.st_ino, after.st_mtime_ns) == (pinned.st_ino, pinned.st_mtime_ns)


def test_changed_content_replaces_the_file_with_a_new_inode(tmp_path: Path) -> None:
    out = tmp_path / "targets.json"
    write_targets_atomically(out, [GROUP])
    inode = out.stat().st_ino
    assert write_targets_atomically(out, []) is True
    assert json.loads(out.read_text()) == []
    assert out.stat().st_ino != inode


def test_a_reader_holding_the_old_file_keeps_reading_it_whole(tmp_path: Path) -> None:
    out = tmp_path / "targets.json"
    write_targets_atomically(out, [GROUP])
    with out.open() as old:
        write_targets_atomically(out, [])
        assert json.loads(old.read()) == [GROUP]


def test_no_temp_file_is_left_behind(tmp_path: Path) -> None:
    out = tmp_path / "targets.json"
    write_targets_atomically(out, [GROUP])
    write_targets_atomically(out, [])
    assert [p.name for p in tmp_path.iterdir()] == ["targets.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "targets.json"
    write_targets_atomically(out, [GROUP])
    before = out.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        write_targets_atomically(out, [])
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["targets.json"]


def test_stale_temp_files_are_removed_and_others_kept(tmp_path: Path) -> None:
    out = tmp_path / "targets.json"
    (tmp_path / ".targets.json.abc123.tmp").write_text("[{")
    (tmp_path / "other.json").write_text("[]")
    assert remove_stale_temp_files(out) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.json"]
    assert remove_stale_temp_files(tmp_path / "missing" / "t.json") == 0
