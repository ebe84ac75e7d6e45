"""What a deployment costs: the one price table (infra/terraform/prices.json) and its sums.

Terraform's `cost_estimate_eur_per_hour` output reads the same file (outputs.tf), so a real
deployment's outputs already carry the per-member and fixed prices; the lab computes its own
estimate here with Terraform's formula, from the same table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .outputs import OutputsError

DEFAULT_PRICES = Path("infra/terraform/prices.json")

#: Terraform's defaults (variables.tf: pool_disk_size, monitor_disk_size, monitor_instance_type)
DISK_GIB = 10
MONITOR_TYPE = "standard.small"


def load_prices(path: Path = DEFAULT_PRICES) -> dict[str, float]:
    try:
        body = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise OutputsError(
            f"cannot read the price table {path}: {exc} (run from the repository root "
            "or pass --prices)"
        ) from None
    if not isinstance(body, dict) or not all(isinstance(v, int | float) for v in body.values()):
        raise OutputsError(f"{path}: expected a JSON object of EUR-per-hour numbers")
    return {str(k): float(v) for k, v in body.items()}


def cost_estimate(
    prices: Mapping[str, float],
    pool_type: str,
    *,
    min_size: int,
    initial_size: int,
    max_size: int,
    monitor_type: str = MONITOR_TYPE,
    disk_gib: int = DISK_GIB,
) -> dict[str, Any]:
    """Terraform's `cost_estimate_eur_per_hour` (outputs.tf), computed the same way."""
    pool = prices.get(pool_type)
    monitor = prices.get(monitor_type)
    member = None if pool is None else pool + disk_gib * prices["disk_gib"]
    fixed = None if monitor is None else monitor + disk_gib * prices["disk_gib"] + prices["nlb"]

    def at(size: int) -> float | None:
        return None if member is None or fixed is None else fixed + size * member

    return {
        "pool_member": _round(member),
        "monitor_and_nlb": _round(fixed),
        "at_min_size": _round(at(min_size)),
        "at_initial_size": _round(at(initial_size)),
        "at_max_size": _round(at(max_size)),
        "missing_price_for_type": [t for t in (pool_type, monitor_type) if t not in prices],
    }


def run_cost(
    estimate: Mapping[str, Any], instance_seconds: float, run_seconds: float
) -> dict[str, Any]:
    """EUR for a run: member instance-seconds at the member price, plus the fixed part (monitor
    and NLB) for the run's duration. None where the estimate has no price."""
    member = estimate.get("pool_member")
    fixed = estimate.get("monitor_and_nlb")
    members_eur = None if member is None else float(member) * instance_seconds / 3600
    fixed_eur = None if fixed is None else float(fixed) * run_seconds / 3600
    total = None if members_eur is None or fixed_eur is None else members_eur + fixed_eur
    return {
        "instance_seconds": instance_seconds,
        "run_seconds": run_seconds,
        "pool_member_eur_per_hour": member,
        "monitor_and_nlb_eur_per_hour": fixed,
        "members_eur": members_eur,
        "fixed_eur": fixed_eur,
        "total_eur": total,
    }


def _round(value: float | None) -> float | None:
    # Terraform's decimal arithmetic prints 0.0544, not binary floating point's 0.0544000...04.
    return None if value is None else round(value, 8)
