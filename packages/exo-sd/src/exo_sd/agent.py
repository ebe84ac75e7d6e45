"""The refresh loop: one list call, target groups, an atomic write; back off on failure."""

from __future__ import annotations

import logging
import re
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

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class AgentConfig:
    pool: str
    """The pool's id. Never looked up: exo-sd's role may only list the pool's members
    (`list-instances`), not read the pool (`get-instance-pool` answers with its user-data,
    which holds secrets) nor list the pools to find a name."""
    out: Path
    port: int = 9100
    zone: str = "ch-gva-2"
    interval: float = 15.0
    address: AddressKind = "public"
    backoff_base: float = 1.0
    backoff_cap: float = 60.0

    def __post_init__(self) -> None:
        if not _UUID.match(self.pool):
            raise ValueError(
                f"--pool must be the instance pool's id (a UUID; `terraform output "
                f"instance_pool_id`), not {self.pool!r}: exo-sd only lists the pool's members "
                "and its key may not look pools up"
            )
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
        self.pool_id = config.pool
        self.consecutive_errors = 0
        #: whether the last successful listing was empty (said once per change)
        self._listed_empty = False
        metrics.watch_api_calls(client.calls)

    # -- steps ------------------------------------------------------------------------------

    def refresh(self) -> bool:
        """One refresh; raises on any failure without touching the file. True if rewritten."""
        started = self._timer()
        members = self.client.list_members(self.pool_id)
        if not members and not self._listed_empty:
            # A pool id that does not exist lists nothing too; exo-sd cannot tell the two
            # apart without reading the pool, which its role does not allow.
            log.warning(
                "pool %s lists no member: right for a pool scaled to 0, otherwise check the id",
                self.pool_id,
            )
        self._listed_empty = not members
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
        """Refresh every interval until `stop` is set.

        Credentials that are refused on the first refresh end the run (raised): nothing will
        change that but an operator. After a first success every failure is waited out with
        backoff, keeping the last good file.
        """
        self._remove_stale()
        log.info("watching pool %s -> %s", self.pool_id, self.config.out)
        first = True
        while not self.stop.is_set():
            if first:
                ok = self._first_refresh()
                first = False
            else:
                ok = self.refresh_safely()
            self.stop.wait(self.config.interval if ok else self.backoff_delay())

    def run_once(self) -> bool:
        """One refresh; raises if the credentials are refused."""
        self._remove_stale()
        return self._first_refresh()

    def _first_refresh(self) -> bool:
        """`refresh_safely`, except that refused credentials are raised, not retried."""
        self.metrics.refreshes.inc()
        try:
            self.refresh()
        except AuthError as exc:
            self.metrics.errors.labels(error_kind(exc)).inc()
            raise
        except Exception as exc:
            self._record_failure("refresh", exc)
            return False
        return True

    def _remove_stale(self) -> None:
        removed = remove_stale_temp_files(self.config.out)
        if removed:
            log.info("removed %d temp files left by an interrupted run", removed)

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
