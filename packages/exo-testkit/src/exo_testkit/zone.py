"""A lab zone served on loopback for a test, with credentials and a ready client."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from exo_client import ClientSettings, ExoClient, RetryPolicy
from exo_zone import (
    LocalZone,
    MemberRuntime,
    Pool,
    Zone,
    ZoneApi,
    ZoneTimings,
    random_member_network,
)

FAST_TIMINGS = ZoneTimings.fast()

#: A loopback /24 unlikely to collide with another zone running on this machine.
free_member_network = random_member_network


@dataclass
class RunningZone:
    local: LocalZone
    settings: ClientSettings
    pools: dict[str, Pool]

    @property
    def zone(self) -> Zone:
        return self.local.zone

    @property
    def api(self) -> ZoneApi:
        return self.local.api

    @property
    def endpoint(self) -> str:
        return self.local.endpoint

    @property
    def env(self) -> dict[str, str]:
        """The environment a CLI needs to talk to this zone."""
        return self.local.env

    def client(self, *, retry: RetryPolicy | None = None) -> ExoClient:
        return ExoClient(self.settings, retry=retry or RetryPolicy(base_delay=0.01, max_delay=0.05))


@contextmanager
def running_zone(
    pools: Mapping[str, int] | None = None,
    *,
    timings: ZoneTimings = FAST_TIMINGS,
    runtime: MemberRuntime | None = None,
    member_network: str | None = None,
    host: str = "127.0.0.1",
) -> Iterator[RunningZone]:
    local = LocalZone(
        timings=timings,
        runtime=runtime,
        member_network=member_network or free_member_network(),
        host=host,
    )
    seeded = {
        name: local.zone.create_pool(name, size)
        for name, size in (pools if pools is not None else {"web": 2}).items()
    }
    with local:
        yield RunningZone(
            local=local,
            settings=ClientSettings(
                api_key=local.key, api_secret=local.secret, endpoint=local.endpoint
            ),
            pools=seeded,
        )
