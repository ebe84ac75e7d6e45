"""The roles Terraform gives exo-sd and exo-scaler, rendered for the lab's pool and NLB.

Read from the files Terraform renders (infra/terraform/policies/<service>-role.json.tftpl,
`templatefile` with `pool_id`, `nlb_id` and `scope_by_id`), never from a copy: a grant missing
there is missing in the lab, whose zone evaluates the policy as Exoscale does (exo-zone's
iam.py) and answers 403.

Only the template syntax those files use is implemented: `${pool_id}`, `${nlb_id}` and
`%{ if scope_by_id }…%{ endif }` (no else, no nesting). Anything else is a Terraform feature
this renderer would have to guess at, so it refuses the file. Standard library only: the infra
tests load this file by path and compare its rendering with Terraform's own.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

#: service -> its role's policy file, in infra/terraform/policies
POLICY_FILES = {"exo-sd": "exo-sd-role.json.tftpl", "exo-scaler": "exo-scaler-role.json.tftpl"}

_SCOPED = re.compile(r"%\{ if scope_by_id \}(.*?)%\{ endif \}", re.DOTALL)
# Any interpolation or directive left once the supported ones are rendered.
_TEMPLATE_SYNTAX = re.compile(r"[$%]\{")


class RolePolicyError(ValueError):
    """A policy file the lab cannot render; says which file and why."""


def render_role_policy(
    path: Path, *, pool_id: str, nlb_id: str, scope_by_id: bool = True
) -> dict[str, Any]:
    """The policy as Terraform's `jsondecode(templatefile(path, {...}))` gives it."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise RolePolicyError(
            f"no IAM role policy at {path} ({exc.strerror}): run from the repository root "
            "or pass --iam-policies"
        ) from None
    text = _SCOPED.sub(lambda m: m.group(1) if scope_by_id else "", text)
    rendered = text.replace("${pool_id}", pool_id).replace("${nlb_id}", nlb_id)
    if _TEMPLATE_SYNTAX.search(rendered):
        raise RolePolicyError(
            f"{path}: only ${{pool_id}}, ${{nlb_id}} and %{{ if scope_by_id }}…%{{ endif }} "
            "can be rendered by the lab"
        )
    try:
        policy = json.loads(rendered)
    except ValueError as exc:
        raise RolePolicyError(f"{path} is not JSON once rendered: {exc}") from None
    if not isinstance(policy, dict):
        raise RolePolicyError(f"{path}: a policy is a JSON object")
    return policy
