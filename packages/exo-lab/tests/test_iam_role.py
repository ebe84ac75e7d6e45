"""The lab gives exo-sd and exo-scaler Terraform's role: what it grants works, the rest is 403."""

from __future__ import annotations

from pathlib import Path

import pytest

from exo_client import AuthError, ClientSettings, ExoClient, RetryPolicy
from exo_lab.stack.iam_role import render_role_policy
from exo_lab.stack.settings import LabError
from exo_testkit import FAST_TIMINGS, free_member_network
from exo_zone import LocalZone

REPO = Path(__file__).resolve().parents[3]
POLICY = REPO / "infra" / "terraform" / "policies" / "autoscaler-role.json.tftpl"


def role_client(local: LocalZone, pool_id: str, nlb_id: str) -> ExoClient:
    key, secret = local.add_key(render_role_policy(POLICY, pool_id, nlb_id))
    settings = ClientSettings(api_key=key, api_secret=secret, endpoint=local.endpoint)
    return ExoClient(settings, retry=RetryPolicy(attempts=1))


def test_terraforms_role_allows_what_exo_sd_and_exo_scaler_do_and_nothing_else() -> None:
    with LocalZone(timings=FAST_TIMINGS, member_network=free_member_network()) as local:
        pool = local.zone.create_pool("web", 2)
        other = local.zone.create_pool("other", 1)
        nlb = local.zone.create_load_balancer("web-nlb", pool.id, port=8080)
        other_nlb = local.zone.create_load_balancer("other-nlb", other.id, port=8081)
        client = role_client(local, pool.id, nlb.id)

        # What the product calls, on its own pool.
        assert client.get_pool(pool.id).size == 2
        assert len(client.list_members(pool.id)) == 2
        operation = client.scale_pool(pool.id, 3)
        assert client.get_operation(operation.id).id == operation.id
        assert client.get_quota("instance").unlimited
        assert set(client.pool_health(nlb.id, pool.id)) <= {
            m.address for m in local.zone.members(pool.id)
        }

        # Another pool, even read-only, and a call nothing in the product makes.
        with pytest.raises(AuthError):
            client.get_pool(other.id)
        with pytest.raises(AuthError):
            client.scale_pool(other.id, 2)
        with pytest.raises(AuthError):
            client.get_load_balancer(other_nlb.id)
        with pytest.raises(AuthError):
            client.get_quota("ipv4")
        with pytest.raises(AuthError):
            client.get_pool("web")  # by name: list-instance-pools, which returns user-data
        assert local.zone.pool_snapshot(other.id).size == 1


def test_the_policy_file_is_refused_when_it_needs_more_than_the_two_ids(tmp_path: Path) -> None:
    bad = tmp_path / "role.json.tftpl"
    bad.write_text('{"default_service_strategy": "${strategy}", "services": {}}')
    with pytest.raises(LabError, match=r"only \$\{pool_id\} and \$\{nlb_id\}"):
        render_role_policy(bad, "p", "n")
    with pytest.raises(LabError, match="no IAM role policy"):
        render_role_policy(tmp_path / "missing.json", "p", "n")
