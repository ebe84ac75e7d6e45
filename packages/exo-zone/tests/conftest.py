"""A stricter body check than exo-testkit's validate_response, and the 2026 overlay.

exo-testkit closes only the objects written inline in a response schema; the zone's bodies are
`$ref`s (`#/components/schemas/instance-pool`), so an unknown field passes there. Here every
object schema of the shipped openapi.json is closed, so a field the spec does not know fails,
and a body that carries a 2026 field (`degraded`, `error_reason`) fails unless the overlay that
models it is applied explicitly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT4

from exo_testkit.openapi import spec

#: The 2026 instance-pool additions as egoscale v3 reads them (exoscale/egoscale,
#: v3/instance_pool_test.go); absent from the openapi.json the `exoscale` wheel ships.
OVERLAY_2026_ERROR_REASON = {
    "type": "object",
    "properties": {
        "cause": {"type": "string"},
        "type": {"type": "string"},
        "job-id": {"type": "string"},
    },
}


def _close(node: Any) -> Any:
    if isinstance(node, dict):
        closed = {k: _close(v) for k, v in node.items()}
        if closed.get("type") == "object" and "properties" in closed:
            closed.setdefault("additionalProperties", False)
        return closed
    if isinstance(node, list):
        return [_close(v) for v in node]
    return node


def _validator(overlay_2026: bool) -> Callable[[str, Any], None]:
    document = copy.deepcopy(spec())
    if overlay_2026:
        pool = document["components"]["schemas"]["instance-pool"]
        pool["properties"]["state"]["enum"].append("degraded")
        pool["properties"]["error_reason"] = OVERLAY_2026_ERROR_REASON
    document = _close(document)
    registry: Registry[Any] = Registry().with_resource("spec", DRAFT4.create_resource(document))

    def validate(schema_name: str, body: Any) -> None:
        jsonschema.Draft4Validator(
            {"$ref": f"spec#/components/schemas/{schema_name}"},
            registry=registry,
            format_checker=jsonschema.FormatChecker(),
        ).validate(body)

    return validate


_STRICT = _validator(overlay_2026=False)
_OVERLAY = _validator(overlay_2026=True)


@pytest.fixture
def strict_spec() -> Callable[[str, Any], None]:
    """Validate a body against a components schema of the shipped spec, objects closed."""
    return _STRICT


@pytest.fixture
def spec_2026() -> Callable[[str, Any], None]:
    """The same, with the 2026 instance-pool overlay (`degraded`, `error_reason`)."""
    return _OVERLAY
