from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exo_client import PoolMember
from exo_sd.files import render
from exo_sd.targets import format_target, member_address, target_groups

POOL = "83ca37c5-1c29-4a14-8735-bc3057b3a3e2"


def member(
    name: str,
    *,
    id: str = "",
    state: str = "running",
    ip: str | None = "127.0.1.2",
    ipv6: str | None = None,
) -> PoolMember:
    return PoolMember(
        id=id or f"id-{name}",
        name=name,
        state=state,
        public_ip=ip,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        ipv6_address=ipv6,
    )


def groups(members: list[PoolMember], **kwargs: object) -> list[dict[str, object]]:
    options: dict[str, object] = {"pool_id": POOL, "zone": "ch-gva-2", "port": 9100}
    options.update(kwargs)
    return [dict(g) for g in target_groups(members, **options)]  # type: ignore[arg-type]


def test_one_group_per_running_member_with_the_design_labels() -> None:
    result = groups([member("pool-web-a", id="i-1", ip="127.0.1.2")])
    assert result == [
        {
            "targets": ["127.0.1.2:9100"],
            "labels": {
                "instance_id": "i-1",
                "instance_name": "pool-web-a",
                "pool_id": POOL,
                "zone": "ch-gva-2",
            },
        }
    ]


@pytest.mark.parametrize("state", ["starting", "stopping", "stopped", "destroying", "error"])
def test_members_not_running_are_left_out(state: str) -> None:
    assert groups([member("a", state=state), member("b")]) == groups([member("b")])


def test_members_without_an_address_are_left_out() -> None:
    assert groups([member("a", ip=None), member("b", ip="")]) == []


def test_ipv6_addresses_are_bracketed() -> None:
    result = groups([member("a", ipv6="2001:db8::5"), member("b")], address="ipv6")
    assert [g["targets"] for g in result] == [["[2001:db8::5]:9100"]]


def test_order_is_by_name_then_id_whatever_the_input_order() -> None:
    members = [member("b", id="2"), member("a", id="9"), member("b", id="1")]
    ordered = [(g["labels"]["instance_name"], g["labels"]["instance_id"]) for g in groups(members)]  # type: ignore[index]
    assert ordered == [("a", "9"), ("b", "1"), ("b", "2")]


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_bad_port_is_refused(port: int) -> None:
    with pytest.raises(ValueError, match="port"):
        groups([member("a")], port=port)


def test_unknown_address_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="address"):
        groups([member("a")], address="private")


def test_member_address_and_format() -> None:
    m = member("a", ip="127.0.1.7", ipv6="::1")
    assert member_address(m, "public") == "127.0.1.7"
    assert member_address(m, "ipv6") == "::1"
    assert format_target("127.0.1.7", 80) == "127.0.1.7:80"


names = st.text(alphabet="abcdefghij-0123456789", min_size=1, max_size=12)
members_strategy = st.lists(
    st.builds(
        member,
        names,
        id=st.uuids().map(str),
        state=st.sampled_from(["running", "starting", "destroying"]),
        ip=st.one_of(st.none(), st.ip_addresses(v=4).map(str)),
    ),
    max_size=30,
)


@given(members_strategy, st.randoms())
def test_rendering_is_deterministic_and_complete(
    members: list[PoolMember], rnd: random.Random
) -> None:
    shuffled = list(members)
    rnd.shuffle(shuffled)
    first = render(target_groups(members, pool_id=POOL, zone="z", port=9100))
    second = render(target_groups(shuffled, pool_id=POOL, zone="z", port=9100))
    assert first == second
    listed = {g["labels"]["instance_id"] for g in json.loads(first)}
    assert listed == {m.id for m in members if m.is_running and m.public_ip}
