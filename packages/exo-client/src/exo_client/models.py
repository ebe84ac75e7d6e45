"""Typed views of the few API objects the project uses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

POOL_BUSY_STATES = frozenset({"creating", "destroying", "scaling-down", "scaling-up", "updating"})
#: States that do not pass by themselves: `suspended` is in the shipped openapi.json's
#: instance-pool state enum; `degraded` is the newer API's (exoscale/egoscale,
#: v3/instance_pool_test.go), absent from the spec the `exoscale` wheel ships.
POOL_UNHEALTHY_STATES = frozenset({"suspended", "degraded"})


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class InstancePool:
    id: str
    name: str
    size: int
    state: str
    instance_ids: tuple[str, ...] = ()
    #: why a degraded/suspended pool is so (`type`, `cause`, `job-id`), when the API says
    error_reason: dict[str, str] | None = None

    @property
    def is_running(self) -> bool:
        return self.state == "running"

    @property
    def is_unhealthy(self) -> bool:
        return self.state in POOL_UNHEALTHY_STATES

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> InstancePool:
        # egoscale v3 reads the field as `error_reason` (snake case, unlike every other field);
        # the kebab-case spelling is accepted too in case the API aligns it.
        reason = body.get("error_reason") or body.get("error-reason")
        return cls(
            id=body["id"],
            name=body.get("name", ""),
            size=int(body.get("size", 0)),
            state=body.get("state", "unknown"),
            instance_ids=tuple(ref["id"] for ref in body.get("instances") or ()),
            error_reason={str(k): str(v) for k, v in reason.items()}
            if isinstance(reason, dict)
            else None,
        )


@dataclass(frozen=True)
class PoolMember:
    id: str
    name: str
    state: str
    public_ip: str | None
    created_at: datetime | None
    ipv6_address: str | None = None
    manager_id: str | None = None  # the instance's `manager` (openapi.json: `manager` object)
    manager_type: str | None = None

    @property
    def is_running(self) -> bool:
        return self.state == "running"

    def managed_by(self, pool_id: str) -> bool:
        return self.manager_type == "instance-pool" and self.manager_id == pool_id

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> PoolMember:
        manager = body.get("manager") or {}
        return cls(
            id=body["id"],
            name=body.get("name", ""),
            state=body.get("state", "unknown"),
            public_ip=body.get("public-ip"),
            created_at=_parse_time(body.get("created-at")),
            ipv6_address=body.get("ipv6-address"),
            manager_id=manager.get("id"),
            manager_type=manager.get("type"),
        )


@dataclass(frozen=True)
class Quota:
    """openapi.json `quota`: an organisation limit; `limit` -1 means unlimited."""

    resource: str
    usage: int
    limit: int

    @property
    def unlimited(self) -> bool:
        return self.limit < 0

    @property
    def available(self) -> int | None:
        """How many more the organisation may create, None when unlimited."""
        return None if self.unlimited else max(0, self.limit - self.usage)

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> Quota:
        return cls(
            resource=str(body.get("resource", "")),
            usage=int(body.get("usage", 0)),
            limit=int(body.get("limit", -1)),
        )


@dataclass(frozen=True)
class Operation:
    id: str
    state: str
    reason: str | None = None
    message: str | None = None
    reference_id: str | None = None

    @property
    def is_done(self) -> bool:
        return self.state != "pending"

    @property
    def succeeded(self) -> bool:
        return self.state == "success"

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> Operation:
        reference = body.get("reference") or {}
        return cls(
            id=body["id"],
            state=body.get("state", "pending"),
            reason=body.get("reason"),
            message=body.get("message"),
            reference_id=reference.get("id"),
        )
