"""Health probes as the NLB (and the zone's boot check) send them: HTTP GET or TCP connect."""

from __future__ import annotations

import asyncio
import contextlib


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, asyncio.TimeoutError):
        await asyncio.wait_for(writer.wait_closed(), 1.0)


async def tcp_check(host: str, port: int, timeout: float) -> str | None:
    """None when a connection opens within `timeout`, else why not."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (TimeoutError, OSError) as exc:
        return f"connect: {type(exc).__name__}: {exc}".rstrip(": ")
    await _close(writer)
    return None


async def http_check(host: str, port: int, uri: str, timeout: float) -> str | None:
    """None when GET `uri` answers 2xx within `timeout` (connect included), else why not."""

    async def exchange() -> str | None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(
                f"GET {uri} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                "User-Agent: exo-lab-nlb-healthcheck\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            status_line = await reader.readline()
        finally:
            await _close(writer)
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            return f"bad status line {status_line[:60]!r}"
        if not parts[1].startswith(b"2"):
            return f"HTTP {parts[1].decode(errors='replace')}"
        return None

    try:
        return await asyncio.wait_for(exchange(), timeout)
    except TimeoutError:
        return f"timeout after {timeout:g}s"
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
