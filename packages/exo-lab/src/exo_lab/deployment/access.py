"""Read-only access to a deployment: the signed zone API and plain HTTP, each call bounded.

`SignedApi` answers with the status and the body instead of raising, because verify's probes
*want* some refusals (a 403 is the right answer to a call a service's role must not have).
Besides GETs it sends exactly two PUTs, both changing nothing, for `exo-lab check-keys`: a
scale of the pool to the size it has, and an evict of no member (which the API refuses after
authorising it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from exoscale_auth import ExoscaleV2Auth

TIMEOUT = 5.0


@dataclass(frozen=True)
class Answer:
    status: int  # 0: no answer (connection refused, timeout)
    body: Any
    error: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def describe(self) -> str:
        if self.status == 0:
            return f"no answer ({self.error})"
        message = self.body.get("message") if isinstance(self.body, dict) else None
        return f"{self.status}" + (f" {message}" if message else "")


class SignedApi:
    """GETs to an Exoscale v2 endpoint signed with EXO2-HMAC-SHA256 (a key pair's view)."""

    def __init__(self, endpoint: str, key: str, secret: str, timeout: float = TIMEOUT) -> None:
        self.endpoint = endpoint.rstrip("/")
        self._auth = ExoscaleV2Auth(key, secret)
        self.timeout = timeout

    def get(self, path: str, params: dict[str, str] | None = None) -> Answer:
        return self._send("GET", path, params=params)

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        payload: dict[str, Any] | None = None,
    ) -> Answer:
        try:
            response = requests.request(
                method,
                f"{self.endpoint}{path}",
                params=params,
                json=payload,
                auth=self._auth,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            return Answer(0, None, type(exc).__name__)
        try:
            body = response.json()
        except ValueError:
            body = response.text[:200]
        return Answer(response.status_code, body)

    # The calls the project makes, by their operation names (openapi.json's operationId).
    def get_instance_pool(self, pool_id: str) -> Answer:
        return self.get(f"/instance-pool/{pool_id}")

    def list_pool_instances(self, pool_id: str) -> Answer:
        return self.get("/instance", {"manager-id": pool_id, "manager-type": "instance-pool"})

    def list_instance_pools(self) -> Answer:
        return self.get("/instance-pool")

    def get_instance(self, instance_id: str) -> Answer:
        return self.get(f"/instance/{instance_id}")

    def list_load_balancers(self) -> Answer:
        return self.get("/load-balancer")

    def get_load_balancer(self, lb_id: str) -> Answer:
        return self.get(f"/load-balancer/{lb_id}")

    def get_quota(self, entity: str) -> Answer:
        return self.get(f"/quota/{entity}")

    def get_operation(self, operation_id: str) -> Answer:
        return self.get(f"/operation/{operation_id}")

    def scale_to_same_size(self, pool_id: str, size: int) -> Answer:
        """scale-instance-pool to the size the pool has: authorised, and changes nothing."""
        return self._send("PUT", f"/instance-pool/{pool_id}:scale", payload={"size": size})

    def evict_nobody(self, pool_id: str) -> Answer:
        """evict-instance-pool-members with no member: past IAM the API refuses it (400)."""
        return self._send("PUT", f"/instance-pool/{pool_id}:evict", payload={"instances": []})


def http_get(
    url: str,
    *,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    auth: tuple[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Answer:
    """A plain GET (NLB, Prometheus, Alertmanager, Grafana, exo-scaler); JSON when it is."""
    try:
        response = requests.get(url, params=params, headers=headers, auth=auth, timeout=timeout)
    except requests.RequestException as exc:
        return Answer(0, None, type(exc).__name__)
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:2000]
    return Answer(response.status_code, body)
