"""The gateway as an Apollo Federation 2 subgraph: `Enterprise @key(fields: "uscc")`,
`_service { sdl }` and `_entities` for a supergraph's router (a service client), refused
to other viewers in production as introspection is; entities resolve through the same
loaders and tiers as `enterprise(uscc:)`; and the SDL composes with a subgraph that
extends Enterprise (Apollo's composition library, in Node)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.settings import Settings
from tests.conftest import CommandRecorder, bearer, codes, graphql_as, in_production, serving
from tests.test_deployment import NODE_TESTS, node_or_skip
from tests.test_writes import UNKNOWN

HANGZHOU = "91330110MAJPDCW44H"
SERVICE = "{ _service { sdl } }"
ENTITIES = """
query ($r: [_Any!]!) {
  _entities(representations: $r) {
    ... on Enterprise { uscc name integrityLevel { grade } identityAuthentication { method } }
  }
}
"""
#: A second subgraph, another team's: it adds a field to Enterprise.
CREDIT = """
extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])

scalar USCC

type Enterprise @key(fields: "uscc") {
  uscc: USCC!
  creditLimit: Int
}
"""


@pytest.fixture(scope="module")
async def production(settings: Settings, seeded: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    from gateway.devkeys import dev_jwks

    jwks = settings.gateway_data_dir / "federation-jwks.json"
    jwks.write_text(orjson.dumps(dev_jwks(settings.dev_keys_dir)).decode())
    async with serving(in_production(settings, auth_jwks_file=jwks)) as client:
        yield client


async def test_the_router_reads_the_subgraph_sdl_and_nobody_else_does(
    production: httpx.AsyncClient, settings: Settings
) -> None:
    router = await graphql_as(production, bearer(settings, "service"), SERVICE)
    sdl = router["data"]["_service"]["sdl"]
    assert 'type Enterprise implements Node @key(fields: "uscc")' in sdl
    assert '@link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key"])' in sdl
    operator = await graphql_as(production, bearer(settings, "operator"), SERVICE)
    assert operator["data"]["_service"]["sdl"] == sdl
    for headers in ({}, bearer(settings, "member")):
        refused = await graphql_as(production, headers, SERVICE)
        assert refused.get("data") is None
        assert codes(refused) == ["FORBIDDEN"]
        assert refused["errors"][0]["message"] == (
            "_service answers a supergraph's router (a service client) only."
        )


async def test_entities_resolve_through_the_loaders_and_the_tiers(
    production: httpx.AsyncClient, settings: Settings
) -> None:
    representations = [
        {"__typename": "Enterprise", "uscc": HANGZHOU},
        {"__typename": "Enterprise", "uscc": UNKNOWN},
    ]
    scoped = await graphql_as(
        production,
        bearer(settings, "service", scopes=["identity:read"]),
        ENTITIES,
        {"r": representations},
    )
    plain = await graphql_as(
        production, bearer(settings, "service"), ENTITIES, {"r": representations}
    )
    direct = await graphql_as(
        production,
        bearer(settings, "service", scopes=["identity:read"]),
        "query($u: USCC!) { enterprise(uscc: $u) { uscc name integrityLevel { grade } "
        "identityAuthentication { method } } }",
        {"u": HANGZHOU},
    )
    assert "errors" not in scoped
    assert scoped["data"]["_entities"] == [direct["data"]["enterprise"], None]
    # Without identity:read, the method is denied as it is anywhere else.
    first = plain["data"]["_entities"][0]
    assert first["identityAuthentication"] == {"method": None}
    assert [(e["path"], e["extensions"]["code"]) for e in plain["errors"]] == [
        (["_entities", 0, "identityAuthentication", "method"], "FORBIDDEN")
    ]
    anonymous = await graphql_as(production, {}, ENTITIES, {"r": representations})
    assert codes(anonymous) == ["FORBIDDEN"]


async def test_a_malformed_key_is_refused_without_a_lookup(
    production: httpx.AsyncClient, settings: Settings
) -> None:
    body = await graphql_as(
        production,
        bearer(settings, "service"),
        ENTITIES,
        {"r": [{"__typename": "Enterprise", "uscc": "91330110MAJPDCW44G"}]},
    )
    assert body["data"] == {"_entities": [None]}
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["_entities", 0], "BAD_USER_INPUT")
    ]


async def test_the_subgraph_composes_with_one_that_extends_enterprise(
    production: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    node = node_or_skip()
    router = await graphql_as(production, bearer(settings, "service"), SERVICE)
    ours, theirs = tmp_path / "integrity-gateway.graphql", tmp_path / "credit.graphql"
    ours.write_text(router["data"]["_service"]["sdl"])
    theirs.write_text(CREDIT)
    ran = await asyncio.to_thread(
        subprocess.run,
        [node, str(NODE_TESTS / "compose.mjs"), str(ours), str(theirs)],
        capture_output=True,
        timeout=120,
        cwd=NODE_TESTS,
    )
    assert ran.returncode == 0, ran.stderr.decode()
    composed = orjson.loads(ran.stdout)
    assert composed["errors"] == []
    supergraph = composed["supergraph"]
    assert '@join__type(graph: INTEGRITY_GATEWAY, key: "uscc")' in supergraph
    assert '@join__type(graph: CREDIT, key: "uscc")' in supergraph
    assert "creditLimit: Int @join__field(graph: CREDIT)" in supergraph
    # Tiers stay the subgraph's business: @visibility does not reach the supergraph.
    assert "@visibility" not in supergraph


@pytest.mark.parametrize(
    ("representations", "message"),
    [
        ([{"__typename": "Store", "uscc": HANGZHOU}], 'representations[0] must be {"__typename"'),
        ([{"__typename": "Enterprise"}], 'representations[0] must be {"__typename"'),
        (
            [{"__typename": "Enterprise", "uscc": HANGZHOU, "name": "x"}],
            'representations[0] must be {"__typename"',
        ),
        (
            [{"__typename": "Enterprise", "uscc": HANGZHOU}] * 101,
            "at most 100 representations per call, got 101",
        ),
    ],
)
async def test_representations_not_of_this_subgraph_are_refused(
    production: httpx.AsyncClient,
    settings: Settings,
    recorder: CommandRecorder,
    representations: list[dict[str, Any]],
    message: str,
) -> None:
    recorder.clear()
    body = await graphql_as(
        production, bearer(settings, "service"), ENTITIES, {"r": representations}
    )
    assert body["data"] is None
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["message"].startswith(message)
    assert recorder.finds() == []  # nothing was looked up
