"""One bootstrap for a local zone: the zone, a key pair, the signed API served on loopback.

Every caller that needs a zone (exo-lab's CLI and stack, exo-testkit, the benchmarks) starts
it here, so credentials, endpoint and shutdown are made one way.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from starlette.applications import Starlette

from .api import ZoneApi, create_zone_app
from .iam import Policy
from .runtime import MemberRuntime
from .serving import serve_in_thread
from .timings import ZoneTimings
from .zone import Zone


def random_member_network() -> str:
    """A loopback /24 for a zone's members, unlikely to collide with another zone running on
    this machine (a test run beside a benchmark, parallel tests): 127.100-199.x.0/24."""
    return f"127.{random.randint(100, 199)}.{random.randint(0, 255)}.0/24"  # noqa: S311


def new_credentials() -> tuple[str, str]:
    """A key pair shaped like Exoscale's (`EXO` + 24 hex digits) and a random secret."""
    return "EXO" + secrets.token_hex(12), secrets.token_urlsafe(30)


@dataclass
class LocalZone:
    """A zone with its API on loopback: `with LocalZone(...) as lz:` serves it in a thread.

    `app` is also usable on its own (the CLI serves it in the foreground).
    """

    name: str = "ch-gva-2"
    timings: ZoneTimings = field(default_factory=ZoneTimings)
    runtime: MemberRuntime | None = None
    member_network: str = "127.0.1.0/24"
    host: str = "127.0.0.1"
    port: int = 0
    credentials: tuple[str, str] = field(default_factory=new_credentials)
    #: False: role rules do not see path/query parameters (`parameters.id`), as on an Exoscale
    #: that binds only the documented body parameters (see iam.py)
    iam_binds_url_parameters: bool = True

    def __post_init__(self) -> None:
        self.zone = Zone(
            self.name,
            timings=self.timings,
            runtime=self.runtime,
            member_network=self.member_network,
        )
        key, secret = self.credentials
        self.app: Starlette = create_zone_app(self.zone, {key: secret})
        self.api: ZoneApi = self.app.state.api
        self.api.iam_binds_url_parameters = self.iam_binds_url_parameters
        self.endpoint = ""
        self._server: object | None = None

    def add_key(self, policy: Policy | Mapping[str, Any] | None = None) -> tuple[str, str]:
        """A new API key pair, with a role whose policy is `policy` (the API's policy JSON or
        Terraform's `exoscale_iam_role` policy block as a dict; see iam.load_policy to read
        one from a file). Without a policy the key has full access, like the zone's own key."""
        key, secret = new_credentials()
        self.api.credentials[key] = secret
        self.set_policy(key, policy)
        return key, secret

    def set_policy(self, key: str, policy: Policy | Mapping[str, Any] | None) -> None:
        """Give an existing key a role policy (None: full access again). Takes effect at once."""
        if key not in self.api.credentials:
            raise KeyError(key)
        if policy is None:
            self.api.roles.pop(key, None)
            return
        self.api.roles[key] = policy if isinstance(policy, Policy) else Policy.from_dict(policy)

    def env_for(self, key: str) -> dict[str, str]:
        """`env`, for another key of this zone (e.g. one with a role)."""
        return {
            **self.env,
            "EXOSCALE_API_KEY": key,
            "EXOSCALE_API_SECRET": self.api.credentials[key],
        }

    @property
    def key(self) -> str:
        return self.credentials[0]

    @property
    def secret(self) -> str:
        return self.credentials[1]

    @property
    def env(self) -> dict[str, str]:
        """The environment a CLI (exo-sd, exo-scaler) needs to talk to this zone."""
        return {
            "EXOSCALE_API_KEY": self.key,
            "EXOSCALE_API_SECRET": self.secret,
            "EXOSCALE_API_ENDPOINT": self.endpoint,
            "EXOSCALE_ZONE": self.name,
        }

    def start(self) -> str:
        """Serve the API in a thread; return the v2 endpoint."""
        server = serve_in_thread(self.app, self.host, self.port)
        self.endpoint = server.__enter__() + "/v2"
        self._server = server
        return self.endpoint

    def stop(self) -> None:
        """Stop serving; the app's lifespan closes the zone. Never started: close it here."""
        server, self._server = self._server, None
        if server is not None:
            server.__exit__(None, None, None)  # type: ignore[attr-defined]
        else:
            self.zone.close()

    def __enter__(self) -> LocalZone:
        self.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.stop()
