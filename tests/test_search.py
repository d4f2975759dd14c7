"""Search: filters, USCC order, per-viewer page caps, anonymous depth, cursors, indexes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.settings import Settings, Source
from loaders.search import SEARCH
from loaders.seed import generate
from tests.conftest import RANDOM_SEED, SEEDED_ENTERPRISES, bearer, graphql_as

pytestmark = pytest.mark.usefixtures("seeded")

SEARCH_QUERY = """
query($filter: EnterpriseFilter, $first: Int!, $after: String) {
  enterprises(filter: $filter, first: $first, after: $after) {
    edges { cursor node { uscc name region { code } status } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}
"""


def _index() -> list[dict[str, Any]]:
    """The search documents the seeder wrote, as the oracle for what a search must find."""
    batch, _ = generate(SEEDED_ENTERPRISES, RANDOM_SEED)
    return sorted(batch[(Source.REGISTRY, SEARCH)], key=lambda doc: doc["_id"])


async def _all_pages(
    client: httpx.AsyncClient, headers: dict[str, str], filter_: dict[str, Any], first: int
) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = []
    after = None
    while True:
        body = await graphql_as(
            client, headers, SEARCH_QUERY, {"filter": filter_, "first": first, "after": after}
        )
        assert "errors" not in body, body["errors"]
        connection = body["data"]["enterprises"]
        nodes += [edge["node"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            return nodes
        after = connection["pageInfo"]["endCursor"]


@pytest.mark.parametrize(
    ("filter_", "matches"),
    [
        ({"keyword": "服饰"}, lambda d: "服饰" in d["name"]),
        ({"keyword": "杭州"}, lambda d: "杭州" in d["name"]),
        ({"keyword": "科技有限"}, lambda d: "科技有限" in d["name"]),
        ({"region": "33"}, lambda d: d["division"].startswith("33")),
        ({"region": "4403"}, lambda d: d["division"].startswith("4403")),
        ({"region": "330106"}, lambda d: d["division"] == "330106"),
        ({"kind": "INDIVIDUAL_BUSINESS"}, lambda d: d["_id"].startswith("92")),
        ({"kind": "COOPERATIVE"}, lambda d: d["_id"].startswith("93")),
        ({"status": "REVOKED"}, lambda d: d["status"] == "REVOKED"),
        ({"platform": "TMALL"}, lambda d: "platform_tmall" in d["platforms"]),
        (
            {"keyword": "有限公司", "region": "44", "platform": "ALIBABA_1688"},
            lambda d: (
                "有限公司" in d["name"]
                and d["division"].startswith("44")
                and "platform_1688" in d["platforms"]
            ),
        ),
    ],
)
async def test_filters_find_exactly_the_matching_enterprises_in_uscc_order(
    client: httpx.AsyncClient, settings: Settings, filter_: dict[str, Any], matches: Any
) -> None:
    expected = [doc["_id"] for doc in _index() if matches(doc)]
    found = await _all_pages(client, bearer(settings, "member"), filter_, first=7)
    assert expected, "the oracle must find something for the test to mean anything"
    assert [node["uscc"] for node in found] == expected


async def test_anonymous_viewers_read_five_pages_of_ten_and_no_more(
    client: httpx.AsyncClient,
) -> None:
    after = None
    seen: list[str] = []
    for page in range(1, 6):
        body = await graphql_as(client, {}, SEARCH_QUERY, {"first": 10, "after": after})
        connection = body["data"]["enterprises"]
        assert connection["pageInfo"]["hasPreviousPage"] is (page > 1)
        seen += [edge["node"]["uscc"] for edge in connection["edges"]]
        after = connection["pageInfo"]["endCursor"]
    sixth = await graphql_as(client, {}, SEARCH_QUERY, {"first": 10, "after": after})

    assert seen == [doc["_id"] for doc in _index()][:50]
    assert sixth["data"] is None
    assert [(e["message"], e["extensions"]["code"]) for e in sixth["errors"]] == [
        (
            "Anonymous viewers may read 5 pages of a search; log in to read further.",
            "UNAUTHENTICATED",
        )
    ]


@pytest.mark.parametrize(
    ("role", "first", "error"),
    [
        (None, 10, None),
        (None, 11, "first must be between 0 and 10 for this viewer (anonymous)"),
        ("member", 50, None),
        ("member", 51, "first must be between 0 and 50 for this viewer (member)"),
        ("operator", 51, "first must be between 0 and 50 for this viewer (operator)"),
        ("service", 100, None),
        ("service", 101, "first must be between 0 and 100 for this viewer (service)"),
    ],
)
async def test_page_size_is_capped_per_viewer(
    client: httpx.AsyncClient, settings: Settings, role: str | None, first: int, error: str | None
) -> None:
    headers = bearer(settings, role) if role else {}
    body = await graphql_as(client, headers, SEARCH_QUERY, {"first": first})
    if error is None:
        assert "errors" not in body
        assert len(body["data"]["enterprises"]["edges"]) == min(first, SEEDED_ENTERPRISES)
    else:
        assert body["data"] is None
        assert [(e["message"], e["extensions"]["code"]) for e in body["errors"]] == [
            (error, "BAD_USER_INPUT")
        ]


async def test_a_cursor_belongs_to_its_search(client: httpx.AsyncClient) -> None:
    first = await graphql_as(client, {}, SEARCH_QUERY, {"filter": {"region": "33"}, "first": 2})
    cursor = first["data"]["enterprises"]["pageInfo"]["endCursor"]
    elsewhere = await graphql_as(
        client, {}, SEARCH_QUERY, {"filter": {"region": "44"}, "first": 2, "after": cursor}
    )
    tampered = cursor[:-4] + ("AAAA" if not cursor.endswith("AAAA") else "BBBB")
    forged = await graphql_as(
        client, {}, SEARCH_QUERY, {"filter": {"region": "33"}, "first": 2, "after": tampered}
    )
    for body in (elsewhere, forged):
        assert [(e["message"], e["extensions"]["code"]) for e in body["errors"]] == [
            ("after is not a cursor returned by this search", "BAD_USER_INPUT")
        ]


@pytest.mark.parametrize(
    ("filter_", "message"),
    [
        ({"keyword": "杭"}, "keyword must be 2 to 50 characters"),
        ({"keyword": "  "}, "keyword must be 2 to 50 characters"),
        ({"region": "3"}, "region must be a division-code prefix of 2, 4 or 6 digits"),
        ({"region": "33010"}, "region must be a division-code prefix of 2, 4 or 6 digits"),
        ({"region": "33^.*"}, "region must be a division-code prefix of 2, 4 or 6 digits"),
    ],
)
async def test_bad_filters_are_bad_user_input(
    client: httpx.AsyncClient, filter_: dict[str, Any], message: str
) -> None:
    body = await graphql_as(client, {}, SEARCH_QUERY, {"filter": filter_, "first": 5})
    assert [(e["message"], e["extensions"]["code"]) for e in body["errors"]] == [
        (message, "BAD_USER_INPUT")
    ]
