"""The demand strategy on its own: the need, the first step to 2, scale-in from the window,
the CPU fallback, and what retrying clients and a dying member do to the estimate."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import pytest

from exo_scaler.decision import Decision, Direction, Reason, evaluate
from exo_scaler.intents import Intent
from exo_scaler.record import DecisionRecord
from exo_scaler.settings import ScalerSettings
from exo_scaler.strategy.base import Inputs
from exo_scaler.strategy.demand import Seen, demand, estimate, growth_limit
from exo_scaler.target import Member, MemberState, PoolStatus

UP, DOWN = Direction.UP, Direction.DOWN
NOW = 1_764_870_000.0
PER_REQUEST = 0.1  # CPU-s a request: a 1-core member carries 10 req/s at 100 %, 8 at 80 %
AT_80 = 1 / PER_REQUEST * 0.8  # req/s one member carries at the 80 % line


def worth(members: float) -> float:
    """Arrivals of `members` members' worth at the 80 % line (the benchmark's unit)."""
    return members * AT_80


def signals(arrivals: float, serving: int, *, cpu: float = 99.0, age: float = 5.0,
            per_request: float = PER_REQUEST) -> dict[str, float]:  # fmt: skip
    return {"cpu": cpu, "arrivals": arrivals, "cpu_per_request": per_request,
            "serving": serving, "evaluated_at": NOW - age}  # fmt: skip


def intent(direction: Direction, measured: Mapping[str, float]) -> Intent:
    return Intent(direction, NOW - 3, NOW - 1, "grafana", value=measured.get("cpu"),
                  value_at=NOW - 1, signals=dict(measured), signals_at=NOW - 1)  # fmt: skip


@pytest.fixture
def settings(make_settings: Callable[..., ScalerSettings]) -> ScalerSettings:
    return make_settings(policy="demand", max_size=10, interval=60.0, max_step=2)


def decide(
    settings: ScalerSettings,
    direction: Direction,
    size: int,
    measured: Mapping[str, float],
    **more: Any,
) -> Decision:
    return evaluate((intent(direction, measured),), PoolStatus(size, "running"), settings,
                    now=NOW, **more)  # fmt: skip


def inputs(settings: ScalerSettings, direction: Direction, size: int,
           measured: Mapping[str, float], **more: Any) -> Inputs:  # fmt: skip
    return Inputs((intent(direction, measured),), PoolStatus(size, "running"), settings,
                  now=NOW, **more)  # fmt: skip


@pytest.mark.parametrize(("members", "need"), [(1.6, 2), (2.6, 3), (3.5, 4), (4.4, 5)])
def test_the_need_is_arrivals_times_cost_over_the_80_percent_line(
    settings: ScalerSettings, members: float, need: int
) -> None:
    # Two members serve, saturated; CPU alone says ceil(2 × 99 / 70) = 3.
    decision = decide(settings, UP, 2, signals(worth(members), 2))
    assert decision.wish is not None and decision.wish.need == need
    assert decision.to_size == max(need, 3)  # never below what CPU says
    assert decision.reason is Reason.SCALED
    assert decision.wish.fallback is None


def test_from_one_member_two_first_then_the_need_in_one_round(settings: ScalerSettings) -> None:
    first = decide(settings, UP, 1, signals(worth(4.4), 1))
    assert (first.to_size, first.wish and first.wish.need) == (2, 5)
    # Once that operation has ended (the pool is running at 2, the new member still boots):
    # straight to the need, the step limit does not cut it to +2.
    then = decide(settings, UP, 2, signals(worth(4.4), 1), warming=1, provisioning=1)
    assert (then.to_size, then.reason) == (5, Reason.SCALED)
    assert [c.cap for c in then.capped_by] == []
    # ... but never past max.
    small = decide(replace(settings, max_size=4), UP, 2, signals(worth(4.4), 1), warming=1)
    assert (small.to_size, [c.cap for c in small.capped_by]) == (4, ["bounds"])


def test_one_member_that_covers_the_need_is_held(settings: ScalerSettings) -> None:
    """A stray shed fires the shedding rule for a minute (its rate window) on a member far
    below the line: no 2-first step when one member covers the need and CPU."""
    stray = decide(settings, UP, 1, signals(worth(0.5), 1, cpu=45.0))
    assert (stray.to_size, stray.reason) == (1, Reason.AT_NEED)
    assert stray.wish is not None and "the pool of 1 covers it" in stray.wish.why
    # The need says 1 but CPU on the one member is over the line: 2 first, as ever.
    hot = decide(settings, UP, 1, signals(worth(0.5), 1, cpu=85.0))
    assert (hot.to_size, hot.reason) == (2, Reason.SCALED)


def test_members_provisioning_count_as_capacity(settings: ScalerSettings) -> None:
    # 5 asked for, 3 of them still provisioning: the need (5) is covered, the alert firing on
    # the 2 serving adds nothing.
    held = decide(settings, UP, 5, signals(worth(4.4), 2), warming=3, provisioning=3)
    assert (held.to_size, held.reason) == (5, Reason.AT_NEED)
    assert held.wish is not None and "3 of them warming" in held.wish.why
    more = decide(settings, UP, 5, signals(worth(6.5), 2), warming=3, provisioning=3)
    assert (more.to_size, more.reason) == (7, Reason.SCALED)  # the need says more: 7


def test_an_alert_on_a_pool_that_covers_the_need_adds_nothing(settings: ScalerSettings) -> None:
    # The 4th member serves and is measured: CPU 70 % on 4 (below the rule), but the alert
    # still fires on the 1 m rate window that ends as the load falls, or on the three serving
    # while the fourth boots. The need (4) is the pool: no +1 for the alert (it went 4 -> 5).
    stale = decide(settings, UP, 4, signals(worth(3.5), 4, cpu=70.0))
    assert (stale.to_size, stale.reason) == (4, Reason.AT_NEED)
    assert stale.wish is not None and "the pool of 4 covers it" in stale.wish.why
    booting = decide(settings, UP, 4, signals(worth(3.5), 3, cpu=85.0), warming=1, provisioning=1)
    assert (booting.to_size, booting.reason) == (4, Reason.AT_NEED)
    assert booting.wish is not None and "1 of them warming" in booting.wish.why
    # The same fourth member, past --warm-up-limit and still not serving: lost, +1.
    lost = decide(settings, UP, 4, signals(worth(3.5), 3, cpu=85.0))
    assert (lost.to_size, lost.reason) == (5, Reason.SCALED)
    assert lost.wish is not None and "1 of 4 neither serve nor warm" in lost.wish.why
    # Every member serving over the 80 % line: CPU alone asks for more (ceil(4 × 85 / 70)).
    hot = decide(settings, UP, 4, signals(worth(3.5), 4, cpu=85.0))
    assert (hot.to_size, hot.reason) == (5, Reason.SCALED)


def test_a_member_the_nlb_passes_but_the_signals_miss_is_capacity(
    settings: ScalerSettings,
) -> None:
    # Seen at ×10: 1 → 2 → 4; the NLB passes the original and one new member, two of ours
    # still boot (warming 2), and the signals, a scrape behind, still count 1 serving. That
    # is 4 of 4, not "1 of 4 lost".
    states = [MemberState.SERVING] * 2 + [MemberState.WARMING] * 2
    members = tuple(Member(f"m{i}", state) for i, state in enumerate(states))
    status = PoolStatus(4, "running", members=members)
    found = evaluate((intent(UP, signals(worth(3.5), 1)),), status, settings, now=NOW,
                     warming=2, provisioning=2)  # fmt: skip
    assert (found.to_size, found.reason) == (4, Reason.AT_NEED)
    assert found.wish is not None and "covers it" in found.wish.why


def test_a_stale_cpu_value_is_no_floor_while_ours_warm(settings: ScalerSettings) -> None:
    # The four just serve, not measured yet: 75 % averages a window that began before they
    # took load. The need (4) stands; CPU would say ceil(4 × 75 / 70) = 5.
    warm = decide(settings, UP, 4, signals(worth(3.5), 4, cpu=75.0), warming=3)
    assert (warm.to_size, warm.reason) == (4, Reason.AT_NEED)
    measured = decide(settings, UP, 4, signals(worth(3.5), 4, cpu=75.0))
    assert (measured.to_size, measured.reason) == (5, Reason.SCALED)


def test_scale_in_from_the_largest_need_over_the_window(settings: ScalerSettings) -> None:
    quiet = signals(worth(1.5), 4, cpu=15.0)
    history = (Seen(NOW - 200, 4, 4, False, 4), Seen(NOW - 100, 3, 4, False, 4))
    kept = decide(settings, DOWN, 4, quiet, history=history)
    assert (kept.to_size, kept.reason) == (4, Reason.AT_NEED)
    down = decide(settings, DOWN, 4, quiet, history=history[1:])
    assert (down.to_size, down.reason) == (3, Reason.SCALED)
    # At most 2 a tick, whatever the need.
    idle = decide(settings, DOWN, 5, signals(worth(0.2), 5, cpu=2.0))
    assert (idle.wish and idle.wish.size, idle.to_size) == (1, 3)
    assert [c.cap for c in idle.capped_by] == ["step-limit"]


def test_no_scale_in_while_shedding_or_warming(settings: ScalerSettings) -> None:
    # A member died: 2 serve what 3 carried, CPU averaged over a window still low.
    shedding = decide(settings, DOWN, 3, signals(worth(3.0), 2, cpu=18.0))
    assert (shedding.to_size, shedding.reason) == (3, Reason.AT_NEED)
    assert shedding.wish is not None and "shedding" in shedding.wish.why
    warming = decide(settings, DOWN, 4, signals(worth(1.0), 3, cpu=10.0), provisioning=1)
    assert (warming.to_size, warming.reason) == (4, Reason.AT_NEED)
    assert warming.wish is not None and "provisioning" in warming.wish.why


@pytest.mark.parametrize(
    ("measured", "why"),
    [
        ({"cpu": 99.0}, "no arrivals, cpu_per_request, serving signal"),
        ({}, "no arrivals, cpu_per_request, serving signal"),
        (signals(worth(3), 1, age=181.0), "signals 181s old, over the 180s limit"),
        (signals(0, 0, per_request=0), "arrivals, cpu_per_request, serving unknown (0)"),
        (signals(worth(3), 0), "serving unknown (0)"),
    ],
)
def test_missing_stale_or_unknown_signals_fall_back_to_the_cpu_policy(
    settings: ScalerSettings, measured: dict[str, float], why: str
) -> None:
    decision = decide(settings, UP, 2, measured)
    assert decision.wish is not None and decision.wish.fallback == why
    assert decision.wish.why.startswith(f"CPU policy ({why})")
    proportional = decide(replace(settings, policy="proportional"), UP, 2, measured)
    assert decision.to_size == proportional.to_size  # exactly what the CPU policy does
    line = DecisionRecord.of(decision, wall_time=NOW).to_json()
    assert line["wish"]["fallback"] == why  # visible in the record


def test_the_record_shows_the_signals_used_and_their_age(settings: ScalerSettings) -> None:
    decision = decide(settings, UP, 2, signals(worth(4.4), 2, age=12.0))
    line = DecisionRecord.of(decision, wall_time=NOW).to_json()
    assert line["signals"] == signals(worth(4.4), 2, age=12.0)
    assert line["signals_age"] == pytest.approx(12.0)
    assert (line["wish"]["need"], line["wish"]["fallback"]) == (5, None)
    assert "35.2 req/s" in line["wish"]["why"]
    assert DecisionRecord.from_json(line) == DecisionRecord.of(decision, wall_time=NOW)


# -- real clients ------------------------------------------------------------------------------


def retrying_arrivals(distinct: float, capacity: float, retries: int) -> float:
    """Requests/s arriving when `distinct` requests/s are offered to members that serve
    `capacity` and shed the rest, each shed request tried again up to `retries` times (every
    attempt shed with the same probability s). Steady state: served = distinct × (1 − s^(r+1))
    = capacity, arrivals = distinct × (1 + s + … + s^r)."""
    if distinct <= capacity:
        return distinct
    shed = (1 - capacity / distinct) ** (1 / (retries + 1))
    return distinct * sum(shed**i for i in range(retries + 1))


@pytest.mark.parametrize("retries", [0, 1, 3, 10])
def test_retrying_clients_cannot_run_the_pool_away(settings: ScalerSettings, retries: int) -> None:
    """4.4 members' worth (oracle: 5) on one serving member. Retries multiply the arrivals
    while it sheds; the estimate stays within the growth limit while new members provision,
    does not grow tick after tick, and is the true need once they serve."""
    distinct, true_need = worth(4.4), 5
    limit = math.ceil(growth_limit(1) / 0.8)  # 5 members at 100 % → 7 at the 80 % line
    needs = []
    for _tick in range(5):  # the new members provision: still one serves
        arrivals = retrying_arrivals(distinct, 1 / PER_REQUEST, retries)
        found = estimate(inputs(settings, UP, 2, signals(arrivals, 1), warming=1))
        assert not isinstance(found, str)
        needs.append(found.need)
    assert len(set(needs)) == 1 and true_need <= needs[0] <= limit
    if retries >= 3:  # without the bound the estimate would have sent the pool to max
        unbounded = math.ceil(retrying_arrivals(distinct, 10, retries) * PER_REQUEST / 0.8)
        assert unbounded > 10
    served = 7 * (1 / PER_REQUEST)  # all of them serve now: no shedding, no retries
    after = estimate(inputs(settings, UP, 7, signals(retrying_arrivals(distinct, served,
                                                                       retries), 7)))  # fmt: skip
    assert not isinstance(after, str) and after.need == true_need


@pytest.mark.parametrize("retries", [0, 3])
def test_a_member_dying_under_load_does_not_make_the_estimate_jump(
    settings: ScalerSettings, retries: int
) -> None:
    distinct = worth(4.8)  # five members carry it at 77 %: need 5
    clean = estimate(inputs(settings, UP, 5, signals(distinct, 5)))
    assert not isinstance(clean, str) and (clean.need, clean.shedding) == (5, False)
    seen = Seen(NOW - 60, clean.need, 5, clean.shedding, 5)
    # Two die: three serve, shedding; their clients retry on the survivors.
    arrivals = retrying_arrivals(distinct, 3 / PER_REQUEST, retries)
    after = estimate(inputs(settings, UP, 5, signals(arrivals, 3), history=(seen,)))
    assert not isinstance(after, str) and after.shedding
    assert after.need == 5
    if retries:
        assert after.held_by == seen  # it would have said 9 (70 req/s counted)
    wish = demand(inputs(settings, UP, 5, signals(arrivals, 3), history=(seen,)))
    # The need stays 5, but only 3 of the 5 serve and none warms: the capacity is short, so
    # the alert adds one (an instance pool does not replace a crashed app on a running VM).
    assert (wish.size, wish.desired) == (6, 6)
    assert "2 of 5 neither serve nor warm: +1" in wish.why


def test_a_pool_we_scaled_in_is_not_a_member_lost(settings: ScalerSettings) -> None:
    """Two members served 1.5 members' worth in a pool of 4 before we scaled in to 2; a new
    step on the 2 is demand, not a loss: the need is not held at the old one."""
    before = Seen(NOW - 60, 2, 4, False, 4)
    step = retrying_arrivals(worth(4.4), 2 / PER_REQUEST, 3)
    found = estimate(inputs(settings, UP, 2, signals(step, 2), history=(before,)))
    assert not isinstance(found, str) and found.held_by is None
    assert found.need == math.ceil(growth_limit(2) / 0.8)  # 6 members' worth counted: 8
