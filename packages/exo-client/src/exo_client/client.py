"""The one client every package uses to talk to an Exoscale zone (real or exo-lab's).

It wraps the official SDK's generated v2 client (which signs with EXO2-HMAC-SHA256 through
requests-exoscale-auth) and adds what the SDK lacks for a control loop: a timeout on every
request, bounded retries where a repeat is safe, typed errors and fast waits.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import requests
from exoscale.api.exceptions import ExoscaleAPIException
from exoscale.api.v2 import Client as SdkClient

from .errors import (
    AuthError,
    BadRequestError,
    ConflictError,
    ExoApiError,
    NotFoundError,
    OperationTimeoutError,
    QuotaExceededError,
    UnavailableError,
)
from .models import InstancePool, Operation, PoolMember, Quota
from .retry import RETRYABLE_STATUS, RetryPolicy, never_reached_server, sdk_poll_interval
from .settings import ClientSettings

log = logging.getLogger("exo_client")

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


class _TimeoutSession(requests.Session):
    """The SDK calls `session.request` without a timeout; this one always has one."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, url, *args, **kwargs)


def _api_message(response: requests.Response | None, fallback: str) -> str:
    if response is None:
        return fallback
    try:
        body = response.json()
    except ValueError:
        return (response.text or fallback)[:300]
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return fallback


def _retry_after(response: requests.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


#: The operation's own name, which a role's refusal of it quotes: not a quota refusal.
_GET_QUOTA = re.compile(r"\bget-quota\b", re.IGNORECASE)


def _typed_error(status: int, message: str, operation: str) -> ExoApiError:
    kind: type[ExoApiError]
    quota = "quota" in _GET_QUOTA.sub("", message).lower()
    if status in (401, 403) and not quota:
        kind = AuthError
    elif status == 404:
        kind = NotFoundError
    elif status in (403, 409) and quota:
        # A quota refusal is not a busy pool: retrying next tick cannot help (errors.py).
        kind = QuotaExceededError
    elif status == 409:
        kind = ConflictError
    elif status in (400, 422):
        kind = BadRequestError
    elif status in RETRYABLE_STATUS:
        kind = UnavailableError
    else:
        kind = ExoApiError
    return kind(message, status=status, operation=operation)


class ExoClient:
    """Instance-pool operations against one zone.

    `sleep` and `clock` are injectable so waits and backoff are testable without real time.
    """

    def __init__(
        self,
        settings: ClientSettings,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._sdk = SdkClient(settings.api_key, settings.api_secret, url=settings.endpoint)
        session = _TimeoutSession(settings.timeout)
        session.auth = self._sdk.http_client.auth
        self._sdk.http_client = session
        #: calls sent per API operation (every attempt counts), for benchmarks and /metrics
        self.calls: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"<ExoClient endpoint={self.settings.endpoint} key={self.settings.api_key}>"

    def close(self) -> None:
        self._sdk.http_client.close()

    # -- the one path every call takes ------------------------------------------------------

    def _call(self, operation: str, *, idempotent: bool, **params: Any) -> Any:
        method = getattr(self._sdk, operation.replace("-", "_"))
        attempt = 0
        while True:
            self.calls[operation] += 1
            try:
                return method(**params)
            except ExoscaleAPIException as exc:
                response = exc.response
                status = response.status_code if response is not None else 0
                error = _typed_error(status, _api_message(response, str(exc)), operation)
                # A 429 means the request was refused before any work: safe to repeat anything.
                retryable = status == 429 or (idempotent and status in RETRYABLE_STATUS)
                retry_after = _retry_after(response)
            except requests.RequestException as exc:
                error = UnavailableError(
                    f"cannot reach {self.settings.endpoint}: {type(exc).__name__}",
                    operation=operation,
                )
                retryable = idempotent or never_reached_server(exc)
                retry_after = None
            attempt += 1
            if not retryable or attempt >= self.retry.attempts:
                raise error
            delay = self.retry.delay(attempt - 1, retry_after)
            log.warning("%s failed (%s); retry %d in %.2fs", operation, error, attempt, delay)
            self._sleep(delay)

    # -- pools and members ------------------------------------------------------------------

    def list_pools(self) -> list[InstancePool]:
        body = self._call("list-instance-pools", idempotent=True)
        return [InstancePool.from_api(p) for p in body.get("instance-pools", [])]

    def get_pool(self, ref: str) -> InstancePool:
        """A pool by id, or by name when `ref` is not a UUID."""
        if _UUID.match(ref):
            try:
                return InstancePool.from_api(
                    self._call("get-instance-pool", idempotent=True, id=ref)
                )
            except NotFoundError as exc:
                raise NotFoundError(
                    f"no instance pool with id {ref} in zone {self.settings.zone}",
                    status=404,
                    operation="get-instance-pool",
                ) from exc
        matches = [p for p in self.list_pools() if p.name == ref]
        if not matches:
            raise NotFoundError(
                f"no instance pool named {ref!r} in zone {self.settings.zone}",
                operation="list-instance-pools",
            )
        if len(matches) > 1:
            raise BadRequestError(
                f"{len(matches)} instance pools are named {ref!r}; use the pool id",
                operation="list-instance-pools",
            )
        return matches[0]

    def list_members(self, pool_id: str) -> list[PoolMember]:
        """Every member of the pool with its address, in ONE API call.

        The server is asked to filter by manager, and each listed instance's own `manager`
        (id and type `instance-pool`) is checked too: a filter the server ignored or
        misapplied would otherwise hand every instance of the zone to the scaler, which
        evicts and drains what it lists.
        """
        body = self._call(
            "list-instances",
            idempotent=True,
            manager_id=pool_id,
            manager_type="instance-pool",
        )
        listed = [PoolMember.from_api(i) for i in body.get("instances", [])]
        members = [m for m in listed if m.managed_by(pool_id)]
        if len(members) < len(listed):
            log.warning(
                "list-instances for pool %s returned %d instance(s) it does not manage; ignored",
                pool_id,
                len(listed) - len(members),
            )
        return sorted(members, key=lambda m: (m.name, m.id))

    def get_quota(self, resource: str = "instance") -> Quota:
        """The organisation's quota for `resource` (`get-quota`; the IAM role must grant it)."""
        return Quota.from_api(self._call("get-quota", idempotent=True, entity=resource))

    def scale_pool(self, pool_id: str, size: int) -> Operation:
        if size < 0:
            raise ValueError("size must be >= 0")
        body = self._call("scale-instance-pool", idempotent=False, id=pool_id, size=size)
        return Operation.from_api(body)

    def evict_members(self, pool_id: str, member_ids: Iterable[str]) -> Operation:
        ids = list(member_ids)
        if not ids:
            raise ValueError("evict needs at least one member id")
        body = self._call(
            "evict-instance-pool-members", idempotent=False, id=pool_id, instances=ids
        )
        return Operation.from_api(body)

    def delete_instance(self, instance_id: str) -> Operation:
        return Operation.from_api(self._call("delete-instance", idempotent=False, id=instance_id))

    # -- operations and waiting -------------------------------------------------------------

    def get_operation(self, operation_id: str) -> Operation:
        return Operation.from_api(self._call("get-operation", idempotent=True, id=operation_id))

    def _pause(self, started: float, poll: float | None) -> None:
        """Sleep before the next poll: the caller's fixed interval, or the official SDKs'
        schedule (3 s, backing off to 60 s; see retry.sdk_poll_interval) when None."""
        self._sleep(poll if poll is not None else sdk_poll_interval(self._clock() - started))

    def wait_operation(
        self, operation_id: str, *, timeout: float = 300.0, poll: float | None = None
    ) -> Operation:
        """Poll until the operation leaves `pending`; raise if it fails or the deadline passes."""
        started = self._clock()
        deadline = started + timeout
        while True:
            operation = self.get_operation(operation_id)
            if operation.succeeded:
                return operation
            if operation.is_done:
                kind = ConflictError if operation.reason in ("busy", "conflict") else ExoApiError
                raise kind(
                    f"operation {operation_id} ended {operation.state}"
                    f" ({operation.reason or 'no reason'}): {operation.message or ''}".rstrip(": "),
                    operation="get-operation",
                )
            if self._clock() >= deadline:
                raise OperationTimeoutError(
                    f"operation {operation_id} still pending after {timeout:.0f}s",
                    operation="get-operation",
                )
            self._pause(started, poll)

    def wait_pool_running(
        self, pool_id: str, *, timeout: float = 300.0, poll: float | None = None
    ) -> InstancePool:
        started = self._clock()
        deadline = started + timeout
        while True:
            pool = self.get_pool(pool_id)
            if pool.is_running:
                return pool
            if self._clock() >= deadline:
                raise OperationTimeoutError(
                    f"pool {pool_id} still {pool.state} after {timeout:.0f}s",
                    operation="get-instance-pool",
                )
            self._pause(started, poll)

    # -- load balancers and instance types (read-only) --------------------------------------

    def list_load_balancers(self) -> list[dict[str, Any]]:
        body = self._call("list-load-balancers", idempotent=True)
        return list(body.get("load-balancers", []))

    def get_load_balancer(self, lb_id: str) -> dict[str, Any]:
        return dict(self._call("get-load-balancer", idempotent=True, id=lb_id))

    def pool_health(self, lb_id: str, pool_id: str) -> dict[str, bool]:
        """{member public IP: the NLB's health check passes} (see `pool_health_from`);
        NotFoundError when no service of the load balancer targets `pool_id`."""
        health = pool_health_from(self.get_load_balancer(lb_id), pool_id)
        if health is None:
            raise NotFoundError(
                f"load balancer {lb_id} has no service for instance pool {pool_id}",
                operation="get-load-balancer",
            )
        return health

    def list_instance_types(self) -> list[dict[str, Any]]:
        body = self._call("list-instance-types", idempotent=True)
        return list(body.get("instance-types", []))


def pool_health_from(load_balancer: Mapping[str, Any], pool_id: str) -> dict[str, bool] | None:
    """{member public IP: the NLB's health check passes} from a get-load-balancer body, over
    the services that target `pool_id` (openapi.json `load-balancer-service.healthcheck-status`,
    `load-balancer-server-status`: `public-ip`, `status` success|failure). A member is healthy
    only if every such service says so; None when no service targets the pool.
    """
    services = [
        s
        for s in load_balancer.get("services") or []
        if (s.get("instance-pool") or {}).get("id") == pool_id
    ]
    if not services:
        return None
    health: dict[str, bool] = {}
    for service in services:
        for server in service.get("healthcheck-status") or []:
            address = server.get("public-ip")
            if address:
                ok = server.get("status") == "success"
                health[address] = health.get(address, True) and ok
    return health
