"""Minimum necessary for partners (service agreement clause 1.14): a platform that shows
less declares its field set once (PLATFORM_HIDDEN_FIELDS), and every token whose
platform claim names it is denied those fields like a tier denies them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from gateway.app import create_app
from gateway.settings import ConfigurationError, Settings
from tests.conftest import bearer, graphql_as, serving

QUERY = """
query ($u: USCC!) {
  enterprise(uscc: $u) {
    name
    integrityLevel { grade }
    identityAuthentication { verified evidenceReference }
  }
}
"""
HIDDEN = {
    "taobao": [
        "Enterprise.integrityLevel",
        "IdentityAuthentication.evidenceReference",
        "Enterprise.registeredCapital",
    ]
}


@pytest.fixture(scope="module")
async def platforms(settings: Settings, seeded: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(settings.model_copy(update={"platform_hidden_fields": HIDDEN})) as client:
        yield client


def _codes(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(e["path"][-1], e["extensions"]["code"]) for e in body.get("errors", [])]


async def test_one_platforms_client_is_denied_what_anothers_sees(
    platforms: httpx.AsyncClient, settings: Settings, seeded: list[str]
) -> None:
    uscc = seeded[2]
    scopes = ["identity:read"]
    taobao = await graphql_as(
        platforms, bearer(settings, "service", scopes=scopes, platform="taobao"), QUERY, {"u": uscc}
    )
    other = await graphql_as(
        platforms, bearer(settings, "service", scopes=scopes, platform="1688"), QUERY, {"u": uscc}
    )
    seen, hidden = other["data"]["enterprise"], taobao["data"]["enterprise"]
    assert "errors" not in other
    assert seen["integrityLevel"]["grade"] is not None
    assert seen["identityAuthentication"]["evidenceReference"] is not None
    assert hidden == {
        "name": seen["name"],
        "integrityLevel": None,
        "identityAuthentication": {
            "verified": seen["identityAuthentication"]["verified"],
            "evidenceReference": None,
        },
    }
    assert _codes(taobao) == [
        ("integrityLevel", "FORBIDDEN"),
        ("evidenceReference", "FORBIDDEN"),
    ]
    assert taobao["errors"][0]["message"] == (
        "integrityLevel is not shown to viewers of platform taobao (its field set, "
        "service agreement clause 1.14)."
    )


async def test_the_field_set_holds_for_members_of_the_platform_and_not_beyond_it(
    platforms: httpx.AsyncClient, settings: Settings, seeded: list[str]
) -> None:
    uscc = seeded[2]
    member_query = "query($u: USCC!) { enterprise(uscc: $u) { name integrityLevel { grade } } }"
    on_taobao = await graphql_as(
        platforms, bearer(settings, "member", platform="taobao"), member_query, {"u": uscc}
    )
    anywhere = await graphql_as(platforms, bearer(settings, "member"), member_query, {"u": uscc})
    operator = await graphql_as(platforms, bearer(settings, "operator"), member_query, {"u": uscc})
    assert on_taobao["data"]["enterprise"]["integrityLevel"] is None
    assert _codes(on_taobao) == [("integrityLevel", "FORBIDDEN")]
    assert anywhere["data"]["enterprise"]["integrityLevel"] is not None
    assert operator["data"] == anywhere["data"]


async def test_a_hidden_field_that_cannot_be_null_takes_its_object_with_it(
    platforms: httpx.AsyncClient, settings: Settings, seeded: list[str]
) -> None:
    query = "query($u: USCC!) { enterprise(uscc: $u) { name registeredCapital { amount } } }"
    body = await graphql_as(
        platforms, bearer(settings, "member", platform="taobao"), query, {"u": seeded[2]}
    )
    assert body["data"] == {"enterprise": None}
    assert _codes(body) == [("registeredCapital", "FORBIDDEN")]


@pytest.mark.parametrize(
    ("hidden", "message"),
    [
        ({"tmall": ["Enterprise.nothing"]}, "Enterprise.nothing is not a field of the schema"),
        ({"1688": ["Nothing.name"]}, "Nothing.name is not a field of the schema"),
    ],
)
async def test_a_field_set_that_cannot_be_enforced_does_not_start(
    settings: Settings, hidden: dict[str, list[str]], message: str
) -> None:
    app = create_app(settings.model_copy(update={"platform_hidden_fields": hidden}))
    with pytest.raises(ConfigurationError, match=message):
        async with app.router.lifespan_context(app):
            pass


@pytest.mark.parametrize(
    ("hidden", "message"),
    [
        ({"jd": ["Enterprise.registeredCapital"]}, "'jd' is not a platform"),
        ({"taobao": ["registeredCapital"]}, "'registeredCapital' is not Type.field"),
    ],
)
def test_a_malformed_field_set_is_refused(hidden: dict[str, list[str]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(platform_hidden_fields=hidden)
