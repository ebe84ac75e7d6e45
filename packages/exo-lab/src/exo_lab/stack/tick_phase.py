"""Start a run's load at a chosen phase of the scaler's tick.

A scaler that ticks every 60 s acts on an alert at the first tick after it: the wait is the
alert's phase against the tick, anywhere in [0, 60) s. The lab's start-up takes about as long
in every run, so without this every repeat of a benchmark meets the tick at the same phase
and its median carries one fixed wait (it was 42–48 s in the sweep of 2026-12-05) instead of
a spread over the phase. The benchmark asks each repeat for another phase.

The tick is seen from outside, as a client sees it: `GET /status` and its `ticks` counter,
which exo-scaler and the reactive limit both keep.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from .settings import LabError

#: the pause between two reads of /status (lab seconds); the tick is seen within this and
#: one read's time (a few ms on loopback with one kept-alive connection)
_POLL_SECONDS = 0.005


class NoTick(LabError):
    """The scaler did not tick within the time it was given (or /status could not say)."""


@dataclass(frozen=True)
class TickAlignment:
    phase: float  # fraction of the tick asked for
    tick_seen_monotonic: float  # when the counter was seen to move
    ready_monotonic: float  # when the wait after it ended


def ticks_at(client: httpx.Client, status_url: str) -> int:
    """The scaler's tick counter from its `/status`."""
    try:
        body = client.get(status_url, timeout=2).json()
        return int(body["ticks"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise NoTick(f"{status_url} does not say how many ticks ran: {exc}") from None


def align_to_tick(status_url: str, interval: float, phase: float) -> TickAlignment:
    """Return `phase` × `interval` lab seconds after the scaler's next tick.

    Waits at most two intervals for the tick (a tick may be skipped once, never twice in a row
    by a scaler at rest) and raises NoTick after that. A read that fails is read again until
    then: one slow answer on a loaded machine must not end a benchmark's run.
    """
    if interval <= 0 or not 0 <= phase < 1:
        raise ValueError("need a positive interval and a phase within [0, 1)")
    deadline = time.monotonic() + 2 * interval
    first: int | None = None
    problem = "it did not tick"
    with httpx.Client() as client:
        while time.monotonic() < deadline:
            try:
                ticks = ticks_at(client, status_url)
            except NoTick as exc:
                problem = str(exc)
            else:
                if first is None:
                    first = ticks
                elif ticks != first:
                    seen = time.monotonic()
                    time.sleep(phase * interval)
                    return TickAlignment(phase, seen, time.monotonic())
            time.sleep(_POLL_SECONDS)
    raise NoTick(f"no tick of the scaler seen within {2 * interval:g} s: {problem}")
