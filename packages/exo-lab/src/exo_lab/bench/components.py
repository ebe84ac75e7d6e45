"""Component benchmarks: the packages' own benchmark files, loaded from the repository by path.

They stay where they are (packages/<name>/benchmarks/*.py, runnable on their own); the suite
imports them with importlib so their functions run in this process and return figures. Where
the repository (or a benchmark's own dependencies, e.g. exo-testkit) is missing, that component
is skipped with a note, never failed.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from exo_zone import random_member_network

from .analysis import fmt, markdown_table

BENCHMARK_FILES = {
    "exo-sd refresh": "packages/exo-sd/benchmarks/refresh.py",
    "exo-scaler webhooks": "packages/exo-scaler/benchmarks/webhooks.py",
    "slow-web /health under load": "packages/slow-web/benchmarks/health_under_load.py",
    "lab member /health at full CPU": "packages/exo-lab/benchmarks/health_at_full_cpu.py",
}


def find_repo(start: Path | None = None) -> Path | None:
    """The repository root: above `start` (or this package's source) with packages/exo-lab."""
    candidates = [start] if start is not None else []
    candidates.append(Path(__file__).resolve())
    for candidate in candidates:
        for folder in (candidate, *candidate.parents):
            if (folder / "packages" / "exo-lab" / "pyproject.toml").is_file():
                return folder
    return None


def load_benchmark(repo: Path, relative: str) -> ModuleType:
    path = repo / relative
    if not path.is_file():
        raise FileNotFoundError(f"{relative} not found under {repo}")
    name = "exo_bench_" + path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses in the module look themselves up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def run_components(
    repo: Path | None, *, quick: bool, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Each component benchmark's figures, or {"skipped": reason}."""
    results: dict[str, Any] = {}
    if repo is None:
        say("components: repository not found (pass --repo); skipped")
        return {name: {"skipped": "repository not found"} for name in BENCHMARK_FILES}
    runners: dict[str, Callable[[ModuleType], Any]] = {
        "exo-sd refresh": lambda m: m.measure_refresh(
            (10, 100) if quick else (10, 100, 500), repeats=5 if quick else 20
        ),
        "exo-scaler webhooks": lambda m: m.run(quick=quick),
        "slow-web /health under load": lambda m: m.measure_health_under_load(
            workers=2, duration_seconds=5.0 if quick else 30.0
        ),
        "lab member /health at full CPU": lambda m: m.measure_health_at_full_cpu(
            quick=quick, member_network=random_member_network()
        ),
    }
    for name, relative in BENCHMARK_FILES.items():
        say(f"components: {name} ({relative})")
        started = time.monotonic()
        try:
            module = load_benchmark(repo, relative)
            results[name] = {"figures": runners[name](module)}
        except Exception as exc:  # a component that cannot run is a note, not a failure
            say(f"  skipped: {type(exc).__name__}: {exc}")
            results[name] = {"skipped": f"{type(exc).__name__}: {exc}"}
            continue
        results[name]["seconds"] = round(time.monotonic() - started, 1)
        say(components_markdown({name: results[name]}))
    return results


def components_markdown(results: dict[str, Any]) -> str:
    parts: list[str] = []
    for name, result in results.items():
        if "skipped" in result:
            parts.append(f"**{name}**: skipped ({result['skipped']})")
            continue
        figures = result["figures"]
        if name == "exo-sd refresh":
            parts.append(
                markdown_table(
                    [
                        "members",
                        "API calls / refresh",
                        "first refresh ms",
                        "median refresh ms",
                        "p95 refresh ms",
                    ],
                    [
                        [
                            r["members"],
                            fmt(r["api_calls_per_refresh"], ".2f"),
                            fmt(r["first_refresh_ms"], ".1f"),
                            fmt(r["median_refresh_ms"], ".1f"),
                            fmt(r["p95_refresh_ms"], ".1f"),
                        ]
                        for r in figures
                    ],
                )
            )
        elif name == "exo-scaler webhooks":
            tp, one = figures["throughput"], figures["one_tick"]
            parts.append(
                markdown_table(
                    ["exo-scaler webhooks", "value"],
                    [
                        ["throughput (webhooks/s)", fmt(tp.get("per_second"), ".0f")],
                        [
                            "latency p50 / p99 ms",
                            f"{fmt(tp.get('p50_ms'), '.2f')} / {fmt(tp.get('p99_ms'), '.2f')}",
                        ],
                        ["sent / failed", f"{tp.get('sent')} / {tp.get('failed')}"],
                        [
                            "burst in one tick → scale calls",
                            f"{one.get('webhooks')} → {one.get('scale_calls')}",
                        ],
                        [
                            "RSS idle / after load MiB",
                            f"{figures.get('idle_rss_mib')} / {figures.get('rss_after_load_mib')}",
                        ],
                    ],
                )
            )
        else:
            parts.append(
                markdown_table(
                    [name, "value"],
                    [
                        [
                            "/health p50 / p95 / p99 ms",
                            f"{fmt(figures.get('health_p50_ms'), '.2f')} / "
                            f"{fmt(figures.get('health_p95_ms'), '.2f')} / "
                            f"{fmt(figures.get('health_p99_ms'), '.2f')}",
                        ],
                        ["/health max ms", fmt(figures.get("health_max_ms"), ".2f")],
                        [
                            "probes failed",
                            fmt(figures.get("health_failures", figures.get("failures")), "d"),
                        ],
                        ["goal p99 ≤ 50 ms met", str(figures.get("goal_met"))],
                    ],
                )
            )
    return "\n\n".join(parts)
