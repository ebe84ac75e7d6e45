"""The data plane with real slow-web members: CPU, caps, NLB, scaling, kills."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from exo_lab.dataplane.cgroups import CGROUP_V1, CGROUP_V2
from exo_testkit import eventually

from .conftest import LAB_HEALTH, ProcessLab, served_by

pytestmark = pytest.mark.integration

_IDLE = re.compile(r'node_cpu_seconds_total\{cpu="(\d+)",mode="(\w+)"\} ([0-9.e+-]+)')


def cpu_counters(address: str) -> dict[str, float]:
    """mode -> seconds summed over the member's vCPUs, from its :9100 endpoint."""
    text = httpx.get(f"http://{address}:9100/metrics", timeout=5).text
    totals: dict[str, float] = {}
    for _, mode, value in _IDLE.findall(text):
        totals[mode] = totals.get(mode, 0.0) + float(value)
    return totals


def busy_share(before: dict[str, float], after: dict[str, float]) -> float:
    """1 - Δidle/Δall: what Prometheus computes as CPU utilisation."""
    all_delta = sum(after.values()) - sum(before.values())
    return 1.0 - (after["idle"] - before["idle"]) / all_delta


def open_loop(url: str, rate: float, seconds: float, ms: int) -> list[int]:
    """`rate` requests per second for `seconds` (bounded), each on its own connection."""
    statuses: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        try:
            status = httpx.get(url, params={"ms": ms}, timeout=20).status_code
        except httpx.HTTPError:
            status = 0
        with lock:
            statuses.append(status)

    threads = []
    started = time.monotonic()
    for i in range(int(rate * seconds)):
        time.sleep(max(0.0, started + i / rate - time.monotonic()))
        thread = threading.Thread(target=one, daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(30)
    return statuses


def test_members_serve_and_export_cpu_through_the_nlb(start_lab: Callable[..., ProcessLab]) -> None:
    lab = start_lab({"web": 2}, work_ms=50, cpu_per_vcpu=0.25)
    members = lab.wait_serving(2)
    state = lab.lab_get("/_lab/state")
    assert state["cpu_cap"] in (CGROUP_V1, CGROUP_V2), "this machine has writable cgroups"

    before = {m.address: cpu_counters(m.address) for m in members}
    # One member's capacity: 0.25 cores / 50 ms per request = 5 requests/s; spread over two.
    statuses = open_loop(lab.nlb_url, rate=5.0, seconds=4.0, ms=50)
    after = {m.address: cpu_counters(m.address) for m in members}

    assert statuses.count(200) == len(statuses) == 20
    for member in members:
        share = busy_share(before[member.address], after[member.address])
        # Each member did about half a member's worth of work; idle, it would be near 0.
        assert 0.2 < share <= 1.0, (member.name, share)
        assert set(after[member.address]) >= {"user", "system", "idle"}
        for mode, value in after[member.address].items():
            assert value >= before[member.address][mode], "counters never go backwards"


def test_a_capped_member_never_exceeds_its_share(start_lab: Callable[..., ProcessLab]) -> None:
    lab = start_lab({"web": 1}, cpu_per_vcpu=0.25, workers_per_vcpu=2)
    (member,) = lab.wait_serving(1)
    runtime = lab.plane.runtime
    # Two workers burning at once could use two host cores; the cap allows a quarter of one.
    burners = [
        threading.Thread(
            target=lambda: httpx.get(
                f"http://{member.address}:8080/", params={"ms": 1500}, timeout=30
            ),
            daemon=True,
        )
        for _ in range(2)
    ]
    for thread in burners:
        thread.start()
    time.sleep(1.0)  # both workers busy
    window = 3.0
    first = runtime.cpu_usage(member.id)
    exported_first = cpu_counters(member.address)
    time.sleep(window)
    last = runtime.cpu_usage(member.id)
    exported_last = cpu_counters(member.address)
    for thread in burners:
        thread.join(30)
    assert first is not None and last is not None
    cores_used = (last.total - first.total) / window
    assert 0.15 < cores_used < 0.25 * 1.15, cores_used
    share = busy_share(exported_first, exported_last)
    assert 0.8 < share <= 1.0, share


def test_scaling_through_the_api_and_the_nlb_follows(start_lab: Callable[..., ProcessLab]) -> None:
    lab = start_lab({"web": 2}, work_ms=1)
    lab.wait_serving(2)
    client = lab.rz.client()
    pool_id = lab.pool_id()

    client.wait_operation(client.scale_pool(pool_id, 3).id, timeout=30, poll=0.1)
    members = lab.wait_serving(3)
    assert set(served_by(lab.nlb_url, 9)) == {m.name for m in members}
    lb = client.list_load_balancers()[0]
    statuses = {s["public-ip"]: s["status"] for s in lb["services"][0]["healthcheck-status"]}
    assert statuses == {m.address: "success" for m in members}

    evicted = members[0]
    client.wait_operation(client.evict_members(pool_id, [evicted.id]).id, timeout=30, poll=0.1)
    # The member is gone from the pool; give the NLB one health-check window on top.
    time.sleep(LAB_HEALTH.interval * LAB_HEALTH.retries)
    names = served_by(lab.nlb_url, 12)
    assert evicted.name not in names
    assert set(names) == {m.name for m in members[1:]}
    lb = client.list_load_balancers()[0]
    assert evicted.address not in {s["public-ip"] for s in lb["services"][0]["healthcheck-status"]}
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://{evicted.address}:8080/health", timeout=2)

    client.wait_operation(client.scale_pool(pool_id, 1).id, timeout=30, poll=0.1)
    (survivor,) = lab.wait_serving(1)
    assert set(served_by(lab.nlb_url, 4)) == {survivor.name}


def test_scale_down_drains_in_flight_requests(start_lab: Callable[..., ProcessLab]) -> None:
    lab = start_lab({"web": 1}, work_ms=1)
    (member,) = lab.wait_serving(1)
    client = lab.rz.client()
    result: dict[str, int] = {}

    def slow_request() -> None:
        response = httpx.get(f"http://{member.address}:8080/", params={"ms": 300}, timeout=20)
        result["status"] = response.status_code

    thread = threading.Thread(target=slow_request)
    thread.start()
    time.sleep(0.3)  # the request is in flight (it takes ~1.2 s at a quarter core)
    client.wait_operation(client.scale_pool(lab.pool_id(), 0).id, timeout=30, poll=0.1)
    thread.join(20)
    assert result == {"status": 200}, "SIGTERM drains: the in-flight request completes"


def test_a_killed_member_is_replaced_and_serving(start_lab: Callable[..., ProcessLab]) -> None:
    lab = start_lab({"web": 2}, work_ms=1)
    victim, other = lab.wait_serving(2)
    pids = lab.plane.runtime.member_pids(victim.id)
    assert pids

    started = time.monotonic()
    response = lab.lab_put(f"/_lab/instance/{victim.id}:kill")
    assert response.status_code == 200, response.text

    def replaced() -> bool:
        names = {m.name for m in lab.running()}
        return len(names) == 2 and victim.name not in names and other.name in names

    eventually(replaced, 30, "a replacement member running")
    members = lab.wait_serving(2)
    elapsed = time.monotonic() - started
    assert set(served_by(lab.nlb_url, 6)) == {m.name for m in members}
    # boot delay + process start + one health-check interval, with room for a loaded machine
    assert elapsed < 20, elapsed

    def victim_gone() -> bool:
        # A killed worker may linger as a zombie until its new parent reaps it: not running.
        return not any(_running(pid) for pid in pids)

    eventually(victim_gone, 10, "the killed member's processes gone")

    missing = lab.lab_put("/_lab/instance/00000000-0000-0000-0000-000000000000:kill")
    assert missing.status_code == 404


def test_nlb_health_follows_the_members_health_check(start_lab: Callable[..., ProcessLab]) -> None:
    lab = start_lab({"web": 2}, work_ms=1)
    first, second = lab.wait_serving(2)
    token = lab.plane.runtime.admin_token
    # A drained member answers 503 on /health: the NLB takes it out after `retries` failures.
    drained = httpx.post(
        f"http://{first.address}:8081/admin/drain?exit=false",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )
    assert drained.status_code in (200, 202), drained.text
    eventually(lambda: lab.in_rotation() == {second.address}, 10, "the drained member out")
    lb = lab.rz.client().list_load_balancers()[0]
    statuses = {s["public-ip"]: s["status"] for s in lb["services"][0]["healthcheck-status"]}
    assert statuses == {first.address: "failure", second.address: "success"}
    assert set(served_by(lab.nlb_url, 4)) == {second.name}


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
