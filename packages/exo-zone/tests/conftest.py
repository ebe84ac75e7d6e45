"""Bodies against a components schema, and the 2026 overlay.

Every object schema of the shipped openapi.json is closed (exo-testkit's close_objects), so a
field the spec does not know fails, and a body that carries a 2026 field (`degraded`,
`error_reason`) fails unless the overlay that models it is applied explicitly.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from referencing import Registry
from referencing.jsonschema import DRAFT4

from exo_testkit.openapi import close_objects, spec

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


def _validator(overlay_2026: bool) -> Callable[[str, Any], None]:
    document = copy.deepcopy(spec())
    if overlay_2026:
        pool = document["components"]["schemas"]["instance-pool"]
        pool["properties"]["state"]["enum"].append("degraded")
        pool["properties"]["error_reason"] = OVERLAY_2026_ERROR_REASON
    document = close_objects(document)
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
