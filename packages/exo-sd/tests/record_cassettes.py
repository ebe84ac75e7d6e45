"""Re-record exo-sd's cassettes against a local zone (`make record-cassettes`).

    python packages/exo-sd/tests/record_cassettes.py

Needs exo-testkit (the development venv has it). The zone (exo-zone, record members, the fast
timings) serves on loopback with throw-away credentials, the Authorization header is filtered
out of every cassette, and test_replay.py checks that no signature made it in.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sd_cassettes import CASSETTES, IDS_FILE, SCENARIOS, make_vcr

from exo_client import NO_RETRY, ClientSettings, ExoClient
from exo_testkit import FAST_TIMINGS, RunningZone, running_zone
from exo_zone import FaultPlan

UNAVAILABLE_CALLS = 2


def _settle(rz: RunningZone, pool_id: str) -> None:
    """Wait until every member of the pool runs, so recordings start from a steady pool."""
    client = rz.client()
    client.wait_pool_running(pool_id, timeout=10, poll=0.05)
    deadline = time.monotonic() + 10
    while not all(m.is_running for m in client.list_members(pool_id)):
        if time.monotonic() > deadline:
            raise RuntimeError("members did not boot")
        time.sleep(0.05)


def _prepare(name: str, rz: RunningZone, pool_id: str) -> ClientSettings:
    settings = rz.settings
    if name == "pool_booting":
        rz.zone.scale(pool_id, 3)
    elif name == "empty_pool":
        rz.client().wait_operation(rz.client().scale_pool(pool_id, 0).id, timeout=10, poll=0.05)
        deadline = time.monotonic() + 10
        while rz.client().list_members(pool_id):
            if time.monotonic() > deadline:
                raise RuntimeError("members did not go")
            time.sleep(0.05)
    elif name == "api_unavailable":
        plan = FaultPlan(rate=1.0, statuses=(503,), operations=frozenset({"list-instances"}))
        original = plan.draw_error

        def limited(operation: str) -> int | None:
            return None if plan.injected >= UNAVAILABLE_CALLS else original(operation)

        plan.draw_error = limited  # type: ignore[method-assign]
        rz.api.faults = plan
    elif name == "wrong_secret":
        settings = ClientSettings(
            api_key=settings.api_key, api_secret="not-the-secret", endpoint=rz.endpoint
        )
    return settings


def record(name: str) -> dict[str, str]:
    with running_zone({"web": 2}, timings=FAST_TIMINGS) as rz, tempfile.TemporaryDirectory() as tmp:
        pool = rz.pools["web"]
        ids = {"pool_id": pool.id}
        _settle(rz, pool.id)
        client = ExoClient(_prepare(name, rz, pool.id), retry=NO_RETRY)
        cassette = CASSETTES / f"{name}.yaml"
        cassette.unlink(missing_ok=True)
        with make_vcr("all").use_cassette(cassette.name):
            SCENARIOS[name](client, ids, Path(tmp) / "targets.json")
        return ids


def main() -> None:
    CASSETTES.mkdir(exist_ok=True)
    all_ids = {name: record(name) for name in SCENARIOS}
    IDS_FILE.write_text(json.dumps(all_ids, indent=2, sort_keys=True) + "\n")
    print(f"recorded {len(all_ids)} cassettes into {CASSETTES}")


if __name__ == "__main__":
    main()
