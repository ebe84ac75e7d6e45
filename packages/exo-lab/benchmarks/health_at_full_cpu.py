"""/health latency of a lab member whose CPU cap is fully used (goal: p99 <= 50 ms).

The NLB drops a member whose /health misses the check timeout, so a member at 100 % CPU must
still answer fast. This starts one real member (slow-web in its cgroup), keeps every worker
burning plus a queue, checks through the member's node exporter that it is at ~100 %, then
times /health on the member's own address, one new connection per probe (as the NLB does).

    python packages/exo-lab/benchmarks/health_at_full_cpu.py [--quick] [--cpu-per-vcpu 0.25]
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from exo_lab.dataplane import DataPlane
from exo_lab.dataplane.members import MemberSettings, lab_prefix_for
from exo_zone import Zone, ZoneTimings

GOAL_P99_MS = 50.0
_COUNTER = re.compile(r'node_cpu_seconds_total\{cpu="\d+",mode="(\w+)"\} ([0-9.e+-]+)')


def _counters(address: str) -> dict[str, float]:
    totals: dict[str, float] = {}
    for mode, value in _COUNTER.findall(httpx.get(f"http://{address}:9100/metrics").text):
        totals[mode] = totals.get(mode, 0.0) + float(value)
    return totals


def _probe(address: str) -> bool:
    """GET /health on a new connection, as the NLB's checker does (http.client: no TLS setup)."""
    connection = http.client.HTTPConnection(address, 8080, timeout=5)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure_health_at_full_cpu(
    *,
    quick: bool = False,
    cpu_per_vcpu: float = 0.25,
    instance_type: str = "standard.tiny",
    member_network: str = "127.199.77.0/24",
) -> dict[str, Any]:
    probes = 100 if quick else 600
    probe_interval = 0.02
    with tempfile.TemporaryDirectory(prefix="exo-lab-bench-") as runtime_dir:
        settings = MemberSettings(
            lab_prefix=lab_prefix_for(member_network),
            cpu_per_vcpu=cpu_per_vcpu,
            runtime_dir=Path(runtime_dir),
            stop_timeout=3.0,
        )
        plane = DataPlane(settings)
        zone = Zone(
            timings=ZoneTimings(boot_delay=0.0, operation_delay=0.0, tick_interval=0.05),
            runtime=plane.runtime,
            member_network=member_network,
        )
        stop = threading.Event()
        try:
            pool = zone.create_pool("bench", 1, instance_type)
            deadline = time.monotonic() + 60
            # `running` is the VM's state; the app answers once the runtime says it is ready.
            while not (
                zone.members(pool.id)[0].state == "running"
                and plane.runtime.is_ready(zone.members(pool.id)[0].id)
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("the member did not start")
                zone.tick()
                time.sleep(0.05)
            member = zone.members(pool.id)[0]
            workers = member.itype.cpus * settings.workers_per_vcpu

            def burn() -> None:
                # Bounded: stops with the benchmark; each request is 200 ms of CPU.
                with httpx.Client(timeout=60) as client:
                    while not stop.is_set():
                        client.get(f"http://{member.address}:8080/", params={"ms": 200})

            burners = [threading.Thread(target=burn, daemon=True) for _ in range(workers + 1)]
            for thread in burners:
                thread.start()
            time.sleep(1.5)
            before = _counters(member.address)
            latencies: list[float] = []
            failures = 0
            for _ in range(probes):
                started = time.perf_counter()
                ok = _probe(member.address)
                elapsed = (time.perf_counter() - started) * 1000
                if ok:
                    latencies.append(elapsed)
                else:
                    failures += 1
                time.sleep(probe_interval)
            after = _counters(member.address)
            stop.set()
            busy = 1 - (after["idle"] - before["idle"]) / (
                sum(after.values()) - sum(before.values())
            )
            p99 = _percentile(latencies, 0.99) if latencies else float("inf")
            return {
                "cpu_cap": plane.runtime.cpu_cap,
                "cpu_per_vcpu": cpu_per_vcpu,
                "vcpus": member.itype.cpus,
                "member_cpu_busy": round(busy, 3),
                "probes": probes,
                "failures": failures,
                "health_p50_ms": round(statistics.median(latencies), 2) if latencies else None,
                "health_p95_ms": round(_percentile(latencies, 0.95), 2) if latencies else None,
                "health_p99_ms": round(p99, 2),
                "health_max_ms": round(max(latencies), 2) if latencies else None,
                "goal_p99_ms": GOAL_P99_MS,
                "goal_met": p99 <= GOAL_P99_MS and failures == 0,
            }
        finally:
            stop.set()
            zone.close()
            plane.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 probes instead of 600")
    parser.add_argument("--cpu-per-vcpu", type=float, default=0.25)
    parser.add_argument("--instance-type", default="standard.tiny")
    parser.add_argument("--member-network", default="127.199.77.0/24")
    args = parser.parse_args()
    result = measure_health_at_full_cpu(
        quick=args.quick,
        cpu_per_vcpu=args.cpu_per_vcpu,
        instance_type=args.instance_type,
        member_network=args.member_network,
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
