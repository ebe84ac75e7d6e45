"""A lab zone served on loopback for a test, with credentials and a ready client."""

from __future__ import annotations

import random
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from exo_client import ClientSettings, ExoClient, RetryPolicy
from exo_lab.runtime import MemberRuntime
from exo_lab.serving import serve_in_thread
from exo_lab.zone import Pool, Zone, ZoneTimings
from exo_lab.zone_api import ZoneApi, create_zone_app

FAST_TIMINGS = ZoneTimings(boot_delay=0.3, operation_delay=0.3, tick_interval=0.02)


def free_member_network() -> str:
    """A loopback /24 unlikely to collide with another zone running on this machine."""
    return f"127.{random.randint(100, 199)}.{random.randint(0, 255)}.0/24"  # noqa: S311


@dataclass
class RunningZone:
    zone: Zone
    api: ZoneApi
    endpoint: str
    settings: ClientSettings
    pools: dict[str, Pool]

    @property
    def env(self) -> dict[str, str]:
        """The environment a CLI needs to talk to this zone."""
        return {
            "EXOSCALE_API_KEY": self.settings.api_key,
            "EXOSCALE_API_SECRET": self.settings.api_secret,
            "EXOSCALE_API_ENDPOINT": self.endpoint,
            "EXOSCALE_ZONE": self.zone.name,
        }

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
    key = "EXO" + secrets.token_hex(12)
    secret = secrets.token_urlsafe(30)
    zone = Zone(
        "ch-gva-2",
        timings=timings,
        runtime=runtime,
        member_network=member_network or free_member_network(),
    )
    seeded = {}
    for name, size in (pools if pools is not None else {"web": 2}).items():
        seeded[name] = zone.create_pool(name, size)
    app = create_zone_app(zone, {key: secret})
    with serve_in_thread(app, host) as url:
        endpoint = url + "/v2"
        yield RunningZone(
            zone=zone,
            api=app.state.api,
            endpoint=endpoint,
            settings=ClientSettings(api_key=key, api_secret=secret, endpoint=endpoint),
            pools=seeded,
        )
