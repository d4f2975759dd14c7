"""Relay nodes: opaque ids that round-trip, and a lookup by id that respects every tier."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from gateway.settings import Settings
from tests.conftest import CommandRecorder, bearer, graphql_as
from tests.test_visibility import FULL

pytestmark = pytest.mark.usefixtures("seeded")


def gid(type_name: str, key: str) -> str:
    return base64.b64encode(f"{type_name}:{key}".encode()).decode()


STORE = gid("Store", "platform_1688/1688-91330108MAH7CX771U-1")
RISK = gid("RiskRecord", "platform_1688/1688-91330108MAH7CX771U-r1")
CERTIFICATION = gid("Certification", "platform_1688/1688-91330108MAH7CX771U-c1")
CHANGE = gid("ChangeRecord", "91330108MAH7CX771U-005")
ENTERPRISE = gid("Enterprise", FULL)

NODE = """
query($id: ID!) {
  node(id: $id) {
    __typename id
    ... on Enterprise { name }
    ... on Store { name }
    ... on RiskRecord { title }
    ... on Certification { agency }
    ... on ChangeRecord { item }
  }
}
"""

NODES = """
query($ids: [ID!]!) {
  nodes(ids: $ids) { __typename id ... on Enterprise { name } ... on ChangeRecord { item } }
}
"""


def _errors(body: dict[str, Any]) -> list[tuple[str, list[Any], str]]:
    return [(e["message"], e["path"], e["extensions"]["code"]) for e in body.get("errors", [])]


async def test_ids_from_the_graph_look_their_objects_up(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    query = """
    query($uscc: USCC!) { enterprise(uscc: $uscc) {
      id changeRecords(first: 1) { edges { node { id } } }
      businessFiles { stores(first: 1) { edges { node { id } } } }
    } }
    """
    owner = bearer(settings, "owner", enterprise=FULL)
    body = await graphql_as(client, owner, query, {"uscc": FULL})
    enterprise = body["data"]["enterprise"]
    assert enterprise["id"] == ENTERPRISE
    # Seed 1: FULL's newest change record is its fourth, registered after the fifth.
    assert enterprise["changeRecords"]["edges"][0]["node"]["id"] == gid(
        "ChangeRecord", "91330108MAH7CX771U-004"
    )
    assert enterprise["businessFiles"][0]["stores"]["edges"][0]["node"]["id"] == STORE

    looked_up = await graphql_as(client, owner, NODES, {"ids": [ENTERPRISE, CHANGE]})
    assert looked_up == {
        "data": {
            "nodes": [
                {"__typename": "Enterprise", "id": ENTERPRISE, "name": "杭州百川服饰有限公司"},
                {"__typename": "ChangeRecord", "id": CHANGE, "item": "法定代表人变更"},
            ]
        }
    }


@pytest.mark.parametrize(
    ("node_id", "viewer", "expected", "error"),
    [
        (ENTERPRISE, None, {"name": "杭州百川服饰有限公司"}, None),
        (STORE, None, None, ("Log in to see node (tier MEMBER).", "UNAUTHENTICATED")),
        (STORE, {"role": "member"}, {"name": "杭州百川服饰旗舰店"}, None),
        (CERTIFICATION, None, None, ("Log in to see node (tier MEMBER).", "UNAUTHENTICATED")),
        (CERTIFICATION, {"role": "member"}, {"agency": "TÜV南德"}, None),
        (
            RISK,
            {"role": "member"},
            None,
            ("node needs tier OWNER or scope risk:read.", "FORBIDDEN"),
        ),
        (
            RISK,
            {"role": "owner", "enterprise": "91330110MAJPDCW44H"},
            None,
            ("node needs tier OWNER or scope risk:read.", "FORBIDDEN"),
        ),
        (RISK, {"role": "owner", "enterprise": FULL}, {"title": "描述不符处罚"}, None),
        (RISK, {"role": "service", "scopes": ["risk:read"]}, {"title": "描述不符处罚"}, None),
    ],
)
async def test_a_lookup_by_id_respects_the_tier_of_its_type(
    client: httpx.AsyncClient,
    settings: Settings,
    node_id: str,
    viewer: dict[str, Any] | None,
    expected: dict[str, Any] | None,
    error: tuple[str, str] | None,
) -> None:
    headers = bearer(settings, **viewer) if viewer else {}
    body = await graphql_as(client, headers, NODE, {"id": node_id})
    node = body["data"]["node"]
    if expected is None:
        assert node is None
        assert error is not None
        assert _errors(body) == [(error[0], ["node"], error[1])]
    else:
        assert "errors" not in body
        assert {key: value for key, value in node.items() if key not in ("__typename", "id")} == (
            expected
        )
        assert node["id"] == node_id


async def test_a_denied_type_is_refused_before_any_lookup(
    client: httpx.AsyncClient, cold_cache: None, recorder: CommandRecorder
) -> None:
    body = await graphql_as(client, {}, NODE, {"id": STORE})
    assert body["data"] == {"node": None}
    assert recorder.commands == []


async def test_nodes_keep_input_order_and_fail_per_index(client: httpx.AsyncClient) -> None:
    ids = [
        CHANGE,
        "not base64 at all",
        gid("Enterprise", "91110000600037341L"),
        gid("Spaceship", "1"),
        ENTERPRISE,
        gid("Store", "platform_weibo/1"),
    ]
    body = await graphql_as(client, {}, NODES, {"ids": ids})
    assert body["data"]["nodes"] == [
        {"__typename": "ChangeRecord", "id": CHANGE, "item": "法定代表人变更"},
        None,
        None,
        None,
        {"__typename": "Enterprise", "id": ENTERPRISE, "name": "杭州百川服饰有限公司"},
        None,
    ]
    assert _errors(body) == [
        ("ids[1] is not an id of this API", ["nodes", 1], "BAD_USER_INPUT"),
        ("ids[3] names no type of node: 'Spaceship'", ["nodes", 3], "BAD_USER_INPUT"),
        ("Log in to see nodes (tier MEMBER).", ["nodes", 5], "UNAUTHENTICATED"),
    ]


async def test_at_most_100_nodes_per_call(client: httpx.AsyncClient) -> None:
    body = await graphql_as(client, {}, NODES, {"ids": [ENTERPRISE] * 101})
    assert body["data"] is None
    assert _errors(body) == [("at most 100 ids per call, got 101", ["nodes"], "BAD_USER_INPUT")]


async def test_a_hundred_nodes_cost_one_find_per_collection(
    client: httpx.AsyncClient, seeded: list[str], cold_cache: None, recorder: CommandRecorder
) -> None:
    ids = [gid("Enterprise", uscc) for uscc in seeded[:100]]
    body = await graphql_as(client, {}, NODES, {"ids": ids})
    assert [node["id"] for node in body["data"]["nodes"]] == ids
    assert recorder.finds() == [("registry", "enterprises")]
