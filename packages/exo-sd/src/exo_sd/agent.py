"""The refresh loop: one list call, target groups, an atomic write; back off on failure."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from exo_client import AuthError, ExoApiError, ExoClient, NotFoundError, UnavailableError

from .files import remove_stale_temp_files, write_targets_atomically
from .metrics import SdMetrics
from .targets import ADDRESS_KINDS, AddressKind, target_groups

log = logging.getLogger("exo_sd")


@dataclass(frozen=True)
class AgentConfig:
    pool: str
    """The pool's id, or its name (resolved to an id once, at start)."""
    out: Path
    port: int = 9100
    zone: str = "ch-gva-2"
    interval: float = 15.0
    address: AddressKind = "public"
    backoff_base: float = 1.0
    backoff_cap: float = 60.0

    def __post_init__(self) -> None:
        if not self.pool:
            raise ValueError("pool must be an instance pool id or name")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port must be within 1-65535, not {self.port}")
        if self.interval <= 0:
            raise ValueError("interval must be positive")
        if self.address not in ADDRESS_KINDS:
            raise ValueError(f"address must be one of {', '.join(ADDRESS_KINDS)}")
        if not 0 < self.backoff_base <= self.backoff_cap:
            raise ValueError("backoff must satisfy 0 < base <= cap")


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, AuthError):
        return "auth"
    if isinstance(exc, NotFoundError):
        return "not_found"
    if isinstance(exc, UnavailableError):
        return "unavailable"
    if isinstance(exc, ExoApiError):
        return "api"
    if isinstance(exc, OSError):
        return "write"
    return "unexpected"


class Agent:
    """Keeps `config.out` equal to the pool's running members, until `stop` is set.

    Everything it depends on is injected: the client (and so the endpoint), the metrics
    registry, the stop event that ends every wait at once, and the clocks.
    """

    def __init__(
        self,
        client: ExoClient,
        config: AgentConfig,
        *,
        metrics: SdMetrics,
        stop: threading.Event | None = None,
        wall_clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.client = client
        self.config = config
        self.metrics = metrics
        self.stop = stop or threading.Event()
        self._wall_clock = wall_clock
        self._timer = timer
        self.pool_id: str | None = None
        self.consecutive_errors = 0
        metrics.watch_api_calls(client.calls)

    # -- steps ------------------------------------------------------------------------------

    def resolve_pool(self) -> str:
        """The pool id: one get by id (to check it exists), or one list to find the name."""
        pool = self.client.get_pool(self.config.pool)
        self.pool_id = pool.id
        log.info(
            "watching pool %s (%s, %d members) -> %s",
            pool.name,
            pool.id,
            pool.size,
            self.config.out,
        )
        return pool.id

    def refresh(self) -> bool:
        """One refresh; raises on any failure without touching the file. True if rewritten."""
        if self.pool_id is None:
            raise RuntimeError("resolve_pool() must succeed before refresh()")
        started = self._timer()
        members = self.client.list_members(self.pool_id)
        groups = target_groups(
            members,
            pool_id=self.pool_id,
            zone=self.config.zone,
            port=self.config.port,
            address=self.config.address,
        )
        changed = write_targets_atomically(self.config.out, groups)
        self.metrics.duration.observe(self._timer() - started)
        self.metrics.targets.set(len(groups))
        self.metrics.last_success.set(self._wall_clock())
        if changed:
            self.metrics.writes.inc()
            log.info("wrote %d targets to %s", len(groups), self.config.out)
        return changed

    def refresh_safely(self) -> bool:
        """One refresh that records a failure instead of raising. True on success."""
        self.metrics.refreshes.inc()
        try:
            self.refresh()
        except Exception as exc:
            self._record_failure("refresh", exc)
            return False
        if self.consecutive_errors:
            log.info("refresh recovered after %d failed attempts", self.consecutive_errors)
        self.consecutive_errors = 0
        return True

    def backoff_delay(self) -> float:
        """Bounded exponential: base, 2 base, 4 base, ... up to the cap."""
        exponent = max(self.consecutive_errors - 1, 0)
        return min(
            self.config.backoff_cap, self.config.backoff_base * float(2 ** min(exponent, 30))
        )

    # -- loops ------------------------------------------------------------------------------

    def run(self) -> None:
        """Resolve the pool, then refresh every interval until `stop` is set.

        A pool that does not exist or credentials that are refused end the run (raised);
        an API that is unreachable or failing is waited out with backoff.
        """
        removed = remove_stale_temp_files(self.config.out)
        if removed:
            log.info("removed %d temp files left by an interrupted run", removed)
        while not self.stop.is_set():
            try:
                self.resolve_pool()
                break
            except UnavailableError as exc:
                self._record_failure("resolving the pool", exc)
                self.stop.wait(self.backoff_delay())
        self.consecutive_errors = 0
        while not self.stop.is_set():
            ok = self.refresh_safely()
            self.stop.wait(self.config.interval if ok else self.backoff_delay())

    def run_once(self) -> bool:
        """Resolve and refresh once; raises if the pool cannot be resolved."""
        remove_stale_temp_files(self.config.out)
        self.resolve_pool()
        return self.refresh_safely()

    def _record_failure(self, what: str, exc: Exception) -> None:
        kind = error_kind(exc)
        self.metrics.errors.labels(kind).inc()
        self.consecutive_errors += 1
        if kind == "unexpected":
            log.error("%s failed unexpectedly; keeping the last file", what, exc_info=exc)
        else:
            log.warning(
                "%s failed (%s: %s); keeping the last file, retry in %.1fs",
                what,
                kind,
                exc,
                self.backoff_delay(),
            )
