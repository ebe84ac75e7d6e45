"""Typed views of the few API objects the project uses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

POOL_BUSY_STATES = frozenset({"creating", "destroying", "scaling-down", "scaling-up", "updating"})


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

    @property
    def is_running(self) -> bool:
        return self.state == "running"

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> InstancePool:
        return cls(
            id=body["id"],
            name=body.get("name", ""),
            size=int(body.get("size", 0)),
            state=body.get("state", "unknown"),
            instance_ids=tuple(ref["id"] for ref in body.get("instances") or ()),
        )


@dataclass(frozen=True)
class PoolMember:
    id: str
    name: str
    state: str
    public_ip: str | None
    created_at: datetime | None
    ipv6_address: str | None = None

    @property
    def is_running(self) -> bool:
        return self.state == "running"

    @classmethod
    def from_api(cls, body: dict[str, Any]) -> PoolMember:
        return cls(
            id=body["id"],
            name=body.get("name", ""),
            state=body.get("state", "unknown"),
            public_ip=body.get("public-ip"),
            created_at=_parse_time(body.get("created-at")),
            ipv6_address=body.get("ipv6-address"),
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
