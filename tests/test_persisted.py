"""Automatic persisted queries (Apollo's request shapes), trusted documents, and how GET
answers may be cached."""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import bearer, serving, without_cost
from tests.test_archive import HANGZHOU

pytestmark = pytest.mark.usefixtures("seeded")

NAME = "query Name($u: USCC!) { enterprise(uscc: $u) { name } }"
GRADE = "query Grade($u: USCC!) { enterprise(uscc: $u) { integrityLevel { grade } } }"
HANGZHOU_NAME = {"data": {"enterprise": {"name": "杭州万邦网络科技有限公司"}}}
NOT_FOUND = {
    "errors": [
        {"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}
    ]
}


def sha(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def persisted(document: str, version: int = 1) -> dict[str, Any]:
    return {"persistedQuery": {"version": version, "sha256Hash": sha(document)}}


def unique(document: str) -> str:
    """The same operation under a text no other test has registered."""
    return f"{document} # {uuid.uuid4().hex}"


async def test_apollo_client_round_trip_hash_then_document_then_hash(
    client: httpx.AsyncClient,
) -> None:
    document = unique(NAME)
    hash_only = {
        "operationName": "Name",
        "variables": {"u": HANGZHOU},
        "extensions": persisted(document),
    }

    miss = await client.post("/graphql", json=hash_only)
    register = await client.post("/graphql", json={**hash_only, "query": document})
    hit = await client.post("/graphql", json=hash_only)

    assert miss.status_code == 200
    assert miss.json() == NOT_FOUND
    assert miss.headers["cache-control"] == "private, no-cache, must-revalidate"
    assert register.status_code == hit.status_code == 200
    assert without_cost(register) == without_cost(hit) == HANGZHOU_NAME


async def test_a_registered_hash_is_known_to_every_replica(settings: Settings) -> None:
    document = unique(NAME)
    hash_only = {"variables": {"u": HANGZHOU}, "extensions": persisted(document)}
    async with serving(settings) as one, serving(settings) as two:
        await one.post("/graphql", json={**hash_only, "query": document})
        elsewhere = await two.post("/graphql", json=hash_only)
    assert without_cost(elsewhere) == HANGZHOU_NAME


async def test_get_with_a_hash_and_how_the_answer_may_be_cached(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    name, grade = unique(NAME), unique(GRADE)
    for document in (name, grade):
        await client.post(
            "/graphql",
            json={
                "query": document,
                "variables": {"u": HANGZHOU},
                "extensions": persisted(document),
            },
        )

    def params(document: str) -> dict[str, str]:
        return {
            "variables": json.dumps({"u": HANGZHOU}),
            "extensions": json.dumps(persisted(document)),
        }

    anonymous_public = await client.get("/graphql", params=params(name))
    anonymous_member_field = await client.get("/graphql", params=params(grade))
    member_public = await client.get(
        "/graphql", params=params(name), headers=bearer(settings, "member")
    )
    post = await client.post(
        "/graphql", json={"variables": {"u": HANGZHOU}, "extensions": persisted(name)}
    )

    assert without_cost(anonymous_public) == HANGZHOU_NAME
    assert anonymous_public.headers["cache-control"] == "public, max-age=60"
    assert anonymous_member_field.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert anonymous_member_field.headers["cache-control"] == "private, no-store"
    assert without_cost(member_public) == HANGZHOU_NAME
    assert member_public.headers["cache-control"] == "private, no-store"
    assert "cache-control" not in post.headers


@pytest.mark.parametrize(
    ("extensions", "query", "code", "message"),
    [
        (persisted(NAME, version=2), None, "PERSISTED_QUERY_NOT_SUPPORTED",
         "Only persistedQuery version 1 is supported."),
        ({"persistedQuery": {"version": 1, "sha256Hash": "XYZ"}}, None, "BAD_REQUEST",
         "persistedQuery.sha256Hash must be 64 lower-case hex digits."),
        (persisted(NAME), NAME + " ", "BAD_REQUEST", "provided sha does not match query"),
    ],
)  # fmt: skip
async def test_malformed_persisted_queries_are_400s(
    client: httpx.AsyncClient,
    extensions: dict[str, Any],
    query: str | None,
    code: str,
    message: str,
) -> None:
    body = {"extensions": extensions, "variables": {"u": HANGZHOU}}
    if query is not None:
        body["query"] = query
    response = await client.post("/graphql", json=body)
    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": message, "extensions": {"code": code}}]}


@pytest.fixture
def trusted_file(tmp_path: Path) -> Path:
    path = tmp_path / "trusted.json"
    manifest = {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [{"id": sha(NAME), "body": NAME, "name": "Name", "type": "query"}],
    }
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return path


async def test_trusted_documents_bind_anonymous_viewers_only(
    settings: Settings, trusted_file: Path
) -> None:
    async with serving(settings.model_copy(update={"trusted_documents_file": trusted_file})) as c:
        by_hash = await c.post(
            "/graphql", json={"variables": {"u": HANGZHOU}, "extensions": persisted(NAME)}
        )
        in_full = await c.post("/graphql", json={"query": NAME, "variables": {"u": HANGZHOU}})
        other = await c.post("/graphql", json={"query": GRADE, "variables": {"u": HANGZHOU}})
        unknown = await c.post(
            "/graphql", json={"variables": {"u": HANGZHOU}, "extensions": persisted(GRADE)}
        )
        register = await c.post(
            "/graphql",
            json={"query": GRADE, "variables": {"u": HANGZHOU}, "extensions": persisted(GRADE)},
        )
        member = await c.post(
            "/graphql",
            json={"query": GRADE, "variables": {"u": HANGZHOU}},
            headers=bearer(settings, "member"),
        )

    assert without_cost(by_hash) == without_cost(in_full) == HANGZHOU_NAME
    safelist = {
        "errors": [
            {
                "message": "Anonymous viewers may run registered operations only; log in to "
                "run others.",
                "extensions": {"code": "QUERY_NOT_IN_SAFELIST"},
            }
        ]
    }
    assert (other.status_code, other.json()) == (400, safelist)
    assert (register.status_code, register.json()) == (400, safelist)
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"
    assert member.status_code == 200
    assert without_cost(member)["data"]["enterprise"]["integrityLevel"] is not None


async def test_a_trusted_file_with_a_wrong_hash_stops_the_start(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "trusted.json"
    path.write_text(json.dumps({sha(NAME): GRADE}), encoding="utf-8")
    app = create_app(settings.model_copy(update={"trusted_documents_file": path}))
    with pytest.raises(ValueError, match="is not the SHA-256 of its document"):
        async with app.router.lifespan_context(app):
            pass


@pytest.mark.parametrize(
    "document",
    [
        "query Broken($u: USCC!) { enterprise(uscc: $u) { nam } }",  # does not validate
        NAME + " " * 4100,  # longer than a registered document may be
    ],
    ids=["invalid", "too-long"],
)
async def test_only_a_valid_short_document_is_registered(
    client: httpx.AsyncClient, document: str
) -> None:
    document = unique(document)
    hash_only = {"variables": {"u": HANGZHOU}, "extensions": persisted(document)}
    await client.post("/graphql", json={**hash_only, "query": document})
    assert (await client.post("/graphql", json=hash_only)).json() == NOT_FOUND
