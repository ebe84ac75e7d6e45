"""`exo-lab load`: open-loop load against a URL."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..load.generator import SecondStats, run_load, summarize, write_results
from ..load.profiles import PROFILE_NAMES, make_profile
from . import fail, main


@main.command()
@click.option("--target", required=True, help="Base URL, e.g. http://<nlb-ip>/")
@click.option("--profile", type=click.Choice(PROFILE_NAMES), default="step", show_default=True)
@click.option("--duration", type=click.FloatRange(1), default=600.0, show_default=True,
              help="Seconds of load at production speed.")  # fmt: skip
@click.option("--speed", type=click.FloatRange(0.1, 60), default=1.0, show_default=True)
@click.option("--base-rps", type=click.FloatRange(0), default=1.0, show_default=True)
@click.option("--peak-rps", type=click.FloatRange(0), default=20.0, show_default=True)
@click.option("--timeout", type=click.FloatRange(0.1, 120), default=10.0, show_default=True,
              help="Seconds to wait for an answer (wall time).")  # fmt: skip
@click.option("--seed", type=click.IntRange(0), default=1, show_default=True,
              help="The noisy profile's Poisson arrivals are drawn from this seed.")  # fmt: skip
@click.option("--progress", type=click.Path(path_type=Path), default=None,
              help="Append one JSON line per second here.")  # fmt: skip
@click.option("--results", type=click.Path(path_type=Path), default=None,
              help="Write every request's result here (JSON lines).")  # fmt: skip
def load(
    target: str,
    profile: str,
    duration: float,
    speed: float,
    base_rps: float,
    peak_rps: float,
    timeout: float,
    seed: int,
    progress: Path | None,
    results: Path | None,
) -> None:
    """Open-loop load against TARGET: the lab's NLB or a real deployment's (http://<nlb-ip>/)."""
    if not target.startswith(("http://", "https://")):
        raise click.BadParameter("must be an http(s) URL", param_hint="--target")
    try:
        shape = make_profile(
            profile, base_rps=base_rps, peak_rps=peak_rps, duration=duration, seed=seed
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    shape = shape.scaled(speed)
    try:
        progress_handle = progress.open("a") if progress else None
    except OSError as exc:
        message = f"cannot open {progress}: {exc.strerror}"
        raise click.BadParameter(message, param_hint="--progress") from None

    def on_second(stats: SecondStats) -> None:
        line = json.dumps(stats.__dict__)
        if progress_handle:
            progress_handle.write(line + "\n")
            progress_handle.flush()
        else:
            click.echo(line)

    try:
        outcome = run_load(target, shape, timeout=timeout, on_second=on_second)
    finally:
        if progress_handle:
            progress_handle.close()
    if results:
        try:
            write_results(results, outcome)
        except OSError as exc:
            fail("load", f"cannot write {results}: {exc.strerror}; choose a writable --results")
    click.echo(json.dumps(summarize(outcome)), err=progress is not None)
