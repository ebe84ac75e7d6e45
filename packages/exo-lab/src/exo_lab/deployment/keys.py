"""`exo-lab check-keys`: each service's key proven right after `terraform apply`.

With each generated key (outputs `exo_sd_api_key`/`_secret`, `exo_scaler_api_key`/`_secret`)
it sends every operation that service calls and one its role must refuse, and judges each
answer: one line per call. `make deploy` runs it on `terraform output -json`; `exo-lab up`'s
outputs have the same shape, which is how it is tested here.

Why it exists: whether Exoscale binds the path's and query's parameters (`parameters.id`,
`parameters.manager_id`, `parameters.entity`) in rule expressions is undocumented. If it does
not, every scoped rule falls through to deny and the services fail quietly. A scoped call
refused (403) while the *same* call works with the operator's key therefore names the fallback,
`-var iam_scope_by_id=false` (operation-only rules, weaker; docs/security.md).

What the calls change: nothing. The scale asks for the size the pool has; the evict names no
member, which the API refuses (400) once IAM has let it through, so anything but 401/403 proves
the grant; get-operation reads the scale's operation (or an unknown id: 404 proves the grant).
`mutating=False` (what verify uses) leaves both PUTs out; `thorough=True` (verify too) adds
more reads each role must refuse.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from .access import Answer, SignedApi
from .outputs import Deployment

ALLOWED, REFUSED = "allowed", "refused"
SERVICES = ("exo-sd", "exo-scaler")
#: statuses that mean the key's role refused the call
DENIED = frozenset({401, 403})

FALLBACK = (
    "re-apply with `-var iam_scope_by_id=false` (operation-only rules: WEAKER, exo-scaler's key "
    "could then read, scale and evict any pool of the organisation in the zone; see "
    "docs/security.md)"
)


@dataclass(frozen=True)
class Probe:
    service: str
    operation: str
    target: str
    expect: str
    #: the rule granting it tests a parameter (when the roles are scoped, iam_scope_by_id)
    scoped: bool
    send: Callable[[SignedApi], Answer]
    #: statuses past IAM that prove the grant although they are not 2xx
    authorised: frozenset[int] = frozenset()


@dataclass(frozen=True)
class KeyResult:
    probe: Probe
    answer: Answer | None
    ok: bool
    detail: str
    #: refused with this key while the operator's key may make the same call
    scope_refused: bool = False

    def line(self) -> str:
        p = self.probe
        status = "PASS" if self.ok else "FAIL"
        return f"{status:4}  {p.service:10} {p.operation} ({p.target}): {self.detail}"


@dataclass
class KeyReport:
    results: list[KeyResult] = field(default_factory=list)
    #: the deployment's iam_scope_by_id output (None: not in the outputs)
    scope_by_id: bool | None = None
    operator_key: bool = False

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.results)

    def advice(self) -> list[str]:
        """What to do about the failures, one line each (none when all passed)."""
        if self.ok:
            return []
        lines = []
        scoped_refusals = [
            r for r in self.results
            if not r.ok and r.probe.expect == ALLOWED and r.probe.scoped
            and r.answer is not None and r.answer.status in DENIED
        ]  # fmt: skip
        proven = [r for r in scoped_refusals if r.scope_refused]
        if self.scope_by_id is False:
            if scoped_refusals:
                lines.append(
                    "refused although the roles are operation-only (iam_scope_by_id = false): "
                    "a grant is missing, or the operation is not in the compute class "
                    "(docs/security.md)"
                )
        elif proven:
            names = ", ".join(sorted({f"{r.probe.service} {r.probe.operation}" for r in proven}))
            lines.append(
                f"scoped rules refused while the same calls work with the operator's key "
                f"({names}): this account does not bind the parameters the rules test "
                f"(parameters.id, parameters.manager_id, parameters.entity); {FALLBACK}"
            )
        elif scoped_refusals:
            lines.append(
                "scoped calls were refused; if they work with your own key (set "
                "EXOSCALE_API_KEY/EXOSCALE_API_SECRET and run again to tell), the account does "
                f"not bind the parameters the rules test: {FALLBACK}"
            )
        if any(not r.ok and r.probe.expect == REFUSED for r in self.results):
            lines.append("a key can do what its role must refuse: check the roles' policies")
        return lines


def service_keys(deployment: Deployment) -> dict[str, SignedApi | None]:
    """service -> its key from the outputs (None when the outputs lack it)."""
    keys: dict[str, SignedApi | None] = {}
    for service in SERVICES:
        prefix = service.replace("-", "_")
        key = deployment.text(f"{prefix}_api_key")
        secret = deployment.text(f"{prefix}_api_secret")
        keys[service] = SignedApi(deployment.api_endpoint, key, secret) if key and secret else None
    return keys


def _judge(probe: Probe, key: SignedApi, operator: SignedApi | None) -> KeyResult:
    answer = probe.send(key)
    if probe.expect == REFUSED:
        if answer.status in DENIED:
            return KeyResult(probe, answer, True, f"refused as it must be ({answer.status})")
        return KeyResult(probe, answer, False, f"must be refused, answered {answer.describe()}")
    if answer.ok or answer.status in probe.authorised:
        if answer.ok:
            return KeyResult(probe, answer, True, f"{answer.status}")
        return KeyResult(probe, answer, True, f"past IAM, then {answer.describe()} from the API")
    if answer.status not in DENIED:
        return KeyResult(probe, answer, False, f"answered {answer.describe()}")
    detail = f"refused: {answer.describe()}"
    scope_refused = False
    if probe.scoped and operator is not None:
        own = probe.send(operator)
        if own.status not in DENIED and own.status != 0:
            scope_refused = True
            detail += (
                f"; the same call works with the operator's key ({own.status}): the scoped "
                "rule did not match (iam_scope_by_id = false falls back to operation-only rules)"
            )
    return KeyResult(probe, answer, False, detail, scope_refused)


def _pool_size(scaler: SignedApi, operator: SignedApi | None, pool_id: str) -> int | None:
    for key in (scaler, operator):
        if key is None:
            continue
        answer = key.get_instance_pool(pool_id)
        if answer.ok and isinstance(answer.body, dict) and isinstance(answer.body.get("size"), int):
            return int(answer.body["size"])
    return None


def _run_once(
    deployment: Deployment, operator: SignedApi | None, mutating: bool, thorough: bool
) -> list[KeyResult]:
    pool, nlb = deployment.text("instance_pool_id"), deployment.text("nlb_id")
    keys = service_keys(deployment)
    results: list[KeyResult] = []

    def run(probe: Probe) -> KeyResult:
        key = keys[probe.service]
        assert key is not None
        result = _judge(probe, key, operator)
        results.append(result)
        return result

    sd = keys["exo-sd"]
    if sd is None:
        results.append(_missing("exo-sd"))
    else:
        run(Probe("exo-sd", "list-instances", f"members of pool {pool}", ALLOWED, True,
                  lambda k: k.list_pool_instances(pool)))  # fmt: skip
        run(Probe("exo-sd", "get-instance-pool", "the pool: its answer holds the user-data",
                  REFUSED, True, lambda k: k.get_instance_pool(pool)))  # fmt: skip
        if thorough:  # what exo-scaler may do, and what no service may
            run(Probe("exo-sd", "get-load-balancer", f"NLB {nlb}", REFUSED, False,
                      lambda k: k.get_load_balancer(nlb)))  # fmt: skip
            run(Probe("exo-sd", "get-quota", "instance", REFUSED, False,
                      lambda k: k.get_quota("instance")))  # fmt: skip
            run(Probe("exo-sd", "list-instance-pools", "every pool: their user-data", REFUSED,
                      False, lambda k: k.list_instance_pools()))  # fmt: skip

    scaler = keys["exo-scaler"]
    if scaler is None:
        results.append(_missing("exo-scaler"))
        return results
    run(Probe("exo-scaler", "get-instance-pool", f"pool {pool}", ALLOWED, True,
              lambda k: k.get_instance_pool(pool)))  # fmt: skip
    run(Probe("exo-scaler", "list-instances", f"members of pool {pool}", ALLOWED, True,
              lambda k: k.list_pool_instances(pool)))  # fmt: skip
    run(Probe("exo-scaler", "get-load-balancer", f"NLB {nlb}", ALLOWED, True,
              lambda k: k.get_load_balancer(nlb)))  # fmt: skip
    run(Probe("exo-scaler", "get-quota", "instance", ALLOWED, True,
              lambda k: k.get_quota("instance")))  # fmt: skip
    operation_id = str(uuid.uuid4())
    if mutating:
        size = _pool_size(scaler, operator, pool)
        scale = Probe("exo-scaler", "scale-instance-pool", f"pool {pool} to its own size {size}",
                      ALLOWED, True, lambda k: k.scale_to_same_size(pool, size or 0))  # fmt: skip
        if size is None:
            results.append(KeyResult(scale, None, False, "not sent: the pool's size is unknown "
                                     "(get-instance-pool answered no size)"))  # fmt: skip
        else:
            scaled = run(scale)
            if scaled.answer is not None and scaled.answer.ok:
                operation_id = str((scaled.answer.body or {}).get("id") or operation_id)
        run(Probe("exo-scaler", "evict-instance-pool-members", f"no member of pool {pool}",
                  ALLOWED, True, lambda k: k.evict_nobody(pool),
                  authorised=frozenset({400, 404, 409, 422})))  # fmt: skip
    run(Probe("exo-scaler", "get-operation", operation_id, ALLOWED, False,
              lambda k: k.get_operation(operation_id), authorised=frozenset({404})))  # fmt: skip
    run(Probe("exo-scaler", "list-instance-pools", "every pool: their user-data", REFUSED, False,
              lambda k: k.list_instance_pools()))  # fmt: skip
    if thorough:
        listed = scaler.list_pool_instances(pool)
        members = listed.body.get("instances", []) if isinstance(listed.body, dict) else []
        member = str(members[0]["id"]) if members else str(uuid.uuid4())
        run(Probe("exo-scaler", "get-instance", f"member {member}: its user-data", REFUSED,
                  False, lambda k: k.get_instance(member)))  # fmt: skip
        run(Probe("exo-scaler", "list-load-balancers", "every NLB", REFUSED, False,
                  lambda k: k.list_load_balancers()))  # fmt: skip
    return results


def _missing(service: str) -> KeyResult:
    prefix = service.replace("-", "_")
    probe = Probe(service, "-", "its key", ALLOWED, False, lambda k: Answer(0, None))
    return KeyResult(probe, None, False, f"no {prefix}_api_key/{prefix}_api_secret in the outputs")


def check_keys(
    deployment: Deployment,
    operator: SignedApi | None,
    *,
    mutating: bool = True,
    thorough: bool = False,
    settle: float = 0.0,
    pause: float = 3.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> KeyReport:
    """Every probe once; while a needed call is refused and `settle` seconds have not passed
    (a new key may take a moment to be honoured), all of them again after `pause`."""
    scope = deployment.get("iam_scope_by_id")
    deadline = clock() + settle
    while True:
        results = _run_once(deployment, operator, mutating, thorough)
        refused = [r for r in results if not r.ok and r.probe.expect == ALLOWED
                   and r.answer is not None and r.answer.status in DENIED]  # fmt: skip
        if not refused or clock() + pause > deadline:
            break
        sleep(pause)
    return KeyReport(
        results, scope_by_id=scope if isinstance(scope, bool) else None,
        operator_key=operator is not None,
    )  # fmt: skip
