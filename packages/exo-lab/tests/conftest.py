"""Fixtures for the data-plane tests: a lab zone whose members are real slow-web processes."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import requests
from exoscale_auth import ExoscaleV2Auth

from exo_lab.dataplane import DataPlane
from exo_lab.dataplane.members import MemberSettings, lab_prefix_for
from exo_lab.dataplane.nlb import NetworkLoadBalancers
from exo_testkit import RunningZone, eventually, free_member_network, running_zone
from exo_zone import HealthCheck, ZoneTimings

T = TypeVar("T")

#: fast, but with a real boot delay and health window, so the tests see both
LAB_TIMINGS = ZoneTimings(boot_delay=0.5, operation_delay=0.3, tick_interval=0.05)
LAB_HEALTH = HealthCheck(interval=0.5, timeout=0.5, retries=2)


@dataclass
class ProcessLab:
    rz: RunningZone
    plane: DataPlane
    nlb: NetworkLoadBalancers

    @property
    def nlb_url(self) -> str:
        return "http://" + next(iter(self.nlb.addresses().values())) + "/"

    def pool_id(self, name: str = "web") -> str:
        return self.rz.pools[name].id

    def running(self, name: str = "web") -> list[Any]:
        members = self.rz.zone.members(self.pool_id(name))
        return [m for m in members if m.state == "running"]

    def in_rotation(self) -> set[str]:
        balancer = next(iter(self.nlb.balancers.values()))
        return {t.address for t in balancer.in_rotation()}

    def wait_serving(self, size: int, timeout: float = 40.0) -> list[Any]:
        def ready() -> list[Any] | None:
            members = self.running()
            addresses = {m.address for m in members}
            if len(members) == size and self.in_rotation() == addresses:
                return members
            return None

        return eventually(ready, timeout, f"{size} members running and in rotation")

    def lab_put(self, path: str) -> requests.Response:
        auth = ExoscaleV2Auth(self.rz.settings.api_key, self.rz.settings.api_secret)
        return requests.put(f"{self.rz.endpoint}{path}", json={}, auth=auth, timeout=10)

    def lab_get(self, path: str) -> Any:
        auth = ExoscaleV2Auth(self.rz.settings.api_key, self.rz.settings.api_secret)
        response = requests.get(f"{self.rz.endpoint}{path}", auth=auth, timeout=10)
        response.raise_for_status()
        return response.json()


def served_by(url: str, count: int, ms: int = 1, timeout: float = 10.0) -> list[str]:
    """Instance names that answered `count` requests, each on a new connection."""
    names = []
    for _ in range(count):
        with httpx.Client(timeout=timeout) as client:
            response = client.get(url, params={"ms": ms})
        response.raise_for_status()
        names.append(response.json()["instance"])
    return names


@pytest.fixture
def start_lab(tmp_path: Path) -> Iterator[Callable[..., ProcessLab]]:
    """Factory: start_lab(pools={"web": 2}, **member_settings) -> ProcessLab."""
    with contextlib.ExitStack() as stack:

        def start(
            pools: Mapping[str, int] | None = None,
            healthcheck: HealthCheck = LAB_HEALTH,
            **member_options: Any,
        ) -> ProcessLab:
            network = free_member_network()
            options: dict[str, Any] = {"work_ms": 50, "stop_timeout": 5.0}
            options.update(member_options)
            settings = MemberSettings(
                lab_prefix=lab_prefix_for(network), runtime_dir=tmp_path / "run", **options
            )
            plane = stack.enter_context(DataPlane(settings))
            rz = stack.enter_context(
                running_zone(
                    pools or {"web": 2},
                    timings=LAB_TIMINGS,
                    runtime=plane.runtime,
                    member_network=network,
                )
            )
            for name, pool in rz.pools.items():
                rz.zone.create_load_balancer(
                    f"{name}-nlb", pool.id, port=0, healthcheck=healthcheck
                )
            nlb = plane.attach(rz.zone)
            return ProcessLab(rz=rz, plane=plane, nlb=nlb)

        yield start
