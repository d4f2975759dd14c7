"""A source that is down costs only its own fields; the answer is still HTTP 200."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.embedded import free_port
from gateway.settings import Settings
from tests.conftest import bearer, graphql_as, serving
from tests.test_round_trips import ARCHIVE_PAGE
from tests.test_visibility import FULL

pytestmark = pytest.mark.usefixtures("seeded")

FILES = """
query($u: USCC!) {
  enterprise(uscc: $u) { name integrityLevel { grade } businessFiles { platform storeCount } }
}
"""


def _errors(body: dict[str, Any]) -> list[tuple[str, list[Any], str]]:
    return [(e["message"], e["path"], e["extensions"]["code"]) for e in body.get("errors", [])]


@pytest.mark.parametrize(
    ("update", "message", "code"),
    [
        # The source's own timeout answers first: the source is unavailable.
        (
            {"mongodb_timeout_ms": 300},
            "The platform_tmall source is unavailable; try again later.",
            "SOURCE_UNAVAILABLE",
        ),
        # The request's deadline (0.4 s) answers before the source's timeout (5 s).
        (
            {"mongodb_timeout_ms": 5000, "request_deadline_ms": 400},
            "The request ran out of time waiting for the platform_tmall source; its fields "
            "are left null.",
            "TIMEOUT",
        ),
    ],
    ids=["source-timeout", "request-deadline"],
)
async def test_a_platform_that_times_out_nulls_only_its_fields(
    settings: Settings,
    silent_server: str,
    cold_cache: None,
    update: dict[str, Any],
    message: str,
    code: str,
) -> None:
    hung = settings.model_copy(update={"mongodb_url_platform_tmall": silent_server, **update})
    async with serving(hung) as client:
        response = await client.post(
            "/graphql",
            json={"query": FILES, "variables": {"u": FULL}},
            headers=bearer(settings, "member"),
        )
    body = response.json()
    files = body["data"]["enterprise"]["businessFiles"]

    assert response.status_code == 200
    assert body["data"]["enterprise"]["name"] == "杭州百川服饰有限公司"
    assert body["data"]["enterprise"]["integrityLevel"] is not None
    assert [f["storeCount"] is None for f in files] == [False, False, True, False]
    assert [(e["message"], e["path"], e["extensions"]) for e in body["errors"]] == [
        (
            message,
            ["enterprise", "businessFiles", 2, "storeCount"],
            {"code": code, "source": "platform_tmall"},
        )
    ]


@pytest.fixture
async def registry_down(settings: Settings, cold_cache: None) -> AsyncIterator[httpx.AsyncClient]:
    dead = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    down = settings.model_copy(update={"mongodb_url_registry": dead, "mongodb_timeout_ms": 200})
    async with serving(down) as client:
        yield client


async def test_registry_down_is_a_clear_error_not_a_500(
    registry_down: httpx.AsyncClient, settings: Settings
) -> None:
    lookup = await registry_down.post("/graphql", json={"query": FILES, "variables": {"u": FULL}})
    search = await registry_down.post(
        "/graphql", json={"query": "{ enterprises(first: 3) { edges { node { name } } } }"}
    )
    badges = await graphql_as(
        registry_down,
        {},
        "query($u: [String!]!) { integrityBadges(usccs: $u) { name } }",
        {"u": [FULL, "91330110MAJPDCW44H"]},
    )
    unavailable = "The registry source is unavailable; try again later."

    assert lookup.status_code == search.status_code == 200
    assert lookup.json()["data"] == {"enterprise": None}
    assert _errors(lookup.json()) == [(unavailable, ["enterprise"], "SOURCE_UNAVAILABLE")]
    assert search.json()["data"] is None
    assert _errors(search.json()) == [(unavailable, ["enterprises"], "SOURCE_UNAVAILABLE")]
    assert badges["data"] == {"integrityBadges": [None, None]}
    assert _errors(badges) == [
        (unavailable, ["integrityBadges", 0], "SOURCE_UNAVAILABLE"),
        (unavailable, ["integrityBadges", 1], "SOURCE_UNAVAILABLE"),
    ]


async def test_redis_down_serves_the_whole_archive_page_unchanged(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    operator = bearer(settings, "operator")
    expected = await graphql_as(client, operator, ARCHIVE_PAGE, {"uscc": FULL})
    dead = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    async with serving(dead) as without_redis:
        body = await graphql_as(without_redis, operator, ARCHIVE_PAGE, {"uscc": FULL})
    assert "errors" not in expected
    assert body == expected
