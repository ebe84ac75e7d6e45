"""pytest fixtures shared by every package (registered through the pytest11 entry point)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .zone import RunningZone, running_zone


@pytest.fixture
def lab_zone() -> Iterator[RunningZone]:
    """A record-only lab zone with one pool `web` of 2 members, served on loopback."""
    with running_zone({"web": 2}) as zone:
        yield zone
