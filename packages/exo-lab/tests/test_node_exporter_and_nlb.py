"""CPU accounting arithmetic, the exporter's HTTP face, and the balancer's edge cases."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest

from exo_lab.dataplane.cgroups import CpuUsage
from exo_lab.dataplane.loop_thread import LoopThread
from exo_lab.dataplane.nlb import ServiceBalancer, ServiceSpec
from exo_lab.dataplane.node_exporter import CpuAccount, start_exporter
from exo_zone import HealthCheck


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_cpu_account_scales_usage_to_the_members_vcpus() -> None:
    clock = FakeClock()
    usage = CpuUsage(0.0, 0.0)
    account = CpuAccount(2, 0.25, lambda: usage, clock)
    clock.now += 10  # 2 vCPUs x 10 s = 20 member CPU-seconds
    usage = CpuUsage(user=2.0, system=0.5)  # host seconds: half of the 0.5-core cap
    totals = account.totals()
    assert totals["user"] == pytest.approx(8.0)
    assert totals["system"] == pytest.approx(2.0)
    assert totals["idle"] == pytest.approx(10.0)  # 50 % busy, as on a VM


def test_cpu_account_never_goes_backwards_or_negative() -> None:
    clock = FakeClock()
    usage: CpuUsage | None = CpuUsage(0.0, 0.0)
    account = CpuAccount(1, 0.25, lambda: usage, clock)
    clock.now += 1
    usage = CpuUsage(user=0.5, system=0.0)  # above the cap (uncapped member)
    first = account.totals()
    assert first["idle"] == 0.0
    usage = None  # unreadable source
    clock.now += 1
    assert account.totals() == first
    usage = CpuUsage(user=0.1, system=0.0)  # a reading that went down
    clock.now += 1
    second = account.totals()
    assert all(second[m] >= first[m] for m in first)


def test_cpu_account_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="vcpus"):
        CpuAccount(0, 0.25, lambda: None)


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


def test_exporter_speaks_prometheus_text(loop: LoopThread) -> None:
    account = CpuAccount(2, 0.5, lambda: CpuUsage(1.0, 0.0))
    server = loop.run(start_exporter("127.0.0.1", 0, account))
    port = server.sockets[0].getsockname()[1]
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        samples = re.findall(r'node_cpu_seconds_total\{cpu="(\d)",mode="(\w+)"\}', response.text)
        assert {(c, m) for c, m in samples} >= {
            (c, m) for c in "01" for m in ("user", "system", "idle")
        }
        assert httpx.get(f"http://127.0.0.1:{port}/nope").status_code == 404
        assert httpx.post(f"http://127.0.0.1:{port}/metrics").status_code == 405
    finally:
        # The server belongs to the loop thread: close it there, never from this thread.
        async def shut() -> None:
            server.close()
            await server.wait_closed()

        loop.run(shut())


async def _member(port_holder: list[int], behaviour: str) -> asyncio.Server:
    """A fake member: answers /health 200; `reset` kills data connections mid-answer."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if b"/health" in head or behaviour == "ok":
            body = b"OK"
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n" + body
            )
            await writer.drain()
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\npartial")
        await writer.drain()
        writer.transport.abort()  # the member dies mid-answer

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port_holder.append(server.sockets[0].getsockname()[1])
    return server


def test_balancer_closes_client_cleanly_when_a_member_fails_midway(loop: LoopThread) -> None:
    ports: list[int] = []
    member = loop.run(_member(ports, "reset"))
    spec = ServiceSpec(
        service_id="s",
        name="svc",
        host="127.0.0.1",
        port=0,
        target_port=ports[0],
        healthcheck=HealthCheck(port=ports[0], interval=0.1, timeout=0.5, retries=1),
        members=(("m1", "127.0.0.1"),),
    )
    balancer = ServiceBalancer(spec, max_connections=4)

    async def setup() -> None:
        await balancer.start()
        balancer.update(spec)

    loop.run(setup())
    try:
        for _ in range(100):
            if balancer.in_rotation():
                break
            loop.run(asyncio.sleep(0.05))
        assert balancer.health_view == {"127.0.0.1": True}
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{balancer.port}/work", timeout=5)
        # Nothing leaks: the connection is accounted as closed.
        for _ in range(40):
            if balancer.active_connections == 0:
                break
            loop.run(asyncio.sleep(0.05))
        assert balancer.active_connections == 0
        assert balancer.forwarded == {"127.0.0.1": 1}
    finally:
        loop.run(balancer.close())
        loop.loop.call_soon_threadsafe(member.close)


def test_balancer_with_nobody_in_rotation_refuses(loop: LoopThread) -> None:
    spec = ServiceSpec(
        service_id="s",
        name="svc",
        host="127.0.0.1",
        port=0,
        target_port=1,
        healthcheck=HealthCheck(port=1, interval=0.1, timeout=0.1, retries=1),
        members=(("m1", "127.0.0.1"),),
    )
    balancer = ServiceBalancer(spec)

    async def setup() -> None:
        await balancer.start()
        balancer.update(spec)

    loop.run(setup())
    try:
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{balancer.port}/", timeout=5)
        assert balancer.refused >= 1
        assert balancer.health_view == {"127.0.0.1": False}
    finally:
        loop.run(balancer.close())
