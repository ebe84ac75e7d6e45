"""Re-record exo-client's cassettes against a local zone: `make record-cassettes`.

Needs exo-testkit installed (the development venv has it). The zone (exo-zone, record members,
the fast timings: sub-second but asynchronous, so conversations stay short) serves on loopback
with throw-away credentials, and the Authorization header is filtered anyway.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from cassette_config import CASSETTES, IDS_FILE, make_vcr
from scenarios import SCENARIOS

from exo_client import ClientSettings, ExoClient, RetryPolicy
from exo_testkit import FAST_TIMINGS, running_zone
from exo_zone import FaultPlan

FAULTS = {
    "flaky_reads": FaultPlan(
        rate=1.0, statuses=(503,), operations=frozenset({"get-instance-pool"})
    ),
    "scale_rate_limited": FaultPlan(
        rate=1.0, statuses=(429,), operations=frozenset({"scale-instance-pool"})
    ),
    "scale_server_error": FaultPlan(
        rate=1.0, statuses=(503,), operations=frozenset({"scale-instance-pool"})
    ),
}
# How many faulted answers a scenario sees before the plan is lifted.
FAULTED_CALLS = {"flaky_reads": 2, "scale_rate_limited": 1, "scale_server_error": 1}


def record(name: str) -> dict[str, str]:
    with running_zone({"web": 2}, timings=FAST_TIMINGS) as rz:
        pool = rz.pools["web"]
        ids = {"pool_id": pool.id, "evict_id": pool.member_ids[0]}
        # Let the seeded members boot, so conversations start from a steady pool.
        rz.client().wait_pool_running(pool.id, timeout=10, poll=0.05)
        time.sleep(0.5)
        settings = rz.settings
        if name == "wrong_secret":
            settings = ClientSettings(
                api_key=settings.api_key, api_secret="not-the-secret", endpoint=rz.endpoint
            )
        client = ExoClient(settings, retry=RetryPolicy(base_delay=0.01, max_delay=0.01))
        if name in FAULTS:
            rz.api.faults = FAULTS[name]
            limit = FAULTED_CALLS[name]
            original = rz.api.faults.draw_error

            def limited(operation: str) -> int | None:
                if rz.api.faults.injected >= limit:
                    return None
                return original(operation)

            rz.api.faults.draw_error = limited  # type: ignore[method-assign]
        cassette = CASSETTES / f"{name}.yaml"
        cassette.unlink(missing_ok=True)
        with make_vcr("all").use_cassette(cassette.name):
            SCENARIOS[name](client, ids)
        return ids


def main() -> None:
    CASSETTES.mkdir(exist_ok=True)
    all_ids = {name: record(name) for name in SCENARIOS}
    IDS_FILE.write_text(json.dumps(all_ids, indent=2, sort_keys=True) + "\n")
    print(f"recorded {len(all_ids)} cassettes into {CASSETTES}")


if __name__ == "__main__":
    main()
