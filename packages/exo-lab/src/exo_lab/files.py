"""Atomic file writes for what the lab leaves on disk: reports, configs, secrets, pidfiles."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Write `text` to `path` so readers see the old file or the new one, never a part.

    The temp file is created 0600 in the same folder, filled, fsynced, given `mode` and moved
    into place: a secret is never readable by others, not even for an instant.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class AppendedLines:
    """The complete lines appended to a growing file since the last call: a log followed
    without reading it all again each time (a long run's progress line would otherwise
    re-read and re-parse every line written so far, every few seconds)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def read(self) -> list[str]:
        """New complete lines (a line still being written waits for its newline); [] while
        the file does not exist. A file that shrank (replaced) is read from its start."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                if handle.tell() < self._offset:
                    self._offset = 0
                handle.seek(self._offset)
                chunk = handle.read()
        except FileNotFoundError:
            return []
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        return chunk[:end].decode(errors="replace").splitlines()
