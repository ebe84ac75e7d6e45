"""A node_exporter-compatible CPU endpoint for one lab member, served from the lab process.

A member of V vCPUs is capped at V × cpu_per_vcpu host cores, so `used / cpu_per_vcpu`
(host CPU-seconds scaled to the member's vCPUs) are the member's busy seconds. Over an elapsed
wall time E the member owns V × E CPU-seconds; what it did not use is idle.
`1 - rate(idle)` is then the share of its cap the member uses, as on a VM.
Counters are split evenly across the V vCPUs and never go backwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from .cgroups import CpuUsage

log = logging.getLogger(__name__)

MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_MAX_HEAD = 8192
_READ_TIMEOUT = 5.0


class CpuAccount:
    """Turns a member's host CPU usage into per-vCPU `node_cpu_seconds_total` counters."""

    def __init__(
        self,
        vcpus: int,
        cpu_per_vcpu: float,
        read_usage: Callable[[], CpuUsage | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if vcpus < 1 or cpu_per_vcpu <= 0:
            raise ValueError("vcpus must be >= 1 and cpu_per_vcpu > 0")
        self.vcpus = vcpus
        self.cpu_per_vcpu = cpu_per_vcpu
        self._read_usage = read_usage
        self._clock = clock
        self._started = clock()
        self._last = dict.fromkeys(MODES, 0.0)

    def totals(self) -> dict[str, float]:
        """Member CPU-seconds per mode, summed over all vCPUs."""
        usage = self._read_usage()
        elapsed = self._clock() - self._started
        current = dict(self._last)
        if usage is not None:
            user = usage.user / self.cpu_per_vcpu
            system = usage.system / self.cpu_per_vcpu
            current["user"] = user
            current["system"] = system
            current["idle"] = max(0.0, self.vcpus * elapsed - user - system)
        # Monotonic whatever the source does (a restarted reading, a burst above the cap).
        self._last = {mode: max(self._last[mode], current[mode]) for mode in MODES}
        return dict(self._last)

    def render(self) -> str:
        totals = self.totals()
        lines = [
            "# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.",
            "# TYPE node_cpu_seconds_total counter",
        ]
        for cpu in range(self.vcpus):
            for mode in MODES:
                value = totals[mode] / self.vcpus
                lines.append(f'node_cpu_seconds_total{{cpu="{cpu}",mode="{mode}"}} {value:.6f}')
        lines += [
            "# HELP exo_lab_member_cpu_cap_cores Host cores this member may use.",
            "# TYPE exo_lab_member_cpu_cap_cores gauge",
            f"exo_lab_member_cpu_cap_cores {self.vcpus * self.cpu_per_vcpu:g}",
        ]
        return "\n".join(lines) + "\n"


def _response(status: str, body: bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def _serve_one(
    account: CpuAccount, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
        request_line = head.split(b"\r\n", 1)[0].split()
        if len(request_line) != 3:
            reply = _response("400 Bad Request", b"bad request\n")
        else:
            method, target = request_line[0], request_line[1].split(b"?", 1)[0]
            if method not in (b"GET", b"HEAD"):
                reply = _response("405 Method Not Allowed", b"GET only\n")
            elif target == b"/metrics":
                body = account.render().encode()
                reply = _response("200 OK", b"" if method == b"HEAD" else body, CONTENT_TYPE)
            elif target == b"/":
                reply = _response("200 OK", b"exo-lab member node exporter: /metrics\n")
            else:
                reply = _response("404 Not Found", b"not found\n")
        writer.write(reply)
        await writer.drain()
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        pass
    except OSError as exc:
        log.debug("exporter connection failed: %s", exc)
    finally:
        writer.close()
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


async def start_exporter(host: str, port: int, account: CpuAccount) -> asyncio.Server:
    """Listen on host:port and answer /metrics from `account` (call on the lab's loop)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_one(account, reader, writer)

    return await asyncio.start_server(handle, host, port, limit=_MAX_HEAD, reuse_address=True)
