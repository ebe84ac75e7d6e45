"""What load a measured run offers, and the generator's command line for it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .profiles import LoadProfile, make_profile


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
    ) -> LoadPlan:
        """Rates given in members' worth: `member_rps` is one member's rate at the 80 % line."""
        return cls(
            url, profile, duration, speed, base_members * member_rps, peak_members * member_rps
        )

    def shape(self) -> LoadProfile:
        """The profile as the generator runs it (lab seconds)."""
        return make_profile(
            self.profile, base_rps=self.base_rps, peak_rps=self.peak_rps, duration=self.duration
        ).scaled(self.speed)

    def command(self, progress: Path, results: Path) -> list[str]:
        """`exo-lab load` as a child process, so its work never competes with the sampler."""
        return [
            sys.executable, "-m", "exo_lab", "load", "--target", self.url,
            "--profile", self.profile, "--duration", f"{self.duration:g}",
            "--speed", f"{self.speed:g}",
            "--base-rps", f"{self.base_rps:g}", "--peak-rps", f"{self.peak_rps:g}",
            "--progress", str(progress), "--results", str(results),
        ]  # fmt: skip
