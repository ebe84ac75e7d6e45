"""Asking a member's slow-web to drain before the pool evicts it."""

from __future__ import annotations

import logging

import httpx

log = logging.getLogger("exo_scaler.drain")


def drain_url_for(template: str, ip: str) -> str:
    return template.replace("{ip}", ip)


async def request_drain(http: httpx.AsyncClient, template: str, ip: str, token: str) -> bool:
    """True when the member accepted the drain; a failure is logged, never raised.

    `exit=false`: the member keeps running (answering 503 on health) until the pool removes it.
    """
    url = drain_url_for(template, ip)
    try:
        response = await http.post(
            url,
            params={"exit": "false"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5.0,
        )
    except httpx.HTTPError as exc:
        log.warning("drain request to %s failed: %s", url, type(exc).__name__)
        return False
    if response.status_code >= 300:
        log.warning("drain request to %s answered %d", url, response.status_code)
        return False
    return True
