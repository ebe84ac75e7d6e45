"""Offered-load profiles: request rate as a piecewise-linear function of time."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

PROFILE_NAMES = ("step", "ramp", "spike", "course", "noisy")


@dataclass(frozen=True)
class Segment:
    duration: float
    start_rps: float
    end_rps: float


@dataclass(frozen=True)
class LoadProfile:
    name: str
    segments: tuple[Segment, ...]
    #: closed-loop workers on /load instead of open-loop arrivals (the course's generator)
    closed_loop_workers: int = 0
    load_seconds: float = 10.0
    #: Poisson arrivals around the rate, reproducible from this seed; None: evenly spaced
    poisson_seed: int | None = None

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.segments)

    def rate_at(self, t: float) -> float:
        elapsed = 0.0
        for seg in self.segments:
            if t < elapsed + seg.duration:
                frac = (t - elapsed) / seg.duration if seg.duration else 0.0
                return seg.start_rps + (seg.end_rps - seg.start_rps) * frac
            elapsed += seg.duration
        return 0.0

    def load_active_at(self, t: float) -> bool:
        """For closed-loop profiles: workers run during segments with a non-zero rate."""
        return self.rate_at(t) > 0

    def arrivals(self) -> list[float]:
        """Arrival times whose density follows the rate (open loop): evenly spaced, or a
        Poisson process when the profile has a seed.

        Evenly spaced: an arrival is due each time the integral of the rate crosses the next
        whole request, so the offered load is exact and reproducible (no random bursts to blur
        the figures).
        """
        if self.poisson_seed is not None:
            return self._poisson_arrivals(self.poisson_seed)
        times: list[float] = []
        done = 0.0  # requests offered before the current segment
        next_due = 0.5  # centre each request in its slot
        offset = 0.0
        for seg in self.segments:
            # Requests offered by time x into the segment: r0*x + (r1-r0)*x^2/(2D).
            r0, slope = (
                seg.start_rps,
                (seg.end_rps - seg.start_rps) / seg.duration if seg.duration else 0.0,
            )
            in_segment = (r0 + seg.end_rps) / 2 * seg.duration
            while next_due <= done + in_segment:
                need = next_due - done
                if abs(slope) < 1e-12:
                    x = need / r0
                else:
                    x = (-r0 + math.sqrt(max(r0 * r0 + 2 * slope * need, 0.0))) / slope
                times.append(offset + x)
                next_due += 1.0
            done += in_segment
            offset += seg.duration
        return times

    def _poisson_arrivals(self, seed: int) -> list[float]:
        """A Poisson process of the profile's rate (thinning: candidates at the highest rate,
        each kept with probability rate/highest): the bursts and lulls of independent users.
        Bounded: candidates are drawn only within the profile's duration."""
        rng = random.Random(seed)  # noqa: S311 (load, not secrets: reproducible on purpose)
        highest = max((max(s.start_rps, s.end_rps) for s in self.segments), default=0.0)
        times: list[float] = []
        if highest <= 0:
            return times
        t = rng.expovariate(highest)
        while t < self.duration:
            if rng.random() * highest < self.rate_at(t):
                times.append(t)
            t += rng.expovariate(highest)
        return times

    def scaled(self, speed: float) -> LoadProfile:
        """The same shape in 1/speed of the time (rates unchanged: work per request is real)."""
        return LoadProfile(
            name=self.name,
            segments=tuple(
                Segment(s.duration / speed, s.start_rps, s.end_rps) for s in self.segments
            ),
            closed_loop_workers=self.closed_loop_workers,
            load_seconds=self.load_seconds / speed,
            # Same rate, 1/speed of the time: a sped-up run draws 1/speed as many arrivals.
            poisson_seed=self.poisson_seed,
        )


def make_profile(
    name: str, *, base_rps: float, peak_rps: float, duration: float, seed: int = 1
) -> LoadProfile:
    """Standard shapes over `duration` seconds (at production speed).

    step: quiet, a sudden step to the peak held for half the run, then quiet again;
    ramp: linear climb to the peak and back down; spike: a short burst in a quiet run;
    course: 10 closed-loop workers on /load during the middle half (the course's generator);
    noisy: Poisson arrivals (from `seed`) around the peak rate for the whole run, no quiet
    part: a steady load whose bursts and lulls a scaler must not chase.
    """
    if duration <= 0 or base_rps < 0 or peak_rps < base_rps:
        raise ValueError("need duration > 0 and 0 <= base_rps <= peak_rps")
    q = duration / 8
    segments: tuple[Segment, ...]
    if name == "step":
        segments = (
            Segment(q, base_rps, base_rps),
            Segment(4 * q, peak_rps, peak_rps),
            Segment(3 * q, base_rps, base_rps),
        )
    elif name == "ramp":
        segments = (
            Segment(q, base_rps, base_rps),
            Segment(3 * q, base_rps, peak_rps),
            Segment(q, peak_rps, peak_rps),
            Segment(3 * q, peak_rps, base_rps),
        )
    elif name == "spike":
        segments = (
            Segment(2 * q, base_rps, base_rps),
            Segment(q, peak_rps, peak_rps),
            Segment(5 * q, base_rps, base_rps),
        )
    elif name == "noisy":
        return LoadProfile(
            name="noisy", segments=(Segment(duration, peak_rps, peak_rps),), poisson_seed=seed
        )
    elif name == "course":
        return LoadProfile(
            name="course",
            segments=(Segment(q, 0, 0), Segment(4 * q, 1, 1), Segment(3 * q, 0, 0)),
            closed_loop_workers=10,
        )
    else:
        raise ValueError(f"unknown profile {name!r} (known: {', '.join(PROFILE_NAMES)})")
    return LoadProfile(name=name, segments=segments)
