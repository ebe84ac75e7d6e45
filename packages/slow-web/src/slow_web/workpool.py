"""Bounded admission in front of a process pool that does the CPU work."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import multiprocessing
import time
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures.process import BrokenProcessPool
from typing import NamedTuple, TypeVar

from slow_web.burn import BurnResult, burn_cpu, init_worker, mark_started

logger = logging.getLogger("slow_web.workpool")

T = TypeVar("T")

# How long stop() waits for the burns it terminated to be failed by the executor.
_SETTLE_SECONDS = 5.0


class Overloaded(Exception):
    """Every worker is busy and the waiting queue is full."""


class WorkerFailed(Exception):
    """A worker process died while doing the work."""


class Abandoned(Exception):
    """The drain timed out before this request's work was done."""


class WorkOutcome(NamedTuple):
    queue_wait_seconds: float
    burn: BurnResult


class WorkPool:
    """At most `workers` burns run at once, at most `queue_limit` wait; the rest are refused.

    Our own semaphore does the queueing, not the executor's internal queue, so the queue
    depth is exact and a refused request costs nothing.
    """

    def __init__(self, workers: int, queue_limit: int, worker_nice: int = 0) -> None:
        self.workers = workers
        self.queue_limit = queue_limit
        self._worker_nice = worker_nice
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None
        self._abandon: asyncio.Event | None = None
        self._burns: set[asyncio.Future[BurnResult]] = set()
        self.admitted = 0
        self.running = 0

    @property
    def waiting(self) -> int:
        return self.admitted - self.running

    async def start(self) -> None:
        self._slots = asyncio.Semaphore(self.workers)
        self._abandon = asyncio.Event()
        self._executor = self._new_executor()
        # Fork every worker now, while the process is still single-threaded and idle,
        # so the first request does not pay for process start-up.
        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._executor, mark_started) for _ in range(self.workers))
        )

    def _new_executor(self) -> concurrent.futures.ProcessPoolExecutor:
        # fork: a worker costs a few ms and shares memory copy-on-write, which matters when
        # exo-lab runs dozens of members on one machine. init_worker undoes what fork
        # inherits from the event loop (signal handlers).
        return concurrent.futures.ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("fork"),
            initializer=init_worker,
            initargs=(self._worker_nice,),
        )

    @contextlib.asynccontextmanager
    async def admission(self) -> AsyncIterator[None]:
        """Admit one request or raise Overloaded at once; counts it as in flight until exit."""
        if self.admitted >= self.workers + self.queue_limit:
            raise Overloaded(f"all {self.workers} workers busy and {self.waiting} requests queued")
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    async def burn(self, cpu_seconds: float) -> WorkOutcome:
        """Run one burn on a worker; call inside `admission()`."""
        if self._slots is None or self._executor is None or self._abandon is None:
            raise RuntimeError("work pool is not started")
        if self._abandon.is_set():
            raise Abandoned("the instance stopped waiting for work")
        submitted = time.monotonic()
        await self._until_abandoned(self._slots.acquire())
        self.running += 1
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor, burn_cpu, cpu_seconds)
        except BaseException:
            self._release()
            raise
        # The slot is released when the worker is done, not when the caller stops waiting:
        # a cancelled or abandoned request must not let another burn start on a busy CPU.
        self._burns.add(future)
        future.add_done_callback(self._on_burn_done)
        try:
            result = await self._until_abandoned(asyncio.shield(future))
        except BrokenProcessPool as error:
            self._replace_broken_executor()
            raise WorkerFailed("a worker process died during the request") from error
        return WorkOutcome(queue_wait_seconds=result.started_monotonic - submitted, burn=result)

    async def _until_abandoned(self, awaitable: Awaitable[T]) -> T:
        """Await `awaitable` unless the pool is told to abandon its requests first."""
        assert self._abandon is not None
        work = asyncio.ensure_future(awaitable)
        abandon = asyncio.ensure_future(self._abandon.wait())
        try:
            await asyncio.wait({work, abandon}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            abandon.cancel()
            if not work.done():
                # A cancelled Semaphore.acquire() hands its slot on; a cancelled shield()
                # leaves the burn running, and its done callback frees the slot.
                work.cancel()
        if not work.done() or work.cancelled():
            raise Abandoned("the instance stopped waiting for work")
        return work.result()

    def abandon(self) -> None:
        """Make every admitted request give up now (their burns still finish in the workers)."""
        if self._abandon is not None:
            self._abandon.set()

    def stop_abandoning(self) -> None:
        if self._abandon is not None:
            self._abandon.clear()

    def _on_burn_done(self, future: asyncio.Future[BurnResult]) -> None:
        self._burns.discard(future)
        self._release()
        # Mark the outcome as seen: an abandoned burn's error must not be logged as lost.
        if not future.cancelled():
            future.exception()

    def _release(self) -> None:
        self.running -= 1
        if self._slots is not None:
            self._slots.release()

    def _replace_broken_executor(self) -> None:
        broken = self._executor
        if broken is None or not getattr(broken, "_broken", False):
            return
        logger.error("worker process died; starting a new process pool")
        broken.shutdown(wait=False, cancel_futures=True)
        self._executor = self._new_executor()

    async def stop(self) -> None:
        """Stop the workers now; any burn still running is abandoned."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        # ProcessPoolExecutor.shutdown() waits for running work (up to a minute for /load);
        # the drain has already waited as long as it may, so busy workers are terminated.
        processes = list(getattr(executor, "_processes", {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        await asyncio.to_thread(_join_all, processes)
        # The executor's own thread fails the terminated burns a moment later; a burn that
        # fails after the event loop has stopped is logged as a lost error, so wait for them.
        if self._burns:
            await asyncio.wait(set(self._burns), timeout=_SETTLE_SECONDS)
        for unsettled in list(self._burns):
            unsettled.cancel()


def _join_all(processes: list[multiprocessing.process.BaseProcess]) -> None:
    for process in processes:
        process.join(timeout=5)
