"""How fast /health answers while every slow-web worker burns CPU.

Starts `slow-web serve` on 127.0.0.1 (free port) with N workers, keeps them saturated with
`GET /?ms=...` from a bounded number of client threads for a bounded time, and probes
/health on a fresh TCP connection every few milliseconds, the way a load balancer does.
Prints /health latency p50/p95/p99 (goal: p99 <= 50 ms).

    python packages/slow-web/benchmarks/health_under_load.py --quick
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

GOAL_P99_MS = 50.0
_READY = re.compile(r"listening=http://(?P<host>[0-9.]+):(?P<port>[0-9]+)")
_MAX_CLIENT_THREADS = 64
_MAX_DURATION_SECONDS = 300.0


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def _start_server(workers: int, max_queue: int, extra_args: list[str]) -> tuple[Any, str, int]:
    command = [
        sys.executable, "-m", "slow_web.cli", "serve",
        "--host", "127.0.0.1", "--port", "0",
        "--workers", str(workers), "--max-queue", str(max_queue),
        *extra_args,
    ]  # fmt: skip
    env = {key: value for key, value in os.environ.items() if key != "SLOW_WEB_ADMIN_TOKEN"}
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        match = _READY.search(line)
        if match:
            # Keep reading the log so the pipe never fills up and blocks the server.
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return process, match["host"], int(match["port"])
    process.kill()
    raise RuntimeError("slow-web did not start")


def _get(host: str, port: int, path: str, timeout: float) -> int:
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def measure_health_under_load(
    workers: int = 2,
    duration_seconds: float = 30.0,
    client_threads: int | None = None,
    work_ms: int = 200,
    probe_interval_seconds: float = 0.01,
    warmup_seconds: float = 1.0,
    server_args: list[str] | None = None,
) -> dict[str, Any]:
    """Run one measurement and return its figures (latencies in milliseconds)."""
    threads = client_threads if client_threads is not None else 2 * workers
    if not 1 <= threads <= _MAX_CLIENT_THREADS:
        raise ValueError(f"client threads must be between 1 and {_MAX_CLIENT_THREADS}")
    if not 0 < duration_seconds <= _MAX_DURATION_SECONDS:
        raise ValueError(f"duration must be > 0 and <= {_MAX_DURATION_SECONDS} seconds")
    process, host, port = _start_server(workers, max(threads, 1), server_args or [])
    counts = {"ok": 0, "shed": 0, "errors": 0}
    counts_lock = threading.Lock()
    health_ms: list[float] = []
    health_failures = 0
    load_deadline = time.monotonic() + warmup_seconds + duration_seconds

    def load_client() -> None:
        while time.monotonic() < load_deadline:
            try:
                status = _get(host, port, f"/?ms={work_ms}", timeout=60)
                outcome = "ok" if status == 200 else "shed" if status == 503 else "errors"
            except OSError:
                outcome = "errors"
            with counts_lock:
                counts[outcome] += 1
            if outcome != "ok":
                time.sleep(0.05)

    try:
        clients = [threading.Thread(target=load_client, daemon=True) for _ in range(threads)]
        for client in clients:
            client.start()
        time.sleep(warmup_seconds)
        probe_deadline = time.monotonic() + duration_seconds
        while time.monotonic() < probe_deadline:
            started = time.perf_counter()
            try:
                status = _get(host, port, "/health", timeout=5)
            except OSError:
                status = 0
            elapsed_ms = (time.perf_counter() - started) * 1000
            if status == 200:
                health_ms.append(elapsed_ms)
            else:
                health_failures += 1
            time.sleep(probe_interval_seconds)
        for client in clients:
            client.join(timeout=60 + work_ms / 1000)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    health_ms.sort()
    p99 = percentile(health_ms, 0.99)
    return {
        "workers": workers,
        "client_threads": threads,
        "work_ms": work_ms,
        "duration_seconds": duration_seconds,
        "health_samples": len(health_ms),
        "health_failures": health_failures,
        "health_p50_ms": round(percentile(health_ms, 0.50), 3),
        "health_p95_ms": round(percentile(health_ms, 0.95), 3),
        "health_p99_ms": round(p99, 3),
        "health_max_ms": round(health_ms[-1], 3) if health_ms else math.nan,
        "work_requests_ok": counts["ok"],
        "work_requests_shed": counts["shed"],
        "work_requests_failed": counts["errors"],
        "goal_p99_ms": GOAL_P99_MS,
        "goal_met": health_failures == 0 and p99 <= GOAL_P99_MS,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="5 s run for smoke tests")
    parser.add_argument("--workers", type=int, default=None, help="default: usable CPUs")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of probing")
    parser.add_argument("--clients", type=int, default=None, help="default: 2 x workers")
    parser.add_argument("--work-ms", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    from slow_web.cpus import usable_cpu_count

    workers = args.workers or usable_cpu_count()
    duration = 5.0 if args.quick else args.duration
    result = measure_health_under_load(
        workers=workers,
        duration_seconds=duration,
        client_threads=args.clients,
        work_ms=args.work_ms,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"slow-web /health under load: workers={result['workers']} "
            f"clients={result['client_threads']} work_ms={result['work_ms']} "
            f"duration={result['duration_seconds']:g}s load1={result['load_average_1m']}"
        )
        print(
            f"  health p50={result['health_p50_ms']:.2f} ms  p95={result['health_p95_ms']:.2f} ms"
            f"  p99={result['health_p99_ms']:.2f} ms  max={result['health_max_ms']:.2f} ms"
            f"  samples={result['health_samples']} failures={result['health_failures']}"
        )
        print(
            f"  work requests ok={result['work_requests_ok']} shed={result['work_requests_shed']}"
            f" failed={result['work_requests_failed']}"
        )
        verdict = "met" if result["goal_met"] else "NOT met"
        print(f"  goal p99 <= {GOAL_P99_MS:g} ms: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
