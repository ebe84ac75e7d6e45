"""Refresh time and API calls of exo-sd for pools of 10/100/500 members, against a lab zone.

    python packages/exo-sd/benchmarks/refresh.py            # 10, 100, 500 members
    python packages/exo-sd/benchmarks/refresh.py --quick    # 10, 100; fewer repeats

Needs exo-lab and exo-testkit (the development venv). `measure_refresh(sizes)` is what the
lab benchmark suite imports. Figures are printed, never asserted: they depend on the machine.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from exo_client import NO_RETRY, ExoClient
from exo_sd.agent import Agent, AgentConfig
from exo_sd.files import write_targets_atomically
from exo_sd.metrics import SdMetrics
from exo_sd.targets import target_groups
from exo_testkit import running_zone

DEFAULT_SIZES = (10, 100, 500)
QUICK_SIZES = (10, 100)


def _member_network() -> str:
    # A /22 holds 1021 members; a random one keeps a run beside tests or a demo apart.
    return f"127.{random.randint(64, 95)}.{4 * random.randint(0, 63)}.0/22"


def _wait_all_running(client: ExoClient, pool_id: str, size: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        members = client.list_members(pool_id)
        if len(members) == size and all(m.is_running for m in members):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{size} members did not all boot within {timeout}s")
        time.sleep(0.1)


def measure_one(size: int, repeats: int = 20) -> dict[str, Any]:
    with running_zone({"bench": size}, member_network=_member_network()) as rz:
        pool_id = rz.pools["bench"].id
        _wait_all_running(rz.client(), pool_id, size)
        client = ExoClient(rz.settings, retry=NO_RETRY)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "targets.json"
            config = AgentConfig(pool=pool_id, out=out, zone=rz.settings.zone)
            agent = Agent(client, config, metrics=SdMetrics(CollectorRegistry()))
            agent.resolve_pool()
            calls_before = sum(client.calls.values())
            started = time.perf_counter()
            wrote = agent.refresh()
            first = time.perf_counter() - started
            unchanged = []
            for _ in range(repeats):
                started = time.perf_counter()
                if agent.refresh():
                    raise RuntimeError("an unchanged pool rewrote the file")
                unchanged.append(time.perf_counter() - started)
            calls = sum(client.calls.values()) - calls_before
            # The agent's own share, without the API round trip: groups + a real (fsynced) write.
            members = client.list_members(pool_id)
            local = []
            for n in range(repeats):
                started = time.perf_counter()
                groups = target_groups(members, pool_id=pool_id, zone="ch-gva-2", port=9100)
                write_targets_atomically(Path(tmp) / f"local-{n}.json", groups)
                local.append(time.perf_counter() - started)
            file_bytes = out.stat().st_size
            targets = len(rz.zone.pools[pool_id].member_ids)
        client.close()
    unchanged.sort()
    return {
        "members": size,
        "targets": targets,
        "first_written": wrote,
        "refreshes": repeats + 1,
        "api_calls": calls,
        "api_calls_per_refresh": calls / (repeats + 1),
        "first_refresh_ms": first * 1000,
        "median_refresh_ms": statistics.median(unchanged) * 1000,
        "p95_refresh_ms": unchanged[max(0, int(len(unchanged) * 0.95) - 1)] * 1000,
        "local_write_ms": statistics.median(local) * 1000,
        "file_bytes": file_bytes,
    }


def measure_refresh(
    sizes: Sequence[int] = DEFAULT_SIZES, repeats: int = 20
) -> list[dict[str, Any]]:
    """One row per pool size: refresh times (first write, then unchanged) and API calls."""
    return [measure_one(size, repeats) for size in sizes]


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    header = (
        "| members | targets | API calls / refresh | first refresh (write) ms "
        "| median refresh ms | p95 refresh ms | targets + write ms | file bytes |"
    )
    lines = [header, "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['members']} | {r['targets']} | {r['api_calls_per_refresh']:.2f} "
            f"| {r['first_refresh_ms']:.1f} | {r['median_refresh_ms']:.1f} "
            f"| {r['p95_refresh_ms']:.1f} | {r['local_write_ms']:.1f} | {r['file_bytes']} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10 and 100 members, 5 repeats")
    parser.add_argument("--sizes", type=int, nargs="+", help="pool sizes to measure")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    sizes = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)
    repeats = args.repeats or (5 if args.quick else 20)
    if not 1 <= repeats <= 1000 or any(not 1 <= s <= 1000 for s in sizes):
        parser.error("sizes and repeats must be within 1-1000")
    print(format_table(measure_refresh(sizes, repeats)))


if __name__ == "__main__":
    main()
