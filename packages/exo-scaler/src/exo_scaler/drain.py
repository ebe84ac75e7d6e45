"""Asking a member's slow-web to drain before the pool evicts it."""

from __future__ import annotations

import logging

import httpx

log = logging.getLogger("exo_scaler.drain")


def drain_url_for(template: str, ip: str) -> str:
    return template.replace("{ip}", ip)


def resume_url_for(template: str, ip: str) -> str | None:
    """slow-web's undo of a drain sits beside it: `…/admin/drain` → `…/admin/resume`."""
    base, sep, _ = template.rpartition("/drain")
    return drain_url_for(base + "/resume", ip) if sep else None


async def request_drain(http: httpx.AsyncClient, template: str, ip: str, token: str) -> bool:
    """True when the member accepted the drain; a failure is logged, never raised.

    `exit=false`: the member keeps running (answering 503 on health) until the pool removes it.
    """
    return await _post_admin(http, drain_url_for(template, ip), token, {"exit": "false"})


async def request_resume(http: httpx.AsyncClient, template: str, ip: str, token: str) -> bool:
    """Put a drained member back in service (its evict failed); logged, never raised."""
    url = resume_url_for(template, ip)
    if url is None:
        log.warning("no resume URL beside drain URL %s; the member stays drained", template)
        return False
    return await _post_admin(http, url, token, {})


async def _post_admin(
    http: httpx.AsyncClient, url: str, token: str, params: dict[str, str]
) -> bool:
    try:
        response = await http.post(
            url,
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=5.0,
        )
    except httpx.HTTPError as exc:
        log.warning("admin request to %s failed: %s", url, type(exc).__name__)
        return False
    if response.status_code >= 300:
        log.warning("admin request to %s answered %d", url, response.status_code)
        return False
    return True
