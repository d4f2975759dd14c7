"""The public archive over HTTP, against the embedded stores and the seeded data."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from gateway.settings import Settings
from tests.conftest import CommandRecorder, bearer, graphql, graphql_as, without_cost

pytestmark = pytest.mark.usefixtures("seeded")

#: Seed 1, enterprise 0: a limited company in Hangzhou with three change records.
HANGZHOU = "91330110MAJPDCW44H"
#: Seed 1, enterprise 4: an individual business, no shareholders, open-ended period.
INDIVIDUAL = "92330106MAYBN5WK5N"

ARCHIVE = """
query Archive($uscc: USCC!) {
  enterprise(uscc: $uscc) {
    uscc name kind
    region { code name province }
    status
    operatingPeriod { start end }
    registeredAddress establishedOn
    registeredCapital { amount currency }
    businessScope registrationAuthority
    legalRepresentative { name }
    shareholders {
      totalCount
      edges { node { name kind subscribedCapital { amount currency } ratioPercent } }
    }
    updatedAt
    changeRecords(first: 10) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage }
      edges { node { date item before after } }
    }
  }
}
"""

NAME = "query Name($uscc: USCC!) { enterprise(uscc: $uscc) { name } }"

CHANGE_PAGE = """
query Changes($uscc: USCC!, $first: Int!, $after: String) {
  enterprise(uscc: $uscc) {
    changeRecords(first: $first, after: $after) {
      totalCount
      pageInfo { hasNextPage endCursor }
      edges { node { date item } }
    }
  }
}
"""

SCOPE = "网络技术开发、技术咨询、技术服务；软件开发；数据处理服务；广告设计、代理。"

HANGZHOU_ARCHIVE: dict[str, Any] = {
    "uscc": HANGZHOU,
    "name": "杭州万邦网络科技有限公司",
    "kind": "ENTERPRISE",
    "region": {"code": "330110", "name": "浙江省杭州市余杭区", "province": "浙江省"},
    "status": "IN_BUSINESS",
    "operatingPeriod": {"start": "2006-12-06", "end": None},
    "registeredAddress": "浙江省杭州市余杭区科技路273号",
    "establishedOn": "2006-12-06",
    "registeredCapital": {"amount": "5000000", "currency": "CNY"},
    "businessScope": SCOPE,
    "registrationAuthority": "浙江省杭州市余杭区市场监督管理局",
    "legalRepresentative": {"name": "邓建"},
    "shareholders": {
        "totalCount": 2,
        "edges": [
            {
                "node": {
                    "name": "邓博",
                    "kind": "NATURAL_PERSON",
                    "subscribedCapital": {"amount": "2500000", "currency": "CNY"},
                    "ratioPercent": "50.00",
                }
            },
            {
                "node": {
                    "name": "梁春",
                    "kind": "NATURAL_PERSON",
                    "subscribedCapital": {"amount": "2500000", "currency": "CNY"},
                    "ratioPercent": "50.00",
                }
            },
        ],
    },
    "updatedAt": "2026-09-02T00:00:00+00:00",
    "changeRecords": {
        "totalCount": 3,
        "pageInfo": {"hasNextPage": False, "hasPreviousPage": False},
        "edges": [
            {
                "node": {
                    "date": "2026-07-21",
                    "item": "经营范围变更",
                    "before": "网络技术开发、技术咨询、技术服务。",
                    "after": SCOPE,
                }
            },
            {
                "node": {
                    "date": "2026-01-19",
                    "item": "名称变更",
                    "before": "杭州恒信网络科技有限公司",
                    "after": "杭州万邦网络科技有限公司",
                }
            },
            {
                "node": {
                    "date": "2008-06-04",
                    "item": "住所变更",
                    "before": "浙江省杭州市余杭区创业大道841号",
                    "after": "浙江省杭州市余杭区科技路273号",
                }
            },
        ],
    },
}


async def test_public_archive_is_served_end_to_end(client: httpx.AsyncClient) -> None:
    body = await graphql(client, ARCHIVE, {"uscc": HANGZHOU})
    assert body == {"data": {"enterprise": HANGZHOU_ARCHIVE}}


async def test_individual_business_has_no_shareholders(client: httpx.AsyncClient) -> None:
    body = await graphql(client, ARCHIVE, {"uscc": INDIVIDUAL})
    enterprise = body["data"]["enterprise"]
    assert "errors" not in body
    assert enterprise["kind"] == "INDIVIDUAL_BUSINESS"
    assert enterprise["shareholders"] == {"totalCount": 0, "edges": []}
    assert enterprise["operatingPeriod"]["end"] is None
    assert enterprise["region"] == {
        "code": "330106",
        "name": "浙江省杭州市西湖区",
        "province": "浙江省",
    }


async def test_lower_case_input_is_the_same_enterprise(client: httpx.AsyncClient) -> None:
    body = await graphql(client, NAME, {"uscc": HANGZHOU.lower()})
    assert body == {"data": {"enterprise": {"name": "杭州万邦网络科技有限公司"}}}


async def test_unknown_valid_uscc_is_null(
    client: httpx.AsyncClient, cold_cache: None, recorder: CommandRecorder
) -> None:
    body = await graphql(client, NAME, {"uscc": "91110000600037341L"})
    assert body == {"data": {"enterprise": None}}
    assert recorder.finds() == [("registry", "enterprises")]


@pytest.mark.parametrize(
    ("uscc", "message"),
    [
        ("91330110MAJPDCW44", "USCC must be 18 characters, got 17"),
        ("91330110MAJPDCW44I", "USCC contains characters outside 0-9A-HJ-NPQRTUWXY: I"),
        ("91330110MAJPDCW45H", "USCC position 17 fails the GB 11714 organization-code check"),
        ("91330110MAJPDCW44G", "USCC position 18 fails the GB 32100 MOD 31 check"),
        ("913301X0MAJPDCW44H", "USCC positions 3-8 (administrative division code) must be digits"),
    ],
)
async def test_invalid_uscc_is_bad_user_input_and_never_looked_up(
    client: httpx.AsyncClient, cold_cache: None, recorder: CommandRecorder, uscc: str, message: str
) -> None:
    as_variable = await graphql(client, NAME, {"uscc": uscc})
    as_literal = await graphql(client, f'{{ enterprise(uscc: "{uscc}") {{ name }} }}')

    assert as_variable["data"] is None
    assert [(e["message"], e["extensions"]) for e in as_variable["errors"]] == [
        (f"Variable '$uscc' has invalid value: {message}", {"code": "BAD_USER_INPUT"})
    ]
    assert as_literal["data"] is None
    assert [(e["message"], e["extensions"]) for e in as_literal["errors"]] == [
        (message, {"code": "BAD_USER_INPUT"})
    ]
    assert recorder.commands == []


async def test_a_number_is_not_a_uscc(client: httpx.AsyncClient) -> None:
    body = await graphql(client, NAME, {"uscc": 91330110})
    assert [(e["message"], e["extensions"]) for e in body["errors"]] == [
        (
            "Variable '$uscc' has invalid value: USCC must be a string of 18 characters",
            {"code": "BAD_USER_INPUT"},
        )
    ]


async def test_change_records_page_by_cursor(client: httpx.AsyncClient) -> None:
    uscc = "91440306MAHKW4YF02"  # five change records
    seen: list[dict[str, str]] = []
    after = None
    pages = 0
    while True:
        body = await graphql(client, CHANGE_PAGE, {"uscc": uscc, "first": 2, "after": after})
        connection = body["data"]["enterprise"]["changeRecords"]
        assert connection["totalCount"] == 5
        seen.extend(edge["node"] for edge in connection["edges"])
        pages += 1
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
        # Relay's array cursors: base64 of "arrayconnection:<offset>".
        assert after == base64.b64encode(f"arrayconnection:{2 * pages - 1}".encode()).decode()
    assert pages == 3
    assert len(seen) == 5
    dates = [node["date"] for node in seen]
    assert dates == sorted(dates, reverse=True)

    whole = await graphql(client, CHANGE_PAGE, {"uscc": uscc, "first": 10, "after": None})
    assert [e["node"] for e in whole["data"]["enterprise"]["changeRecords"]["edges"]] == seen


@pytest.mark.parametrize(
    ("first", "after", "message"),
    [
        (11, None, "first must be between 0 and 10 for this viewer (anonymous)"),
        (-1, None, "first must be between 0 and 10 for this viewer (anonymous)"),
        (2, "not-a-cursor", "after is not a cursor returned by this connection"),
        (2, "c29tZXRoaW5nOjE=", "after is not a cursor returned by this connection"),
    ],
)
async def test_bad_paging_arguments_are_bad_user_input(
    client: httpx.AsyncClient, first: int, after: str | None, message: str
) -> None:
    body = await graphql(client, CHANGE_PAGE, {"uscc": HANGZHOU, "first": first, "after": after})
    assert body["data"] == {"enterprise": None}  # changeRecords is non-null: its parent nulls
    assert [(e["message"], e["path"], e["extensions"]) for e in body["errors"]] == [
        (message, ["enterprise", "changeRecords"], {"code": "BAD_USER_INPUT"})
    ]


async def test_response_is_utf8_json_without_escapes(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": NAME, "variables": {"uscc": HANGZHOU}})
    assert response.headers["content-type"] == "application/json"
    assert (
        response.content
        == (
            '{"data":{"enterprise":{"name":"杭州万邦网络科技有限公司"}},'
            '"extensions":{"cost":{"requested":10,"limit":1200}}}'
        ).encode()
    )


async def test_get_serves_queries(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/graphql", params={"query": f'{{ enterprise(uscc: "{HANGZHOU}") {{ name }} }}'}
    )
    assert response.status_code == 200
    assert without_cost(response) == {"data": {"enterprise": {"name": "杭州万邦网络科技有限公司"}}}


async def test_request_id_is_echoed_or_minted(client: httpx.AsyncClient) -> None:
    payload = {"query": NAME, "variables": {"uscc": HANGZHOU}}
    given = await client.post("/graphql", json=payload, headers={"x-request-id": "req-12345678"})
    minted = await client.post("/graphql", json=payload, headers={"x-request-id": "bad id!"})
    assert given.headers["x-request-id"] == "req-12345678"
    assert len(minted.headers["x-request-id"]) == 32
    assert minted.headers["x-request-id"] != "bad id!"


async def test_graphiql_is_served_to_browsers(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert "<title>integrity-gateway · GraphiQL</title>" in response.text


@pytest.mark.parametrize(
    ("role", "first", "error"),
    [
        ("member", 50, None),
        ("member", 51, "first must be between 0 and 50 for this viewer (member)"),
        ("service", 100, None),
        ("service", 101, "first must be between 0 and 100 for this viewer (service)"),
    ],
)
async def test_nested_lists_cap_first_per_viewer(
    client: httpx.AsyncClient, settings: Settings, role: str, first: int, error: str | None
) -> None:
    body = await graphql_as(
        client, bearer(settings, role), CHANGE_PAGE, {"uscc": HANGZHOU, "first": first}
    )
    if error is None:
        assert body["data"]["enterprise"]["changeRecords"]["totalCount"] == 3
        assert "errors" not in body
    else:
        assert [(e["message"], e["extensions"]["code"]) for e in body["errors"]] == [
            (error, "BAD_USER_INPUT")
        ]
