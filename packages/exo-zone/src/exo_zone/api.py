"""The zone's HTTP face: the Exoscale v2 operations the project uses, signed like Exoscale.

Bodies follow the official openapi.json shipped in the `exoscale` wheel. Lab-only controls
(faults, member kills) live under /_lab and need the same signature.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import bodies
from .faults import FaultPlan
from .iam import AuthzRequest, Policy
from .records import Instance, ZoneError
from .signing import SignatureError, verify_request
from .zone import Zone

log = logging.getLogger(__name__)

Handler = Callable[[Zone, Request, dict[str, str], Any], Any]

_UUID = r"(?P<id>[0-9a-fA-F-]{36})"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


class ZoneApi:
    """Routes `<METHOD> <path>` to zone operations; every request is signature-checked."""

    def __init__(self, zone: Zone, credentials: Mapping[str, str], prefix: str = "/v2") -> None:
        self.zone = zone
        self.credentials = dict(credentials)
        #: API key -> its role's policy; a key without an entry has full access
        self.roles: dict[str, Policy] = {}
        #: whether role rules see the path's and query's parameters (`parameters.id`); False
        #: models an Exoscale that binds only the body's (the documented ones): see iam.py
        self.iam_binds_url_parameters = True
        self.prefix = prefix
        self._faults = FaultPlan()
        self.routes: list[tuple[str, re.Pattern[str], str, Handler]] = []
        for method, pattern, operation, handler in (
            ("GET", r"/instance-pool", "list-instance-pools", self._list_pools),
            ("GET", rf"/instance-pool/{_UUID}", "get-instance-pool", self._get_pool),
            ("PUT", rf"/instance-pool/{_UUID}:scale", "scale-instance-pool", self._scale),
            ("PUT", rf"/instance-pool/{_UUID}:evict", "evict-instance-pool-members", self._evict),
            ("GET", r"/instance", "list-instances", self._list_instances),
            ("GET", rf"/instance/{_UUID}", "get-instance", self._get_instance),
            ("DELETE", rf"/instance/{_UUID}", "delete-instance", self._delete_instance),
            ("GET", rf"/operation/{_UUID}", "get-operation", self._get_operation),
            ("GET", r"/load-balancer", "list-load-balancers", self._list_lbs),
            ("GET", rf"/load-balancer/{_UUID}", "get-load-balancer", self._get_lb),
            ("GET", r"/quota/(?P<entity>[a-z0-9-]+)", "get-quota", self._get_quota),
            ("GET", r"/instance-type", "list-instance-types", self._list_types),
            ("GET", rf"/instance-type/{_UUID}", "get-instance-type", self._get_type),
            ("GET", r"/_lab/faults", "lab-get-faults", self._get_faults),
            ("PUT", r"/_lab/faults", "lab-set-faults", self._set_faults),
            ("GET", r"/_lab/state", "lab-state", self._lab_state),
            ("PUT", rf"/_lab/instance/{_UUID}:kill", "lab-kill-instance", self._kill_instance),
        ):
            self.routes.append((method, re.compile(f"^{prefix}{pattern}$"), operation, handler))

    @property
    def faults(self) -> FaultPlan:
        return self._faults

    @faults.setter
    def faults(self, plan: FaultPlan) -> None:
        """Install a plan: the zone reads its state-changing parts, pool states apply now."""
        previous, self._faults = self._faults, plan
        with self.zone.lock:
            self.zone.faults = plan
            if previous.pool_state is not None:
                self.zone.set_pool_fault(previous.pool_state.pools, None, None)
            if plan.pool_state is not None:
                fault = plan.pool_state
                self.zone.set_pool_fault(fault.pools, fault.state, fault.error_reason)

    # -- dispatch ---------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        path = request.scope.get("raw_path", request.url.path.encode()).decode()
        body = await request.body()
        try:
            key = verify_request(
                method=request.method,
                path=path,
                query_string=request.url.query,
                body=body,
                authorization=request.headers.get("authorization"),
                secrets=self.credentials,
            )
        except SignatureError as exc:
            log.info("403 %s %s: %s", request.method, path, exc)
            return _error(403, str(exc))
        allowed = False
        for method, pattern, operation, handler in self.routes:
            match = pattern.match(path)
            if not match:
                continue
            if method != request.method:
                allowed = True
                continue
            denied = self._authorize(key, operation, request, match.groupdict(), body)
            if denied is not None:
                return denied
            return await self._run(operation, handler, request, match.groupdict(), body)
        if allowed:
            return _error(405, f"method {request.method} not allowed on {path}")
        return _error(404, f"no such endpoint: {request.method} {path}")

    def _authorize(
        self, key: str, operation: str, request: Request, params: dict[str, str], raw: bytes
    ) -> Response | None:
        """403 when the key's role policy does not allow the operation, else None."""
        policy = self.roles.get(key)
        if policy is None:
            return None
        if operation.startswith("lab-"):
            # Lab controls are not Exoscale's; a key with a role (a component's) never drives them.
            return _error(403, f"{operation} is a lab control: not allowed for a key with a role")
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = None
        parameters: dict[str, Any] = dict(payload) if isinstance(payload, dict) else {}
        # The query's and the path's ({id} as parameters.id), which win over the body's.
        url_parameters: dict[str, Any] = {**request.query_params, **params}
        with self.zone.lock:
            resources = self._resources(params.get("id"))
        client = request.client
        decision = policy.evaluate(
            AuthzRequest(
                operation=operation,
                parameters=parameters,
                resources=resources,
                zone=self.zone.name,
                api_key=key,
                source_ip=client.host if client else "",
                url_parameters=url_parameters,
            ),
            bind_url_parameters=self.iam_binds_url_parameters,
        )
        if decision.allowed:
            return None
        log.info("403 %s for %s: %s", operation, key, decision.why)
        # A role denial is a 403: the official SDK says so (exoscale/python-exoscale,
        # exoscale/api/generator.py: "the server enforces IAM role policies on authenticated
        # requests — restricted keys ... get 403"). The body is shaped like the API's other
        # errors ({"message": ...}); Exoscale's exact wording is not documented.
        return _error(403, f"Forbidden: operation {operation} is not allowed by the API key's role")

    def _resources(self, resource_id: str | None) -> dict[str, Any]:
        """The resource a call targets, by type, as a rule's `resources` binding sees it."""
        if resource_id is None:
            return {}
        zone = self.zone
        if resource_id in zone.pools:
            pool = zone.pools[resource_id]
            return {"instance_pool": {"id": pool.id, "name": pool.name, "labels": {}}}
        if resource_id in zone.instances:
            inst = zone.instances[resource_id]
            return {
                "instance": {
                    "id": inst.id,
                    "name": inst.name,
                    "manager": {"id": inst.pool_id, "type": "instance-pool"},
                    "labels": {},
                }
            }
        if resource_id in zone.operations:
            op = zone.operations[resource_id]
            return {"operation": {"id": op.id, "reference": {"id": op.reference_id}}}
        return {}

    async def _run(
        self, operation: str, handler: Handler, request: Request, params: dict[str, str], raw: bytes
    ) -> Response:
        faults = self.faults
        if not operation.startswith("lab-"):
            throttled = faults.throttle()
            if throttled is not None:
                # Exoscale documents no rate limit (DESIGN.md §3): a token bucket is the model.
                status, headers = throttled
                return JSONResponse(
                    {"message": "too many requests: rate limit exceeded"},
                    status_code=status,
                    headers=headers,
                )
            if faults.latency and faults.applies_to(operation):
                await asyncio.sleep(faults.latency)
            drawn = faults.draw_error(operation)
            if drawn is not None:
                retry = {"Retry-After": "1"} if drawn == 429 and faults.retry_after else None
                return JSONResponse(
                    {"message": f"injected fault ({drawn})"}, status_code=drawn, headers=retry
                )
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            return _error(400, "request body is not valid JSON")
        try:
            with self.zone.lock:
                result = handler(self.zone, request, params, payload)
            if isinstance(result, Awaitable):
                result = await result
        except ZoneError as exc:
            return _error(exc.status, exc.message)
        if request.method != "GET" and not operation.startswith("lab-"):
            late = faults.take_after_mutation(operation)
            if late is not None:
                # The work is done (the operation exists, the pool changed) but the answer is
                # lost, as behind a proxy that times out: a blind retry repeats the mutation.
                return _error(late, f"injected fault ({late}) after the request was applied")
        return result if isinstance(result, Response) else JSONResponse(result)

    # -- handlers ---------------------------------------------------------------------------

    def _list_pools(self, zone: Zone, *_: Any) -> dict[str, Any]:
        return {"instance-pools": [bodies.pool_body(p) for p in zone.pools.values()]}

    def _get_pool(self, zone: Zone, _: Request, params: dict[str, str], __: Any) -> Any:
        return bodies.pool_body(zone.pool(params["id"]))

    def _scale(self, zone: Zone, _: Request, params: dict[str, str], payload: Any) -> Any:
        size = payload.get("size") if isinstance(payload, dict) else None
        if not isinstance(size, int) or isinstance(size, bool):
            raise ZoneError(400, "size: an integer is required")
        return bodies.operation_body(zone.scale(params["id"], size))

    def _evict(self, zone: Zone, _: Request, params: dict[str, str], payload: Any) -> Any:
        ids = payload.get("instances") if isinstance(payload, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ZoneError(400, "instances: a list of instance ids is required")
        return bodies.operation_body(zone.evict(params["id"], ids))

    def _list_instances(self, zone: Zone, request: Request, *_: Any) -> Any:
        manager_id = request.query_params.get("manager-id")
        manager_type = request.query_params.get("manager-type")
        if manager_type not in (None, "instance-pool"):
            raise ZoneError(400, f"manager-type: invalid value {manager_type!r}")
        instances = [
            i for i in zone.instances.values() if manager_id is None or i.pool_id == manager_id
        ]
        ip = request.query_params.get("ip-address")
        if ip:
            instances = [i for i in instances if i.address == ip]
        return {"instances": [bodies.instance_list_item(i) for i in instances]}

    def _get_instance(self, zone: Zone, _: Request, params: dict[str, str], __: Any) -> Any:
        return _instance_body(zone, zone.instance(params["id"]))

    def _delete_instance(self, zone: Zone, _: Request, params: dict[str, str], __: Any) -> Any:
        return bodies.operation_body(zone.delete_instance(params["id"]))

    def _get_operation(self, zone: Zone, _: Request, params: dict[str, str], __: Any) -> Any:
        return bodies.operation_body(zone.operation(params["id"]))

    def _list_lbs(self, zone: Zone, *_: Any) -> Any:
        lbs = zone.load_balancers.values()
        return {"load-balancers": [bodies.load_balancer_body(lb, zone.health(lb)) for lb in lbs]}

    def _get_lb(self, zone: Zone, _: Request, params: dict[str, str], __: Any) -> Any:
        lb = zone.load_balancers.get(params["id"])
        if lb is None:
            raise ZoneError(404, f"load balancer {params['id']} not found")
        return bodies.load_balancer_body(lb, zone.health(lb))

    def _get_quota(self, zone: Zone, _: Request, params: dict[str, str], __: Any) -> Any:
        """openapi.json `get-quota` → `quota` {resource, usage, limit (-1: unlimited)}. Only the
        instance quota is modelled (cluster-autoscaler's Exoscale provider reads "instance");
        any other entity is a 404, the harsher answer, since the lab cannot say its usage."""
        entity = params["entity"]
        if entity != "instance":
            raise ZoneError(404, f"quota {entity} not found")
        usage, limit = zone.instance_quota()
        return {"resource": "instance", "usage": usage, "limit": -1 if limit is None else limit}

    def _list_types(self, zone: Zone, *_: Any) -> Any:
        return {"instance-types": bodies.instance_types_body(zone.name)}

    def _get_type(self, zone: Zone, _: Request, params: dict[str, str], __: Any) -> Any:
        for body in bodies.instance_types_body(zone.name):
            if body["id"] == params["id"]:
                return body
        raise ZoneError(404, f"instance type {params['id']} not found")

    def _get_faults(self, *_: Any) -> Any:
        return self.faults.to_json()

    def _set_faults(self, _: Zone, __: Request, ___: dict[str, str], payload: Any) -> Any:
        if not isinstance(payload, dict):
            raise ZoneError(400, "a JSON object is required")
        try:
            self.faults = FaultPlan.from_json(payload)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise ZoneError(400, f"invalid fault plan: {exc!r}") from exc
        log.warning("fault plan set: %s", self.faults.to_json())
        return self.faults.to_json()

    def _kill_instance(self, zone: Zone, _: Request, params: dict[str, str], __: Any) -> Any:
        zone.kill_member(params["id"])
        log.warning("lab: killed member %s", params["id"])
        return {"killed": params["id"]}

    def _lab_state(self, zone: Zone, *_: Any) -> Any:
        return {
            "zone": zone.name,
            "cpu_cap": zone.runtime.cpu_cap,
            "pools": [bodies.pool_body(p) for p in zone.pools.values()],
            "instances": [_instance_body(zone, i) for i in zone.instances.values()],
            "faults": self.faults.to_json(),
        }


def _instance_body(zone: Zone, inst: Instance) -> dict[str, Any]:
    pool = zone.pools.get(inst.pool_id)
    return bodies.instance_body(inst, disk_size=pool.disk_size if pool is not None else 10)


def create_zone_app(zone: Zone, credentials: Mapping[str, str], *, tick: bool = True) -> Starlette:
    """The zone as an ASGI app; its lifespan runs the ticker that advances zone time."""
    api = ZoneApi(zone, credentials)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(_ticker(zone)) if tick else None
        try:
            yield
        finally:
            if task:
                task.cancel()
            await asyncio.to_thread(zone.close)

    app = Starlette(
        routes=[
            Route("/{path:path}", api.handle, methods=["GET", "PUT", "POST", "DELETE", "PATCH"])
        ],
        lifespan=lifespan,
    )
    app.state.api = api
    app.state.zone = zone
    return app


async def _ticker(zone: Zone) -> None:
    while True:
        try:
            # Runtime checks may touch processes and sockets: keep them off the event loop.
            await asyncio.to_thread(zone.tick)
        except Exception:
            log.exception("zone tick failed")
        await asyncio.sleep(zone.timings.tick_interval)
