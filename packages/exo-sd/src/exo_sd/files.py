"""Writing the file_sd file so that a reader only ever sees a complete old or new version."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .targets import TargetGroup

FILE_MODE = 0o644


def render(groups: Sequence[TargetGroup]) -> bytes:
    return (json.dumps(list(groups), indent=2) + "\n").encode()


def _temp_prefix(path: Path) -> str:
    # A dot-name ending in .tmp: never matched by a file_sd glob such as *.json.
    return f".{path.name}."


def write_targets_atomically(path: str | os.PathLike[str], groups: Sequence[TargetGroup]) -> bool:
    """Write `groups` to `path` unless it already holds exactly that; return True if written.

    Temp file in the same folder (same filesystem, so the rename is atomic), fsync of the
    data, `os.replace`, then fsync of the folder so the rename itself survives a power cut.
    """
    target = Path(path)
    content = render(groups)
    try:
        if target.read_bytes() == content:
            return False
    except FileNotFoundError:
        pass
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=_temp_prefix(target), suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as temp:
            temp.write(content)
            temp.flush()
            os.fchmod(temp.fileno(), FILE_MODE)
            os.fsync(temp.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    _fsync_folder(folder)
    return True


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temp_files(path: str | os.PathLike[str]) -> int:
    """Remove temp files a killed earlier run left beside `path`; return how many."""
    target = Path(path)
    if not target.parent.is_dir():
        return 0
    removed = 0
    for leftover in target.parent.glob(glob.escape(_temp_prefix(target)) + "*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
            removed += 1
    return removed
