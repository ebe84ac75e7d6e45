"""How long the zone takes: VM boot, API-side operation work, `instances` lagging `size`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ZoneTimings:
    """Seconds; the lab's --speed divides them all.

    A pool operation ends when the pool has converged (every member `running`, every leaving
    member gone), never before `operation_delay`: on Exoscale the pool stays `scaling-up` until
    its members run (cluster-autoscaler's Exoscale provider polls get-instance-pool until
    `state == "running"` after every scale and evict: kubernetes/autoscaler,
    cluster-autoscaler/cloudprovider/exoscale/exoscale_node_group_instance_pool.go,
    waitUntilRunning), so the operation lasts about one member boot, not a fixed 5 s.

    - `boot_delay`: a member from `starting` to `running` (its VM boots).
    - `operation_delay`: the least time an operation stays `pending` (API-side work).
    - `create_delay`: a scale-up's new members appear in the pool's `instances` (and in
      list-instances) this long after the pool's `size` changed: `instances` lags `size`.
    - `converge_timeout`: an operation whose pool has not converged by then ends `timeout`
      (the pool stays busy until it does converge). 600 s is the budget issue 13's audit
      reports for cluster-autoscaler's wait for `running` (its pollCmd; the exact constant was
      not re-read here), the longest wait a known client gives a pool.
    """

    boot_delay: float = 30.0
    operation_delay: float = 5.0
    tick_interval: float = 0.1
    create_delay: float = 0.0
    converge_timeout: float = 600.0

    @classmethod
    def instant(cls) -> ZoneTimings:
        """Everything as soon as the next tick: for unit tests that test logic, not time."""
        return cls(boot_delay=0.0, operation_delay=0.0, tick_interval=0.01, converge_timeout=60.0)

    @classmethod
    def fast(cls) -> ZoneTimings:
        """Sub-second but still asynchronous (pending, scaling-up and starting are visible)."""
        return cls(boot_delay=0.3, operation_delay=0.3, tick_interval=0.02, converge_timeout=60.0)

    @classmethod
    def realistic(cls) -> ZoneTimings:
        """Speed-1 timing: a VM boots in about 30 s, the API accepts in about 5 s, new members
        appear a few seconds after the size changed."""
        return cls(create_delay=3.0)

    def scaled(self, speed: float) -> ZoneTimings:
        return ZoneTimings(
            boot_delay=self.boot_delay / speed,
            operation_delay=self.operation_delay / speed,
            tick_interval=min(self.tick_interval, max(0.02, self.tick_interval / speed)),
            create_delay=self.create_delay / speed,
            converge_timeout=self.converge_timeout / speed,
        )
