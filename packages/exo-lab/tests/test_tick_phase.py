"""The load is put at a phase of the scaler's tick, seen from outside through `/status`: here
against the reactive limit's real app and its ticking thread, on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from exo_client import NO_RETRY, ExoClient
from exo_lab.bench.limit import LimitScaler, LimitSettings, create_app
from exo_lab.stack.tick_phase import NoTick, align_to_tick
from exo_testkit import running_zone
from exo_zone import serve_in_thread

INTERVAL = 0.5


@contextmanager
def ticking_limit(tmp_path: Path, *, ticking: bool = True) -> Iterator[tuple[str, list[float]]]:
    """The limit's /status URL and the monotonic times its ticks began."""
    settings = LimitSettings(pool="p", token="t", schedule=tmp_path / "none.json",
                             interval=INTERVAL)  # fmt: skip
    with running_zone({"web": 1}) as rz:
        scaler = LimitScaler(settings, ExoClient(rz.settings, retry=NO_RETRY))
        began: list[float] = []
        tick = scaler.tick

        def timed_tick() -> object:
            began.append(time.monotonic())
            return tick()

        scaler.tick = timed_tick  # type: ignore[method-assign]
        stop = threading.Event()
        ticker = threading.Thread(target=scaler.run_ticks, args=(stop,), daemon=True)
        with serve_in_thread(create_app(scaler)) as url:
            if ticking:
                ticker.start()
            try:
                yield f"{url}/status", began
            finally:
                stop.set()
                if ticking:
                    ticker.join(timeout=5)


@pytest.mark.parametrize("phase", [0.0, 0.3, 0.7])
def test_the_wait_ends_at_the_asked_phase_after_a_real_tick(tmp_path: Path, phase: float) -> None:
    with ticking_limit(tmp_path) as (status_url, began):
        alignment = align_to_tick(status_url, INTERVAL, phase)
        last_tick = max(t for t in began if t <= alignment.tick_seen_monotonic)
    # Seen within a few polls of the tick, and the wait after it is the phase.
    assert alignment.tick_seen_monotonic - last_tick < 0.1
    assert alignment.ready_monotonic - last_tick == pytest.approx(phase * INTERVAL, abs=0.1)
    assert alignment.phase == phase


def test_a_scaler_that_does_not_tick_is_a_clear_error_within_two_ticks(tmp_path: Path) -> None:
    with ticking_limit(tmp_path, ticking=False) as (status_url, _):
        started = time.monotonic()
        with pytest.raises(NoTick, match="no tick of the scaler seen within 1 s: it did not tick"):
            align_to_tick(status_url, INTERVAL, 0.0)
        assert time.monotonic() - started < 2 * INTERVAL + 1


def test_a_status_without_a_tick_counter_is_a_clear_error(tmp_path: Path) -> None:
    with (
        ticking_limit(tmp_path) as (status_url, _),
        pytest.raises(NoTick, match="/nowhere does not say how many ticks ran"),
    ):
        align_to_tick(status_url.replace("/status", "/nowhere"), INTERVAL, 0.0)


def test_a_phase_outside_the_tick_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="within"):
        align_to_tick("http://127.0.0.1:9/status", INTERVAL, 1.0)


def test_a_lab_run_puts_only_a_ticking_scaler_at_the_asked_phase(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from exo_lab.measure import RunClock
    from exo_lab.stack.lab_probe import TickPhaseHook
    from exo_lab.stack.lab_stack import LabStack
    from exo_lab.stack.run import lab_hooks
    from exo_lab.stack.settings import LabSettings, ProductionTimings

    # A tick of 30 production s at ×60 is the fixture's 0.5 lab s.
    timings = ProductionTimings(tick=30.0)

    def stack(scaler: str, phase: float | None) -> LabStack:
        settings = LabSettings(out=tmp_path / scaler, speed=60.0, timings=timings,
                               scaler=scaler, tick_phase=phase)  # fmt: skip
        return LabStack(settings)

    # naive has no tick, and no phase asked is no wait: neither reads anything.
    assert stack("naive", 0.5).align_to_tick() is None
    assert stack("limit", None).align_to_tick() is None
    unphased = stack("limit", None)
    hooks = lab_hooks(SimpleNamespace(s=unphased.s, stack=unphased))  # type: ignore[arg-type]
    assert not any(isinstance(h, TickPhaseHook) for h in hooks)
    phased = stack("limit", 0.5)
    # First: its wait comes before what the others do as the load starts.
    hook = lab_hooks(SimpleNamespace(s=phased.s, stack=phased))[0]  # type: ignore[arg-type]
    assert isinstance(hook, TickPhaseHook)
    with ticking_limit(tmp_path) as (status_url, began):
        phased.scaler_url = status_url.removesuffix("/status")
        hook.before_load()
        hook.started(RunClock(time.monotonic(), time.time()))
        last_tick = max(began)
    assert phased.load_after_tick == pytest.approx(0.25, abs=0.1)
    assert phased.tick_alignment is not None
    assert phased.tick_alignment.tick_seen_monotonic - last_tick < 0.1
