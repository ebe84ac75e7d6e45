"""Pool members → Prometheus file_sd target groups (pure: no I/O, no clock)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, TypedDict

from exo_client import PoolMember

AddressKind = Literal["public", "ipv6"]
ADDRESS_KINDS: tuple[AddressKind, ...] = ("public", "ipv6")


class TargetLabels(TypedDict):
    instance_id: str
    instance_name: str
    pool_id: str
    zone: str


class TargetGroup(TypedDict):
    targets: list[str]
    labels: TargetLabels


def member_address(member: PoolMember, kind: AddressKind) -> str | None:
    """The address Prometheus should scrape, or None when the member has none of that kind.

    The v2 list-instances answer carries `public-ip` and `ipv6-address` only: a private
    network address is not in it, so it cannot be offered without one call per member.
    """
    if kind == "ipv6":
        return member.ipv6_address or None
    return member.public_ip or None


def format_target(address: str, port: int) -> str:
    # An IPv6 literal needs brackets, or its colons would be read as the port separator.
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def target_groups(
    members: Iterable[PoolMember],
    *,
    pool_id: str,
    zone: str,
    port: int,
    address: AddressKind = "public",
) -> list[TargetGroup]:
    """One group per running member that has an address, ordered by name then id.

    The order is fixed so that an unchanged pool renders byte-identical output and the
    file is not rewritten (Prometheus reloads a file_sd file on every change).
    """
    if not 1 <= port <= 65535:
        raise ValueError(f"port must be within 1-65535, not {port}")
    if address not in ADDRESS_KINDS:
        raise ValueError(f"address must be one of {', '.join(ADDRESS_KINDS)}, not {address!r}")
    groups: list[TargetGroup] = []
    for member in sorted(members, key=lambda m: (m.name, m.id)):
        ip = member_address(member, address)
        if not member.is_running or ip is None:
            continue
        groups.append(
            {
                "targets": [format_target(ip, port)],
                "labels": {
                    "instance_id": member.id,
                    "instance_name": member.name,
                    "pool_id": pool_id,
                    "zone": zone,
                },
            }
        )
    return groups
