"""What runs behind a zone's instance records.

The zone owns the API-visible state machine; a MemberRuntime makes members real (or not).
The zone calls `start` once a member's boot delay has passed (its VM is up). When the member
turns `running` is the runtime's choice:

- by default (`running_at_boot` absent or False) the zone reports it `running` once `is_ready`
  says its software answers: the historical lab behaviour, kinder than the cloud;
- a runtime with `running_at_boot = True` gets `running` from the boot timer alone, as on
  Exoscale where `running` is the VM's state and the app answers only after cloud-init's
  provisioning; `is_ready` then means "app healthy" and only feeds the zone's own NLB health
  (when no data plane reports health). exo-lab's two-stage lifecycle plugs in here.
`RecordRuntime` keeps members as records that boot after a delay: enough for the API contract
and the client's tests. `members.ProcessRuntime` starts real processes.
"""

from __future__ import annotations

from typing import Protocol


def runs_at_boot(runtime: object) -> bool:
    """Whether the zone reports the runtime's members `running` from the boot timer alone.

    An optional attribute rather than a Protocol member, so runtimes written before it keep
    type-checking and keep their behaviour.
    """
    return bool(getattr(runtime, "running_at_boot", False))


class MemberRuntime(Protocol):
    @property
    def cpu_cap(self) -> str | None:
        """How members are CPU-capped: cgroup-v1, cgroup-v2, uncapped; None for records."""

    def start(self, instance_id: str, address: str, vcpus: int, name: str | None = None) -> None:
        """Start the member's software at `address` (its VM has booted); returns at once."""

    def is_ready(self, instance_id: str) -> bool:
        """True once the member serves (its health check answers)."""

    def is_alive(self, instance_id: str) -> bool:
        """False when the member died by itself (the pool then replaces it)."""

    def kill(self, instance_id: str) -> None:
        """Make the member die at once, as a crashed VM (KeyError if unknown)."""

    def stop(self, instance_id: str) -> None:
        """Stop the member gracefully; returns once it is gone."""

    def close(self) -> None:
        """Stop everything this runtime started."""


class RecordRuntime:
    """Members that are only records: ready as soon as the zone's boot delay has passed.

    `running_at_boot`: with records the VM and the app come up together, so either reading of
    `running` gives the same answer; True keeps the zone on the cloud's reading.
    """

    cpu_cap: str | None = None
    running_at_boot = True

    def __init__(self) -> None:
        self.started: dict[str, str] = {}
        self.killed: set[str] = set()

    def start(self, instance_id: str, address: str, vcpus: int, name: str | None = None) -> None:
        self.started[instance_id] = address

    def is_ready(self, instance_id: str) -> bool:
        return instance_id in self.started

    def is_alive(self, instance_id: str) -> bool:
        return instance_id not in self.killed

    def stop(self, instance_id: str) -> None:
        self.started.pop(instance_id, None)
        self.killed.discard(instance_id)

    def kill(self, instance_id: str) -> None:
        """Simulate a member dying on its own."""
        if instance_id not in self.started:
            raise KeyError(instance_id)
        self.killed.add(instance_id)

    def close(self) -> None:
        self.started.clear()
