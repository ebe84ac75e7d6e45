"""A deployment's outputs in the shape of `terraform output -json`, read and written.

`terraform output -json` prints `{"name": {"sensitive": bool, "type": <type>, "value": ...}}`
and leaves out outputs whose value is null. `exo-lab up` writes the same shape with the lab's
values, so `verify` and the target load test read a lab and a real deployment alike.
Sensitive values are never printed: `masked()` shows them as Terraform does, `<sensitive>`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


class OutputsError(ValueError):
    """The outputs cannot be used (unreadable, wrong shape, missing names); says what to do."""


@dataclass(frozen=True)
class Output:
    value: Any
    sensitive: bool = False


def terraform_type(value: Any) -> Any:
    """The `type` Terraform prints for a value (cty's JSON type notation)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return ["object", {k: terraform_type(v) for k, v in value.items()}]
    if isinstance(value, list | tuple):
        return ["tuple", [terraform_type(v) for v in value]]
    return "dynamic"


def to_terraform_json(outputs: Mapping[str, Output]) -> str:
    """The text `terraform output -json` would print; null values are left out, as it does."""
    body = {
        name: {"sensitive": o.sensitive, "type": terraform_type(o.value), "value": o.value}
        for name, o in sorted(outputs.items())
        if o.value is not None
    }
    return json.dumps(body, indent=2) + "\n"


def parse_terraform_json(text: str, source: str = "outputs") -> dict[str, Output]:
    """`terraform output -json`'s text → name → Output; OutputsError says what is wrong."""
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise OutputsError(f"{source} is not JSON ({exc}); use `terraform output -json`") from None
    if not isinstance(body, dict):
        raise OutputsError(f"{source}: expected a JSON object of outputs (terraform output -json)")
    outputs = {}
    for name, entry in body.items():
        if not isinstance(entry, dict) or "value" not in entry:
            raise OutputsError(
                f'{source}: output {name!r} has no "value": pass `terraform output -json`, '
                "not `terraform output` or a single output's value"
            )
        outputs[str(name)] = Output(entry["value"], bool(entry.get("sensitive", False)))
    return outputs


def masked(outputs: Mapping[str, Output]) -> list[str]:
    """One `name = value` line per output as `terraform output` prints them: secrets hidden."""
    lines = []
    for name, o in sorted(outputs.items()):
        if o.value is None:
            continue
        shown = "<sensitive>" if o.sensitive else json.dumps(o.value)
        lines.append(f"{name} = {shown}")
    return lines


@dataclass(frozen=True)
class Deployment:
    """What verify and the target load test use, from the outputs and flags (flags win)."""

    values: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls, outputs: Mapping[str, Output], overrides: Mapping[str, Any] | None = None
    ) -> Deployment:
        values = {name: o.value for name, o in outputs.items()}
        values.update({k: v for k, v in (overrides or {}).items() if v not in (None, "")})
        return cls(values)

    def require(self, names: Iterable[str], *, hint: Mapping[str, str] | None = None) -> None:
        missing = [n for n in names if self.values.get(n) in (None, "")]
        if missing:
            flags = hint or {}
            named = ", ".join(f"{n} (or {flags[n]})" if n in flags else n for n in missing)
            raise OutputsError(f"missing outputs: {named}")

    def get(self, name: str) -> Any:
        return self.values.get(name)

    def text(self, name: str) -> str:
        value = self.values.get(name)
        return "" if value is None else str(value)

    @property
    def lab_operator_key(self) -> tuple[str, str] | None:
        """The lab zone's full-access key pair (`exo-lab up`); None for a real deployment."""
        key, secret = self.text("lab_operator_api_key"), self.text("lab_operator_api_secret")
        return (key, secret) if key and secret else None

    @property
    def lab(self) -> dict[str, Any] | None:
        """The `lab` output exo-lab up adds (None for a real deployment)."""
        lab = self.values.get("lab")
        return lab if isinstance(lab, dict) else None

    @property
    def app_url(self) -> str:
        url = self.text("app_url")
        return url if url.endswith("/") else url + "/"

    @property
    def api_endpoint(self) -> str:
        endpoint = self.text("api_endpoint")
        if endpoint:
            return endpoint.rstrip("/")
        zone = self.text("zone") or "ch-gva-2"
        return f"https://api-{zone}.exoscale.com/v2"


def read_outputs(path: str, stdin_text: str | None = None) -> dict[str, Output]:
    """Outputs from a file, or from stdin when `path` is `-` (`terraform output -json | ...`)."""
    if path == "-":
        return parse_terraform_json(stdin_text or "", "stdin")
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError as exc:
        raise OutputsError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_terraform_json(text, path)
