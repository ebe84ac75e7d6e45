"""The JSON bodies the zone answers, shaped by the official openapi.json (`exoscale` wheel).

Pure functions of the zone's records; the API calls them under the zone's lock. Every body
validates against the shipped spec (exo-zone's tests check each operation), except the 2026
fields a pool carries only while a fault holds (see `pool_body`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .catalog import INSTANCE_TYPES
from .records import Instance, LbService, LoadBalancer, Operation, Pool

TEMPLATE_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "exo-lab/template/debian-12"))


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def pool_body(pool: Pool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": pool.id,
        "name": pool.name,
        "size": pool.size,
        "state": pool.state,
        # Members being destroyed are still the pool's until gone: `instances` lags `size`.
        "instances": [{"id": i} for i in pool.member_ids + pool.leaving_ids],
        "instance-type": {"id": pool.itype.id},
        "template": {"id": TEMPLATE_ID},
        "disk-size": pool.disk_size,
        "instance-prefix": f"pool-{pool.name[:20]}",
        "public-ip-assignment": "inet4",
        "ipv6-enabled": False,
        "labels": {},
        "security-groups": [],
        "anti-affinity-groups": [],
    }
    if pool.error_reason is not None:
        # Not in the openapi.json the `exoscale` wheel ships (its state enum has no
        # `degraded` and no error reason): modelled on the 2026 API as egoscale v3 reads it
        # (exoscale/egoscale, v3/instance_pool_test.go): `error_reason` (snake case, unlike
        # every other field) holding `cause`, `type` and `job-id`. Only present while a
        # pool is degraded/suspended, so every other pool body validates against the spec.
        body["error_reason"] = dict(pool.error_reason)
    return body


def instance_body(inst: Instance, *, disk_size: int = 10) -> dict[str, Any]:
    """get-instance; `disk_size` is the pool's (an instance record does not carry it)."""
    return {
        "id": inst.id,
        "name": inst.name,
        "state": inst.state,
        "public-ip": inst.address,
        "public-ip-assignment": "inet4",
        "created-at": iso(inst.created_at),
        "instance-type": {"id": inst.itype.id},
        "template": {"id": TEMPLATE_ID},
        "manager": {"id": inst.pool_id, "type": "instance-pool"},
        "disk-size": disk_size,
        "labels": {},
        "security-groups": [],
    }


def instance_list_item(inst: Instance) -> dict[str, Any]:
    """list-instances: a summary, the spec's list item has no disk-size."""
    return {k: v for k, v in instance_body(inst).items() if k != "disk-size"}


def operation_body(op: Operation) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": op.id,
        "state": op.state,
        "reference": {
            "id": op.reference_id,
            "link": f"/v2/{op.reference_kind}/{op.reference_id}",
            "command": op.command,
        },
    }
    if op.reason:
        body["reason"] = op.reason
    if op.message:
        body["message"] = op.message
    return body


def load_balancer_body(
    lb: LoadBalancer, health: Mapping[str, Mapping[str, bool]]
) -> dict[str, Any]:
    """get-load-balancer; `health` maps each service id to {member address: healthy}."""
    return {
        "id": lb.id,
        "name": lb.name,
        "ip": lb.ip,
        "state": "running",
        "created-at": iso(lb.created_at),
        "services": [_service_body(svc, health.get(svc.id, {})) for svc in lb.services],
        "labels": {},
    }


def _service_body(svc: LbService, health: Mapping[str, bool]) -> dict[str, Any]:
    return {
        "id": svc.id,
        "name": svc.name,
        "protocol": svc.protocol,
        "strategy": svc.strategy,
        "port": svc.port,
        "target-port": svc.target_port,
        "state": "running",
        "instance-pool": {"id": svc.pool_id},
        "healthcheck": svc.healthcheck.to_api(),
        "healthcheck-status": [
            {"public-ip": ip, "status": "success" if ok else "failure"}
            for ip, ok in sorted(health.items())
        ],
    }


def instance_types_body(zone_name: str) -> list[dict[str, object]]:
    return [t.to_api(zone_name) for t in INSTANCE_TYPES]
