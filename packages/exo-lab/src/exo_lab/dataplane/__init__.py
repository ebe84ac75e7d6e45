"""The lab's data plane in one object: member processes, their exporters, and the NLBs.

plane = DataPlane(MemberSettings(lab_prefix_for(network)))
zone = Zone(runtime=plane.runtime, member_network=network)
... seed pools and load balancers ...
plane.attach(zone)          # balancers listen, get-load-balancer reports their health
...
zone.close(); plane.close()
"""

from __future__ import annotations

from types import TracebackType

from exo_zone import Zone

from .loop_thread import LoopThread
from .members import MemberSettings, ProcessRuntime
from .nlb import NetworkLoadBalancers


class DataPlane:
    def __init__(
        self,
        settings: MemberSettings,
        *,
        reconcile_interval: float = 0.1,
        max_connections: int = 1024,
        connect_timeout: float = 2.0,
    ) -> None:
        self.loop = LoopThread()
        try:
            self.runtime = ProcessRuntime(settings, self.loop)
        except BaseException:
            self.loop.close()
            raise
        self._nlb_options = {
            "reconcile_interval": reconcile_interval,
            "max_connections": max_connections,
            "connect_timeout": connect_timeout,
        }
        self.nlb: NetworkLoadBalancers | None = None

    def attach(self, zone: Zone) -> NetworkLoadBalancers:
        """Start a balancer for every NLB service of `zone` (and any added later)."""
        if zone.runtime is not self.runtime:
            raise ValueError("the zone must use this data plane's runtime")
        self.nlb = NetworkLoadBalancers(
            zone,
            self.loop,
            reconcile_interval=float(self._nlb_options["reconcile_interval"]),
            max_connections=int(self._nlb_options["max_connections"]),
            connect_timeout=float(self._nlb_options["connect_timeout"]),
        )
        self.nlb.start()
        return self.nlb

    def close(self) -> None:
        """Stop balancers, every member process and the event loop; remove the cgroups."""
        try:
            if self.nlb is not None:
                self.nlb.close()
            self.runtime.close()
        finally:
            self.loop.close()

    def __enter__(self) -> DataPlane:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
