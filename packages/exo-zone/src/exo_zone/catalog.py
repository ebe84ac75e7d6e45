"""The instance types the lab zone offers: Exoscale's standard family, sizes as sold."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceType:
    id: str
    family: str
    size: str
    cpus: int
    memory: int  # bytes

    @property
    def name(self) -> str:
        """`standard.tiny`: how the CLI and Terraform name it."""
        return f"{self.family}.{self.size}"

    def to_api(self, zone: str) -> dict[str, object]:
        return {
            "id": self.id,
            "family": self.family,
            "size": self.size,
            "cpus": self.cpus,
            "memory": self.memory,
            "authorized": True,
            "zones": [zone],
        }


def _type(size: str, cpus: int, memory_gib: float) -> InstanceType:
    # Stable ids, so a lab restarted with the same catalog answers with the same ids.
    return InstanceType(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"exo-lab/instance-type/standard.{size}")),
        family="standard",
        size=size,
        cpus=cpus,
        memory=int(memory_gib * 1024**3),
    )


INSTANCE_TYPES: tuple[InstanceType, ...] = (
    _type("micro", 1, 0.5),
    _type("tiny", 1, 1),
    _type("small", 2, 2),
    _type("medium", 2, 4),
    _type("large", 4, 8),
)


def instance_type_by_name(name: str) -> InstanceType:
    """`standard.tiny` or just `tiny`."""
    size = name.split(".", 1)[-1]
    for itype in INSTANCE_TYPES:
        if itype.size == size:
            return itype
    known = ", ".join(f"standard.{t.size}" for t in INSTANCE_TYPES)
    raise ValueError(f"unknown instance type {name!r} (known: {known})")
