"""A monitoring outage in the middle of a run: the scaler's behaviour with the data gone.

Two kinds, each the lab's stand-in for a real failure on the monitor:

- `exporters`: Prometheus stops scraping the pool members (their node_exporters unreachable, a
  firewall change, exo-sd pointing nowhere). Done by reloading Prometheus (SIGHUP) with the
  member jobs dropped by relabeling: the series go stale, the rules' query returns nothing —
  Grafana's NoData (see grafana.prometheus_rule_file for what each noDataState then emits).
- `prometheus`: Prometheus itself is down (stopped, then started again on the same data).
  On the monitor Grafana's query would fail (execErrState); in the lab Prometheus is also the
  rule evaluator, so nothing evaluates at all: no alert of any kind while it is down.

Times are production seconds after the load starts, divided by the run's speed like the rest.
"""

from __future__ import annotations

import copy
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

OUTAGE_KINDS = ("exporters", "prometheus")
#: the scrape jobs whose targets are the pool members (render.prometheus_config)
MEMBER_JOBS = ("pool", "slow-web")


@dataclass(frozen=True)
class MonitoringOutage:
    start: float  # production seconds after the load starts
    duration: float  # production seconds
    kind: str = "exporters"

    def __post_init__(self) -> None:
        if self.start < 0 or self.duration <= 0:
            raise ValueError("a monitoring outage needs START >= 0 and DURATION > 0")
        if self.kind not in OUTAGE_KINDS:
            raise ValueError(f"outage kind must be one of {', '.join(OUTAGE_KINDS)}")

    @classmethod
    def parse(cls, text: str, kind: str = "exporters") -> MonitoringOutage:
        """`START:DURATION` in production seconds, e.g. `600:300`."""
        start, sep, duration = text.partition(":")
        try:
            if not sep:
                raise ValueError
            return cls(float(start), float(duration), kind)
        except ValueError as exc:
            detail = f" ({exc})" if str(exc) else ""
            raise ValueError(f"{text!r}: expected START:DURATION in seconds{detail}") from None


def without_member_targets(config: dict[str, Any]) -> dict[str, Any]:
    """The Prometheus config with every member job dropping all its targets (relabel `drop`):
    the jobs stay, their targets vanish, their series turn stale."""
    changed = copy.deepcopy(config)
    for job in changed["scrape_configs"]:
        if job["job_name"] in MEMBER_JOBS:
            drop_all = {"source_labels": ["__address__"], "regex": ".*", "action": "drop"}
            job["relabel_configs"] = [*job.get("relabel_configs", []), drop_all]
    return changed


class OutageDriver:
    """Applies the outage when the run's clock reaches it and undoes it after its duration.

    The stack's side is passed in as callables so the run stays the owner of its processes:
    `write_config(config)` writes Prometheus's config file, `prometheus_pid()` finds it,
    `stop_prometheus()` / `start_prometheus()` stop and start the child.
    """

    def __init__(
        self,
        outage: MonitoringOutage,
        speed: float,
        *,
        config: dict[str, Any],
        write_config: Callable[[dict[str, Any]], None],
        prometheus_pid: Callable[[], int | None],
        stop_prometheus: Callable[[], None],
        start_prometheus: Callable[[], None],
        say: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.outage = outage
        self.begin = outage.start / speed
        self.end = (outage.start + outage.duration) / speed
        self.config = config
        self._write_config = write_config
        self._pid = prometheus_pid
        self._stop = stop_prometheus
        self._start = start_prometheus
        self._say = say
        self.active = False
        self.done = False

    def tick(self, t: float) -> None:
        """Call with lab seconds since the load started."""
        if not self.active and not self.done and t >= self.begin:
            self._apply()
        elif self.active and t >= self.end:
            self.restore()

    def _apply(self) -> None:
        self.active = True
        o = self.outage
        self._say(
            f"monitoring outage: {o.kind} down for {o.duration:g} s (production) "
            f"from t={o.start:g} s"
        )
        if o.kind == "exporters":
            self._write_config(without_member_targets(self.config))
            self._reload()
        else:
            self._stop()

    def restore(self) -> None:
        """End the outage (idempotent; also called when the run stops early)."""
        if not self.active:
            return
        self.active, self.done = False, True
        if self.outage.kind == "exporters":
            self._write_config(self.config)
            self._reload()
        else:
            self._start()
        self._say("monitoring outage over: the members are monitored again")

    def _reload(self) -> None:
        # Prometheus re-reads its config on SIGHUP (no --web.enable-lifecycle needed).
        pid = self._pid()
        if pid is None:
            log.warning("monitoring outage: Prometheus is not running, nothing to reload")
            return
        os.kill(pid, signal.SIGHUP)
