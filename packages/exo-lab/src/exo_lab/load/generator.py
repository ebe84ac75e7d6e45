"""Open-loop load against a URL: requests leave on schedule, whatever the server does.

Latency is measured from each request's *scheduled* time, so a slow server cannot slow the
generator down and hide its own queueing (no coordinated omission). In-flight requests are
capped; an arrival that finds the cap reached is counted as failed (`client-overload`), never
delayed. Every run is bounded by its profile's duration plus one request timeout.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .profiles import LoadProfile


@dataclass
class RequestResult:
    scheduled: float  # seconds since the run started
    latency: float  # seconds from scheduled time to the end of the answer
    status: int  # HTTP status; 0 when no answer (timeout, refused, client overload)
    served_by: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class SecondStats:
    """What finished during one wall-clock second of the run (for live progress)."""

    t: int
    offered_rps: float
    completed: int = 0
    ok: int = 0
    failed: int = 0
    p50: float | None = None
    p95: float | None = None
    served_by: dict[str, int] = field(default_factory=dict)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


class OpenLoopLoad:
    def __init__(
        self,
        target: str,
        profile: LoadProfile,
        *,
        timeout: float = 10.0,
        max_in_flight: int = 512,
        on_second: Callable[[SecondStats], None] | None = None,
    ) -> None:
        self.target = target
        self.profile = profile
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.on_second = on_second
        self.results: list[RequestResult] = []
        self._in_flight = 0
        self._start = 0.0

    async def run(self) -> list[RequestResult]:
        # A new connection per request, as from many independent users: the NLB balances
        # connections (layer 4), so kept-alive connections would pin load to old members.
        limits = httpx.Limits(max_connections=self.max_in_flight, max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=self.timeout, limits=limits) as client:
            self._start = time.monotonic()
            reporter = asyncio.create_task(self._report_every_second())
            try:
                if self.profile.closed_loop_workers:
                    await self._closed_loop(client)
                else:
                    await self._open_loop(client)
            finally:
                reporter.cancel()
        self._emit_second(int(time.monotonic() - self._start))
        return self.results

    async def _open_loop(self, client: httpx.AsyncClient) -> None:
        tasks: set[asyncio.Task[None]] = set()
        for due in self.profile.arrivals():
            delay = self._start + due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self._in_flight >= self.max_in_flight:
                self.results.append(RequestResult(due, 0.0, 0, error="client-overload"))
                continue
            task = asyncio.create_task(self._one(client, self.target, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=self.timeout + 1)

    async def _closed_loop(self, client: httpx.AsyncClient) -> None:
        """The course's generator: N workers each calling /load back to back while active."""
        url = self.target.rstrip("/") + f"/load?seconds={max(self.profile.load_seconds, 0.05):g}"
        end = self._start + self.profile.duration

        async def worker() -> None:
            while (now := time.monotonic()) < end:
                if not self.profile.load_active_at(now - self._start):
                    await asyncio.sleep(0.05)
                    continue
                await self._one(client, url, now - self._start)

        await asyncio.wait_for(
            asyncio.gather(*(worker() for _ in range(self.profile.closed_loop_workers))),
            timeout=self.profile.duration + self.timeout + 1,
        )

    async def _one(self, client: httpx.AsyncClient, url: str, due: float) -> None:
        self._in_flight += 1
        try:
            response = await client.get(url)
            served_by = ""
            if response.headers.get("content-type", "").startswith("application/json"):
                try:
                    served_by = str(response.json().get("instance", ""))
                except ValueError:
                    served_by = ""
            result = RequestResult(due, 0.0, response.status_code, served_by)
        except httpx.HTTPError as exc:
            result = RequestResult(due, 0.0, 0, error=type(exc).__name__)
        finally:
            self._in_flight -= 1
        result.latency = time.monotonic() - self._start - due
        self.results.append(result)

    async def _report_every_second(self) -> None:
        second = 0
        while True:
            second += 1
            await asyncio.sleep(max(0.0, self._start + second - time.monotonic()))
            self._emit_second(second - 1)

    def _emit_second(self, second: int) -> None:
        if self.on_second is None:
            return
        finished = [r for r in self.results if second <= r.scheduled + r.latency < second + 1]
        latencies = [r.latency for r in finished if r.ok]
        self.on_second(
            SecondStats(
                t=second,
                offered_rps=self.profile.rate_at(second + 0.5),
                completed=len(finished),
                ok=sum(r.ok for r in finished),
                failed=sum(not r.ok for r in finished),
                p50=percentile(latencies, 50),
                p95=percentile(latencies, 95),
                served_by=dict(Counter(r.served_by for r in finished if r.served_by)),
            )
        )


def summarize(results: list[RequestResult]) -> dict[str, Any]:
    latencies = [r.latency for r in results if r.ok]
    errors = Counter(r.error or str(r.status) for r in results if not r.ok)
    return {
        "requests": len(results),
        "ok": len(latencies),
        "failed": len(results) - len(latencies),
        "errors": dict(errors),
        "latency_p50": percentile(latencies, 50),
        "latency_p95": percentile(latencies, 95),
        "latency_p99": percentile(latencies, 99),
    }


def write_results(path: Path, results: list[RequestResult]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w") as out:
        for result in sorted(results, key=lambda r: r.scheduled):
            out.write(json.dumps(asdict(result)) + "\n")
    tmp.replace(path)


def run_load(
    target: str,
    profile: LoadProfile,
    *,
    timeout: float = 10.0,
    on_second: Callable[[SecondStats], None] | None = None,
) -> list[RequestResult]:
    return asyncio.run(OpenLoopLoad(target, profile, timeout=timeout, on_second=on_second).run())
