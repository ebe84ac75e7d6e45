"""Validate bodies against the official Exoscale openapi.json shipped in the `exoscale` wheel."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4


@cache
def spec() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(files("exoscale").joinpath("openapi.json").read_text())
    return body


@cache
def _registry() -> Registry[Any]:
    # Closed here, not only in the response schema: bodies are `$ref`s to shared component
    # schemas, and an unknown field inside one must fail too.
    resource: Resource[Any] = DRAFT4.create_resource(close_objects(spec()))
    registry: Registry[Any] = Registry().with_resource("spec", resource)
    return registry


def operation(operation_id: str) -> tuple[str, str, dict[str, Any]]:
    for path, item in spec()["paths"].items():
        for verb, op in item.items():
            if isinstance(op, dict) and op.get("operationId") == operation_id:
                return verb.upper(), path, op
    raise KeyError(operation_id)


def response_schema(operation_id: str, status: int = 200) -> dict[str, Any]:
    _, _, op = operation(operation_id)
    schema = op["responses"][str(status)]["content"]["application/json"]["schema"]
    rebased: dict[str, Any] = _rebase(schema)
    return rebased


def _rebase(node: Any) -> Any:
    """Point local refs (#/components/...) at the registered spec document."""
    if isinstance(node, dict):
        return {
            k: ("spec" + v if k == "$ref" and v.startswith("#") else _rebase(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


def validate_response(operation_id: str, body: Any, status: int = 200) -> None:
    """Raise jsonschema.ValidationError when `body` breaks the official contract.

    OpenAPI 3.0 schemas are Draft 4 JSON Schema plus a few keywords; `additionalProperties`
    is not closed in the spec, so the check adds it everywhere (the spec uses no allOf, which
    closing would break): a field the spec does not know is an error.
    """
    schema = close_objects(response_schema(operation_id, status))
    validator = jsonschema.Draft4Validator(
        schema, registry=_registry(), format_checker=jsonschema.FormatChecker()
    )
    validator.validate(body)


def close_objects(node: Any) -> Any:
    """A copy of a schema in which every object with `properties` allows nothing else."""
    if isinstance(node, dict):
        closed = {k: close_objects(v) for k, v in node.items()}
        if closed.get("type") == "object" and "properties" in closed:
            closed.setdefault("additionalProperties", False)
        return closed
    if isinstance(node, list):
        return [close_objects(v) for v in node]
    return node
