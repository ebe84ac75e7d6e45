"""One live lab per member network: an flock on `<runtime_dir>/<lab prefix>.lock`.

The file holds the owner's pid for the message another lab prints. Its owner removes it on
release (while still holding the lock), so a stopped lab leaves nothing behind; a lab that
locked a file which was removed meanwhile sees a different inode at the path and tries again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO


class LabBusyError(RuntimeError):
    """Another live lab holds this prefix (member network)."""


class LabLock:
    def __init__(self, runtime_dir: Path, lab_prefix: str) -> None:
        self.path = runtime_dir / f"{lab_prefix}.lock"
        self._prefix = lab_prefix
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(10):  # only a release racing us makes a retry necessary
            handle = self.path.open("a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "?"
                handle.close()
                raise LabBusyError(
                    f"another exo-lab (pid {holder}) runs members under {self._prefix}; "
                    "stop it or choose another member network"
                ) from None
            if self._same_file(handle):
                handle.seek(0)
                handle.truncate()
                handle.write(str(os.getpid()))
                handle.flush()
                self._handle = handle
                return
            handle.close()
        raise LabBusyError(f"could not lock {self.path}: it keeps being replaced")

    def release(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()

    def _same_file(self, handle: IO[str]) -> bool:
        try:
            return os.fstat(handle.fileno()).st_ino == os.stat(self.path).st_ino
        except FileNotFoundError:
            return False
