"""What load a measured run offers, and the generator's command line for it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .profiles import LoadProfile, make_profile

#: how long a client waits for an answer, production seconds (the generator's default)
CLIENT_TIMEOUT = 10.0
#: the least a sped-up client waits, wall seconds: above any real answer the lab gives (a
#: quarter core serves 50 ms of CPU in ~0.2 s; slow-web's bounded queue keeps the slowest
#: served answer near 1.2 s), so the floor never fails a request a ×1 client would get
TIMEOUT_FLOOR = 2.0


def client_timeout(speed: float, production: float = CLIENT_TIMEOUT) -> float:
    """The generator's timeout at `speed`, wall seconds: a wait is production time like every
    other duration (a request hung for 10 s at ×1 hangs 1 s at ×10), but never below the
    floor, since the answer itself is real work that --speed does not shorten."""
    if speed <= 0 or production <= 0:
        raise ValueError("speed and timeout must be positive")
    return max(production / speed, min(production, TIMEOUT_FLOOR))


@dataclass(frozen=True)
class LoadPlan:
    """A profile against a URL: rates in requests per second, `duration` in production
    seconds, run `speed` times faster (rates unchanged: the work per request is real)."""

    url: str
    profile: str
    duration: float
    speed: float
    base_rps: float
    peak_rps: float
    #: the Poisson profile's seed (noisy); the others ignore it
    seed: int = 1

    @classmethod
    def in_members(
        cls,
        url: str,
        profile: str,
        *,
        duration: float,
        speed: float,
        base_members: float,
        peak_members: float,
        member_rps: float,
        seed: int = 1,
    ) -> LoadPlan:
        """Rates given in members' worth: `member_rps` is one member's rate at the 80 % line."""
        return cls(
            url,
            profile,
            duration,
            speed,
            base_members * member_rps,
            peak_members * member_rps,
            seed,
        )

    @property
    def timeout(self) -> float:
        """The generator's wait for an answer, wall seconds (client_timeout)."""
        return client_timeout(self.speed)

    def shape(self) -> LoadProfile:
        """The profile as the generator runs it (lab seconds)."""
        return make_profile(
            self.profile,
            base_rps=self.base_rps,
            peak_rps=self.peak_rps,
            duration=self.duration,
            seed=self.seed,
        ).scaled(self.speed)

    def command(self, progress: Path, results: Path) -> list[str]:
        """`exo-lab load` as a child process, so its work never competes with the sampler."""
        return [
            sys.executable, "-m", "exo_lab", "load", "--target", self.url,
            "--profile", self.profile, "--duration", f"{self.duration:g}",
            "--speed", f"{self.speed:g}",
            "--base-rps", f"{self.base_rps:g}", "--peak-rps", f"{self.peak_rps:g}",
            "--timeout", f"{self.timeout:g}", "--seed", str(self.seed),
            "--progress", str(progress), "--results", str(results),
        ]  # fmt: skip
