"""What runs behind a zone's instance records.

The zone owns the API-visible state machine; a MemberRuntime makes members real (or not).
`RecordRuntime` keeps members as records that boot after a delay: enough for the API contract
and the client's tests. The data plane supplies a runtime that starts real processes.
"""

from __future__ import annotations

from typing import Protocol


class MemberRuntime(Protocol):
    def start(self, instance_id: str, address: str, vcpus: int) -> None:
        """Begin booting a member at `address`; returns at once."""

    def is_ready(self, instance_id: str) -> bool:
        """True once the member serves (its health check answers)."""

    def is_alive(self, instance_id: str) -> bool:
        """False when the member died by itself (the pool then replaces it)."""

    def stop(self, instance_id: str) -> None:
        """Stop the member gracefully; returns once it is gone."""

    def close(self) -> None:
        """Stop everything this runtime started."""


class RecordRuntime:
    """Members that are only records: ready as soon as the zone's boot delay has passed."""

    def __init__(self) -> None:
        self.started: dict[str, str] = {}
        self.killed: set[str] = set()

    def start(self, instance_id: str, address: str, vcpus: int) -> None:
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
        self.killed.add(instance_id)

    def close(self) -> None:
        self.started.clear()
