"""Webhook throughput, p99 and idle RSS of exo-scaler; 10,000 webhooks in one tick → 1 call.

The server is the real CLI (uvicorn) in a subprocess pinned to one core, against a lab zone on
loopback; the load is a bounded number of requests from a few keep-alive client threads.

    python packages/exo-scaler/benchmarks/webhooks.py [--quick] [--json]

`run(quick=...)` returns the figures as a dict, for the lab's benchmark suite.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from exo_zone import LocalZone, Zone, ZoneTimings

PAYLOAD = json.dumps(
    {
        "receiver": "exo-scaler",
        "status": "firing",
        "orgId": 1,
        "alerts": [
            {
                "status": "firing",
                "labels": {"action": "scale_up", "alertname": "PoolCpuHigh"},
                "annotations": {"summary": "Average pool CPU above 80%"},
                "startsAt": "2026-11-24T20:51:03Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": "c6eadffa33fcdf37",
                "values": {"A": 91.7, "C": 1},
            }
        ],
        "commonLabels": {"action": "scale_up", "alertname": "PoolCpuHigh"},
        "version": "1",
        "state": "alerting",
        "title": "[FIRING:1] PoolCpuHigh",
    }
).encode()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _zone() -> Iterator[tuple[Zone, dict[str, str]]]:
    timings = ZoneTimings.fast()
    local = LocalZone(timings=timings, member_network="127.201.7.0/24")
    pool = local.zone.create_pool("web", 1)
    with local:
        yield local.zone, {**local.env, "EXOSCALE_INSTANCEPOOL_ID": pool.id}


@contextmanager
def _scaler(zone_env: dict[str, str], token: str, interval: float) -> Iterator[tuple[int, int]]:
    """(pid, port) of a scaler subprocess pinned to one core."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXOSCALE", "EXO_SCALER"))}
    env.update(zone_env)
    env.update({"EXO_SCALER_TOKEN": token, "LISTEN_PORT": str(port)})
    cpus = sorted(os.sched_getaffinity(0))
    command = [sys.executable, "-c", "from exo_scaler.cli import main; main()", "serve"]
    command += ["--host", "127.0.0.1", "--interval", str(interval), "--log-level", "warning"]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        # Pinned from outside: preexec_fn is unsafe in a process that runs threads (the zone).
        os.sched_setaffinity(process.pid, {cpus[0]})
        try:
            deadline = time.monotonic() + 30
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"scaler exited: {log.read().decode()[-2000:]}")
                try:
                    if _get(port, "/healthz")[0] == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("scaler did not start")
                time.sleep(0.05)
            yield process.pid, port
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _blast(port: int, token: str, count: int, workers: int, time_limit: float) -> dict[str, Any]:
    """Send `count` webhooks over `workers` keep-alive connections; stop early at the limit."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    share = [count // workers + (1 if i < count % workers else 0) for i in range(workers)]
    deadline = time.monotonic() + time_limit

    def worker(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine: list[float] = []
        bad = 0
        for _ in range(n):
            if time.monotonic() > deadline:
                break
            started = time.perf_counter()
            try:
                conn.request("POST", "/webhook", body=PAYLOAD, headers=headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except OSError:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            mine.append(time.perf_counter() - started)
            bad += 0 if ok else 1
        conn.close()
        with lock:
            latencies.extend(mine)
            failures[0] += bad

    threads = [threading.Thread(target=worker, args=(n,)) for n in share]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    return {
        "sent": len(latencies),
        "failed": failures[0],
        "seconds": round(elapsed, 3),
        "per_second": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(pct(0.50), 2),
        "p99_ms": round(pct(0.99), 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2) if latencies else 0.0,
    }


def _scale_operations(zone: Zone) -> int:
    with zone.lock:
        return sum(1 for op in zone.operations.values() if op.command == "scale-instance-pool")


def run(*, quick: bool = False, workers: int = 8) -> dict[str, Any]:
    token = secrets.token_urlsafe(24)
    burst = 2_000 if quick else 10_000
    throughput_requests = 2_000 if quick else 10_000
    results: dict[str, Any] = {"quick": quick, "workers": workers, "server_cpus": 1}
    with _zone() as (zone, zone_env):
        with _scaler(zone_env, token, interval=3600) as (pid, port):
            time.sleep(1.0)
            results["idle_rss_mib"] = round(_rss_mib(pid), 1)
            _blast(port, token, 200, workers, 30)  # warm-up
            results["throughput"] = _blast(port, token, throughput_requests, workers, 120)
            results["rss_after_load_mib"] = round(_rss_mib(pid), 1)
        # One tick must see the whole burst: give the burst twice the time it should take.
        rate = max(results["throughput"]["per_second"], 100.0)
        interval = round(min(120.0, max(3.0, 2 * burst / rate + 2)), 1)
        before = _scale_operations(zone)
        with _scaler(zone_env, token, interval=interval) as (_pid, port):
            blast = _blast(port, token, burst, workers, interval * 0.8)
            status = json.loads(_get(port, "/status")[1])
            ticks_during_burst = status["ticks"]
            deadline = time.monotonic() + interval * 3 + 10
            while time.monotonic() < deadline:
                status = json.loads(_get(port, "/status")[1])
                if status["last_decision"] and status["in_flight"] is None:
                    break
                time.sleep(0.1)
        results["one_tick"] = {
            "webhooks": blast["sent"],
            "failed": blast["failed"],
            "interval_s": interval,
            "ticks_during_burst": ticks_during_burst,
            "decision": status["last_decision"] and status["last_decision"]["reason"],
            "intent_count": sum(i["count"] for i in status["last_decision"]["intents"])
            if status["last_decision"]
            else 0,
            "scale_calls": _scale_operations(zone) - before,
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer requests (smoke run)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="print the dict as JSON only")
    args = parser.parse_args()
    results = run(quick=args.quick, workers=args.workers)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    tp, one = results["throughput"], results["one_tick"]
    print(f"exo-scaler webhooks ({'quick' if args.quick else 'full'}, server on 1 core)")
    print(f"  idle RSS            {results['idle_rss_mib']} MiB")
    print(f"  RSS after load      {results['rss_after_load_mib']} MiB")
    print(
        f"  throughput          {tp['per_second']} webhooks/s ({tp['sent']} sent, "
        f"{tp['failed']} failed, {args.workers} keep-alive clients)"
    )
    print(f"  latency             p50 {tp['p50_ms']} ms, p99 {tp['p99_ms']} ms")
    print(
        f"  one tick            {one['webhooks']} webhooks -> {one['scale_calls']} scale call(s)"
        f" (decision {one['decision']}, {one['intent_count']} notifications merged,"
        f" ticks during burst {one['ticks_during_burst']}, interval {one['interval_s']} s)"
    )


if __name__ == "__main__":
    main()
