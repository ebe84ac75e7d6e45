"""Graceful drain: refuse new work, let admitted work finish, then ask the process to exit."""

from __future__ import annotations

import asyncio
import logging
import time

from slow_web.workpool import WorkPool

logger = logging.getLogger("slow_web.drain")

_POLL_SECONDS = 0.02


class DrainController:
    """Shared by the main app (which refuses work while draining) and the admin app."""

    def __init__(self, pool: WorkPool, timeout_seconds: float) -> None:
        self._pool = pool
        self._timeout_seconds = timeout_seconds
        self.draining = False
        self.exit_after_drain = False
        self.drained = False
        self.exit_requested = asyncio.Event()
        self._waiter: asyncio.Task[None] | None = None

    def begin(self, *, exit_after: bool, reason: str) -> None:
        """Start draining (idempotent). Asking for an exit is sticky: it cannot be withdrawn."""
        self.exit_after_drain = self.exit_after_drain or exit_after
        if not self.draining:
            self.draining = True
            self.drained = False
            logger.info(
                "drain started reason=%s in_flight=%d exit_after_drain=%s",
                reason,
                self._pool.admitted,
                str(self.exit_after_drain).lower(),
            )
        if self._waiter is None or self._waiter.done():
            self._waiter = asyncio.get_running_loop().create_task(self._wait_for_in_flight())

    def resume(self) -> bool:
        """Leave a drain that was started without exit; False when an exit is already promised."""
        if self.exit_after_drain:
            return False
        if self.draining:
            logger.info("drain cancelled, serving again")
        self.draining = False
        self.drained = False
        self._pool.stop_abandoning()
        if self._waiter is not None:
            self._waiter.cancel()
            self._waiter = None
        return True

    async def _wait_for_in_flight(self) -> None:
        deadline = time.monotonic() + self._timeout_seconds
        while self._pool.admitted > 0 and time.monotonic() < deadline:
            await asyncio.sleep(_POLL_SECONDS)
        self.drained = True
        if self._pool.admitted > 0:
            logger.warning(
                "drain timeout after %.1fs, abandoning in_flight=%d",
                self._timeout_seconds,
                self._pool.admitted,
            )
            # Abandoned requests get a 503 now rather than a reset connection at exit.
            self._pool.abandon()
        else:
            logger.info("drain complete, no request in flight")
        if self.exit_after_drain:
            self.exit_requested.set()
