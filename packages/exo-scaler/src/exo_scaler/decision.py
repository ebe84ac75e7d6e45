"""The evaluation: the policy's strategy, then the caps, as one `Decision`.

Pure: the tick's intents, the pool's one status read, the settings, pause and the members
warming in; the wish, each cap that changed it and the result out (nomad-autoscaler's strategy
then `CapCount`). The loop acts on an acting decision and records it (record.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from .caps import CapContext, Capped, apply_caps
from .intents import Direction, Intent
from .reason import Reason, action_label
from .settings import ScalerSettings
from .strategy import STRATEGIES, Inputs, Wish
from .strategy.demand import Seen
from .target import PoolStatus

__all__ = ["Decision", "Direction", "Reason", "action_label", "evaluate"]


@dataclass(frozen=True)
class Decision:
    action: Direction | None  # the direction wanted; None when nothing was
    from_size: int | None
    to_size: int | None
    reason: Reason
    intents: tuple[Intent, ...] = ()  # what the tick took, one per direction
    detail: str = ""
    policy: str = ""
    desired: int | None = None  # the size the measurement asked for (the wish's, or a baseline's)
    wish: Wish | None = None  # the strategy's, before the caps
    capped_by: tuple[Capped, ...] = ()  # each cap that changed the wish, in order
    warming: int = 0  # members asked for and not serving yet, counted as capacity

    @property
    def acts(self) -> bool:
        """True when the decision asks for a call to the API."""
        return self.reason is Reason.SCALED

    @property
    def value(self) -> float | None:
        return None if self.wish is None else self.wish.value

    def with_failure(self, reason: Reason, detail: str) -> Decision:
        """The same decision, reported as not carried out."""
        return replace(self, to_size=self.from_size, reason=reason, detail=detail)


def evaluate(
    intents: Sequence[Intent],
    status: PoolStatus,
    settings: ScalerSettings,
    *,
    paused: bool = False,
    warming: int = 0,
    provisioning: int = 0,
    now: float = 0.0,
    history: Sequence[Seen] = (),
) -> Decision:
    """Up wins over down; the strategy of `settings.policy` wishes, the caps bound the wish.

    `warming`: members of our last scale-up an up decision counts as capacity (warmup.py);
    `provisioning`: those not serving yet, whatever the direction; the step policy ignores
    both. `now` and `history` are the demand policy's (strategy/base.py `Inputs`).
    """
    taken = tuple(intents)
    size, policy = status.size, settings.policy
    if not taken:
        reason = Reason.PAUSED if paused else Reason.NO_INTENT
        return Decision(None, size, size, reason, policy=policy)
    warming = max(0, min(warming, size)) if policy != "step" else 0
    inputs = Inputs(taken, status, settings, warming, provisioning, now, history)
    wish = STRATEGIES[policy](inputs)
    ctx = CapContext(wish, status, settings, paused=paused, warming=warming)
    capping = apply_caps(ctx)
    last = capping.last
    if last is not None and last.reason is Reason.DRY_RUN:
        reason, detail = Reason.DRY_RUN, ""
    elif capping.size != size:
        reason, detail = Reason.SCALED, ""
    elif last is not None:
        reason, detail = last.reason, last.detail
    else:
        reason, detail = Reason.AT_NEED, wish.why
    return Decision(
        wish.direction, size, capping.size, reason, taken, detail, policy, wish.desired, wish,
        capping.trail, warming,
    )  # fmt: skip
