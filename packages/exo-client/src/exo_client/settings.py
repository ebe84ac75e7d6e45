"""Where the client finds its credentials, zone and endpoint.

Flags win over the environment; the environment names are the project's (README), with the
course's grading-robot spellings (`EXOSCALE_KEY`, `EXOSCALE_SECRET`) accepted as fallbacks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_ZONE = "ch-gva-2"
DEFAULT_TIMEOUT_SECONDS = 10.0


class MissingCredentialError(ValueError):
    """A required credential is neither given as a flag nor found in the environment."""

    def __init__(self, variable: str, alternatives: tuple[str, ...] = ()) -> None:
        names = " or ".join((variable, *alternatives))
        super().__init__(f"missing Exoscale credential: set {names} (or pass it as a flag)")
        self.variable = variable


def endpoint_for_zone(zone: str) -> str:
    return f"https://api-{zone}.exoscale.com/v2"


@dataclass(frozen=True)
class ClientSettings:
    api_key: str
    api_secret: str = field(repr=False)
    zone: str = DEFAULT_ZONE
    endpoint: str = ""
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        if not self.endpoint:
            object.__setattr__(self, "endpoint", endpoint_for_zone(self.zone))
        object.__setattr__(self, "endpoint", self.endpoint.rstrip("/"))
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        zone: str | None = None,
        endpoint: str | None = None,
        timeout: float | None = None,
    ) -> ClientSettings:
        """Build settings from explicit values (flags) first, then the environment."""
        env = os.environ if env is None else env
        key = api_key or env.get("EXOSCALE_API_KEY") or env.get("EXOSCALE_KEY")
        if not key:
            raise MissingCredentialError("EXOSCALE_API_KEY", ("EXOSCALE_KEY",))
        secret = api_secret or env.get("EXOSCALE_API_SECRET") or env.get("EXOSCALE_SECRET")
        if not secret:
            raise MissingCredentialError("EXOSCALE_API_SECRET", ("EXOSCALE_SECRET",))
        # EXOSCALE_ZONE_ID is accepted by the course robot's contract and deliberately ignored:
        # v2 endpoints are addressed by zone name.
        return cls(
            api_key=key,
            api_secret=secret,
            zone=zone or env.get("EXOSCALE_ZONE") or DEFAULT_ZONE,
            endpoint=endpoint or env.get("EXOSCALE_API_ENDPOINT") or "",
            timeout=timeout if timeout is not None else DEFAULT_TIMEOUT_SECONDS,
        )
