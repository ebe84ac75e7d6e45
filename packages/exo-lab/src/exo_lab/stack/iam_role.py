"""The role Terraform gives exo-sd and exo-scaler, rendered for the lab's pool and NLB.

Read from the same file Terraform renders (infra/terraform/policies/autoscaler-role.json.tftpl,
`templatefile` with `pool_id` and `nlb_id`), never from a copy: a grant missing there is
missing in the lab, whose zone evaluates the policy as Exoscale does (exo-zone's iam.py) and
answers 403.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .settings import LabError

# The template variables the file may use; any other interpolation or directive is a
# Terraform feature this renderer does not implement, so it refuses rather than guesses.
_TEMPLATE_SYNTAX = re.compile(r"[$%]\{")


def render_role_policy(path: Path, pool_id: str, nlb_id: str) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise LabError(
            f"no IAM role policy at {path} ({exc.strerror}): run from the repository root "
            "or pass --iam-policy"
        ) from None
    rendered = text.replace("${pool_id}", pool_id).replace("${nlb_id}", nlb_id)
    if _TEMPLATE_SYNTAX.search(rendered):
        raise LabError(f"{path}: only ${{pool_id}} and ${{nlb_id}} can be rendered by the lab")
    try:
        policy = json.loads(rendered)
    except ValueError as exc:
        raise LabError(f"{path} is not JSON once rendered: {exc}") from None
    if not isinstance(policy, dict):
        raise LabError(f"{path}: a policy is a JSON object")
    return policy
