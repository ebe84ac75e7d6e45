"""The zone rejects every wrongly signed request and accepts the official SDK's."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from exoscale.api.exceptions import ExoscaleAPIAuthException
from exoscale.api.v2 import Client as SdkClient
from exoscale_auth import ExoscaleV2Auth

from exo_testkit import RunningZone, running_zone


@pytest.fixture(scope="module")
def rz() -> Iterator[RunningZone]:
    with running_zone({"web": 2}) as zone:
        yield zone


def sdk(rz: RunningZone, key: str | None = None, secret: str | None = None) -> SdkClient:
    return SdkClient(key or rz.settings.api_key, secret or rz.settings.api_secret, url=rz.endpoint)


def signed(rz: RunningZone, method: str, path: str, **kwargs: object) -> requests.PreparedRequest:
    request = requests.Request(method, rz.endpoint + path, **kwargs).prepare()  # type: ignore[arg-type]
    return ExoscaleV2Auth(rz.settings.api_key, rz.settings.api_secret)(request)  # type: ignore[no-any-return]


def send(request: requests.PreparedRequest) -> requests.Response:
    with requests.Session() as session:
        return session.send(request, timeout=5)


def test_official_sdk_is_accepted(rz: RunningZone) -> None:
    pool = rz.pools["web"]
    client = sdk(rz)
    assert client.get_instance_pool(id=pool.id)["name"] == "web"
    listed = client.list_instances(manager_id=pool.id, manager_type="instance-pool")
    assert len(listed["instances"]) == 2


@pytest.mark.parametrize(
    ("key", "secret"), [("EXOwrongkey", None), (None, "wrong-secret")], ids=["key", "secret"]
)
def test_wrong_credentials_are_403(rz: RunningZone, key: str | None, secret: str | None) -> None:
    with pytest.raises(ExoscaleAPIAuthException) as info:
        sdk(rz, key, secret).list_instance_pools()
    assert info.value.response.status_code == 403
    assert info.value.response.json()["message"] in ("unknown API key", "invalid request signature")


def test_tampered_body_is_403(rz: RunningZone) -> None:
    pool = rz.pools["web"]
    request = signed(rz, "PUT", f"/instance-pool/{pool.id}:scale", json={"size": 2})
    request.body = b'{"size": 9}'
    request.headers["Content-Length"] = str(len(request.body))
    response = send(request)
    assert response.status_code == 403
    assert rz.zone.pools[pool.id].size == 2


def test_tampered_query_is_403(rz: RunningZone) -> None:
    pool = rz.pools["web"]
    request = signed(
        rz, "GET", "/instance", params={"manager-id": pool.id, "manager-type": "instance-pool"}
    )
    assert send(request).status_code == 200
    request.url = request.url.replace(pool.id, "00000000-0000-4000-8000-000000000000")  # type: ignore[union-attr]
    assert send(request).status_code == 403


def test_unsigned_extra_query_argument_is_403(rz: RunningZone) -> None:
    request = signed(rz, "GET", "/instance")
    request.url = f"{request.url}?manager-type=instance-pool"
    assert send(request).status_code == 403


def test_other_path_with_same_signature_is_403(rz: RunningZone) -> None:
    request = signed(rz, "GET", "/instance-pool")
    request.url = rz.endpoint + "/instance"
    assert send(request).status_code == 403


def test_expired_signature_is_403(rz: RunningZone) -> None:
    request = requests.Request("GET", rz.endpoint + "/instance-pool").prepare()
    auth = ExoscaleV2Auth(rz.settings.api_key, rz.settings.api_secret)
    auth._sign_request(request, int(time.time()) - 5)
    response = send(request)
    assert response.status_code == 403
    assert "expired" in response.json()["message"]


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer abc",
        "EXO2-HMAC-SHA256 credential=x",
        "EXO2-HMAC-SHA256 credential=x,expires=9999999999,signature=!!notbase64",
    ],
)
def test_missing_or_malformed_header_is_403(rz: RunningZone, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = requests.get(rz.endpoint + "/instance-pool", headers=headers, timeout=5)
    assert response.status_code == 403
    assert response.json()["message"]


def test_rejected_mutation_changes_nothing(rz: RunningZone) -> None:
    pool = rz.pools["web"]
    operations_before = len(rz.zone.operations)
    with pytest.raises(ExoscaleAPIAuthException):
        sdk(rz, secret="wrong").scale_instance_pool(id=pool.id, size=5)
    assert rz.zone.pools[pool.id].size == 2
    assert len(rz.zone.operations) == operations_before
