"""Which members leave on a scale-down: newest, oldest, or least busy per Prometheus."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from .settings import ScaleDownPolicy
from .target import Member, MemberState

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _created(member: Member) -> datetime:
    return member.created_at or _EPOCH


def choose_members(
    members: Sequence[Member],
    count: int,
    policy: ScaleDownPolicy,
    busy: Mapping[str, float] | None = None,
) -> list[Member]:
    """`count` members to evict; members already leaving are never chosen.

    least-busy: members without a CPU figure go first (booting, or not scraped yet: they serve
    nothing), then the lowest CPU; ties go to the newest.
    """
    candidates = [m for m in members if m.state is not MemberState.DRAINING]
    newest_first = sorted(candidates, key=lambda m: (_created(m), m.id), reverse=True)
    if policy == "oldest":
        ordered = newest_first[::-1]
    elif policy == "least-busy" and busy is not None:
        ordered = sorted(newest_first, key=lambda m: busy.get(m.id, -1.0))
    else:
        ordered = newest_first
    return ordered[:count]


def parse_busy_vector(body: Any, label: str = "instance_id") -> dict[str, float]:
    """instance id -> value from a Prometheus instant-query answer (vector result)."""
    if not isinstance(body, dict) or body.get("status") != "success":
        raise ValueError("Prometheus query did not succeed")
    data = body.get("data") or {}
    if data.get("resultType") != "vector":
        raise ValueError(f"expected a vector result, got {data.get('resultType')!r}")
    found: dict[str, float] = {}
    for sample in data.get("result") or ():
        instance = (sample.get("metric") or {}).get(label)
        value = sample.get("value") or (None, None)
        if instance is None:
            continue
        try:
            found[instance] = float(str(value[1]))
        except (TypeError, ValueError, IndexError):
            continue
    return found


async def query_busy(http: httpx.AsyncClient, prometheus_url: str, query: str) -> dict[str, float]:
    response = await http.get(
        prometheus_url.rstrip("/") + "/api/v1/query", params={"query": query}, timeout=5.0
    )
    response.raise_for_status()
    return parse_busy_vector(response.json())
