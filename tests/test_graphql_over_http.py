"""GraphQL over HTTP: the response media type negotiated from Accept, 4xx for request
errors under application/graphql-response+json, application/json as it always was."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.graphql_view import GRAPHQL_RESPONSE, JSON, negotiate

pytestmark = pytest.mark.usefixtures("seeded")

NEW = {"accept": GRAPHQL_RESPONSE}
NEW_TYPE = "application/graphql-response+json; charset=utf-8"


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, JSON),
        ("", JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        ("application/json", JSON),
        ("application/json; charset=utf-8", JSON),
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        ("APPLICATION/GRAPHQL-RESPONSE+JSON; charset=utf-8", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
        (f"application/json, {GRAPHQL_RESPONSE};q=0.5", JSON),
        (f"{GRAPHQL_RESPONSE};q=0.8, */*;q=0.8", GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE};q=0", None),
        ("text/html", None),
        ("application/json;q=0, text/plain", None),
        ("application/json;q=nonsense", None),
    ],
)
def test_the_media_type_is_negotiated_from_accept(accept: str | None, chosen: str | None) -> None:
    assert negotiate(accept) == chosen


async def _post(
    client: httpx.AsyncClient, payload: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    return await client.post("/graphql", json=payload, headers=headers)


@pytest.mark.parametrize(
    ("payload", "errors"),
    [
        (
            {"query": "{"},
            [
                {
                    "message": "Syntax Error: Expected Name, found <EOF>.",
                    "locations": [{"line": 1, "column": 2}],
                }
            ],
        ),
        (
            {"query": "{ nothing }"},
            [
                {
                    "message": "Cannot query field 'nothing' on type 'Query'.",
                    "locations": [{"line": 1, "column": 3}],
                }
            ],
        ),
        (
            {
                "query": "query($u: USCC!) { enterprise(uscc: $u) { name } }",
                "variables": {"u": 5},
            },
            [
                {
                    "message": (
                        "Variable '$u' has invalid value: USCC must be a string of 18 characters"
                    ),
                    "locations": [{"line": 1, "column": 7}],
                    "extensions": {"code": "BAD_USER_INPUT"},
                }
            ],
        ),
    ],
    ids=["parse", "validation", "variables"],
)
async def test_request_errors_are_400_without_data(
    client: httpx.AsyncClient, payload: dict[str, Any], errors: list[dict[str, Any]]
) -> None:
    response = await _post(client, payload, NEW)
    assert response.status_code == 400
    assert response.headers["content-type"] == NEW_TYPE
    body = response.json()
    assert "data" not in body
    assert body["errors"] == errors
    # The same request from an older client: 200 and "data": null, as before.
    legacy = await _post(client, payload, {"accept": JSON})
    assert legacy.status_code == 200
    assert legacy.headers["content-type"] == "application/json"
    assert legacy.json() == {"data": None, **body}


async def test_an_executed_operation_is_200_with_data_and_field_errors(
    client: httpx.AsyncClient,
) -> None:
    response = await _post(
        client,
        {"query": '{ integrityBadges(usccs: ["not-a-uscc"]) { uscc } }'},
        NEW,
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == NEW_TYPE
    body = response.json()
    assert body["data"] == {"integrityBadges": [None]}
    assert [error["path"] for error in body["errors"]] == [["integrityBadges", 0]]


async def test_refusals_before_execution_keep_their_status_in_the_new_type(
    client: httpx.AsyncClient,
) -> None:
    unreadable = await client.post(
        "/graphql", content=b"{", headers={**NEW, "content-type": "application/json"}
    )
    assert (unreadable.status_code, unreadable.headers["content-type"]) == (400, NEW_TYPE)
    assert "data" not in unreadable.json()

    mutation_over_get = await client.get(
        "/graphql", params={"query": "mutation { __typename }"}, headers=NEW
    )
    assert mutation_over_get.status_code == 405
    assert mutation_over_get.headers["content-type"] == NEW_TYPE

    bad_token = await _post(
        client, {"query": "{ __typename }"}, {**NEW, "authorization": "Bearer nonsense"}
    )
    assert (bad_token.status_code, bad_token.headers["content-type"]) == (401, NEW_TYPE)
    assert bad_token.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_an_accept_header_that_allows_neither_type_is_406(
    client: httpx.AsyncClient,
) -> None:
    response = await _post(client, {"query": "{ __typename }"}, {"accept": "text/plain"})
    assert response.status_code == 406
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "errors": [
            {
                "message": (
                    "Answers are application/graphql-response+json or application/json; "
                    "the Accept header allows neither."
                ),
                "extensions": {"code": "NOT_ACCEPTABLE"},
            }
        ]
    }
