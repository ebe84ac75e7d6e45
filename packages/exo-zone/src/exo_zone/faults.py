"""Injectable API faults: error answers and latency, at a rate, on chosen operations."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FaultPlan:
    rate: float = 0.0
    statuses: tuple[int, ...] = (503,)
    latency: float = 0.0
    operations: frozenset[str] = field(default_factory=frozenset)  # empty: every operation
    seed: int | None = None
    injected: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        if self.latency < 0:
            raise ValueError("latency must be >= 0")
        if not self.statuses or any(not 400 <= s <= 599 for s in self.statuses):
            raise ValueError("statuses must be HTTP error codes (4xx/5xx)")
        self._random = random.Random(self.seed)  # noqa: S311

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> FaultPlan:
        return cls(
            rate=float(body.get("rate", 0.0)),
            statuses=tuple(int(s) for s in body.get("statuses", (503,))),
            latency=float(body.get("latency", 0.0)),
            operations=frozenset(str(o) for o in body.get("operations", ())),
            seed=body.get("seed"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "statuses": list(self.statuses),
            "latency": self.latency,
            "operations": sorted(self.operations),
            "injected": self.injected,
        }

    def applies_to(self, operation: str) -> bool:
        return not self.operations or operation in self.operations

    def draw_error(self, operation: str) -> int | None:
        """The status to answer with instead of doing the work, or None."""
        if self.rate and self.applies_to(operation) and self._random.random() < self.rate:
            self.injected += 1
            return self._random.choice(self.statuses)
        return None
