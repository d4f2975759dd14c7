"""Operation limits: measured before execution, one code each, the limit in the message.

Each limit is tried just under (served) and just over (refused with its code, HTTP 400,
no data, nothing read from MongoDB), directly and through fragments and aliases.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from gateway.settings import Settings
from resolvers.limits import cached_cost, cached_document, operation_cost
from resolvers.schema import schema
from tests.conftest import CommandRecorder, bearer, serving
from tests.test_archive import HANGZHOU

pytestmark = pytest.mark.usefixtures("seeded")

NAME = f'enterprise(uscc: "{HANGZHOU}") {{ name }}'
TIGHT = {
    "limit_tokens": 100,
    "limit_depth": 4,
    "limit_aliases": 3,
    "limit_root_fields": 3,
    "limit_directives": 2,
    "limit_operations": 2,
    "limit_fields": 7,
}


@pytest.fixture(scope="module")
async def tight(settings: Settings, seeded: list[str]) -> Any:
    async with serving(settings.model_copy(update=TIGHT)) as client:
        yield client


async def post(client: httpx.AsyncClient, payload: dict[str, Any], **kw: Any) -> httpx.Response:
    return await client.post("/graphql", json=payload, **kw)


def refusal(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert "data" not in body
    [error] = body["errors"]
    return response.status_code, error["extensions"]["code"], error["message"]


def aliases(count: int) -> str:
    return "{ " + " ".join(f"a{i}: {NAME}" for i in range(count)) + " }"


def nested(depth: int) -> str:
    """An operation ``depth`` fields deep: enterprise > shareholders > edges > node > …"""
    chain = ["enterprise(uscc: $u)", "shareholders", "edges", "node", "subscribedCapital"]
    leaves = ["-", "name", "totalCount", "cursor", "name"]
    inner = leaves[depth - 1]
    for field in reversed(chain[: depth - 1]):
        inner = f"{field} {{ {inner} }}"
    return f"query($u: USCC!) {{ {inner} }}"


CASES = [
    # (label, under, over, code, message over)
    (
        "aliases",
        aliases(3),
        aliases(4),
        "TOO_MANY_ALIASES",
        "The operation has 4 aliases; at most 3 allowed.",
    ),
    (
        "aliases through a fragment spread twice",
        f"{{ ...F }} fragment F on Query {{ a: {NAME} }}",
        f"{{ ...F ...F }} fragment F on Query {{ a: {NAME} b: {NAME} }}",
        "TOO_MANY_ALIASES",
        "The operation has 4 aliases; at most 3 allowed.",
    ),
    (
        "root fields",
        "{ __typename a: __typename b: __typename }",
        "{ __typename a: __typename b: __typename ...F } fragment F on Query { __typename }",
        "TOO_MANY_ROOT_FIELDS",
        "The operation has 4 root fields; at most 3 allowed.",
    ),
    (
        "directives",
        f'{{ enterprise(uscc: "{HANGZHOU}") @include(if: true) {{ name @skip(if: false) }} }}',
        "{ ...F @include(if: true) } fragment F on Query "
        f'{{ enterprise(uscc: "{HANGZHOU}") @include(if: true) {{ name @skip(if: false) }} }}',
        "TOO_MANY_DIRECTIVES",
        "The operation has 3 directives; at most 2 allowed.",
    ),
    (
        "field selections, leaves and fragments counted",
        f'{{ enterprise(uscc: "{HANGZHOU}") {{ name region {{ code name }} ...R }} }} '
        "fragment R on Enterprise { region { code } }",
        f'{{ enterprise(uscc: "{HANGZHOU}") {{ name region {{ code name }} ...R ...R }} }} '
        "fragment R on Enterprise { region { code } }",
        "TOO_MANY_FIELDS",
        "The operation has 9 field selections; at most 7 allowed.",
    ),
    (
        "operations per document",
        "query A { __typename } query B { __typename }",
        "query A { __typename } query B { __typename } query C { __typename }",
        "TOO_MANY_OPERATIONS",
        "The operation has 3 operations; at most 2 allowed.",
    ),
    (
        "tokens",
        "{ " + " ".join(["__typename"] * 3) + " }",
        "{ " + " ".join(f"a{i}: __typename" for i in range(50)) + " }",
        "TOO_MANY_TOKENS",
        "The document has more than 100 tokens; at most 100 allowed.",
    ),
]


@pytest.mark.parametrize(
    ("under", "over", "code", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
async def test_each_limit_serves_just_under_and_refuses_just_over(
    tight: httpx.AsyncClient,
    recorder: CommandRecorder,
    under: str,
    over: str,
    code: str,
    message: str,
) -> None:
    operation = {"operationName": "A"} if under.startswith("query A") else {}
    served = await post(tight, {"query": under, **operation})
    assert served.status_code == 200, served.text
    assert "errors" not in served.json()

    recorder.clear()
    refused = await post(tight, {"query": over, **operation})
    assert refusal(refused) == (400, code, message)
    assert recorder.commands == []


async def test_depth_counts_nesting_through_fragments(
    tight: httpx.AsyncClient, recorder: CommandRecorder
) -> None:
    served = await post(tight, {"query": nested(4), "variables": {"u": HANGZHOU}})
    assert served.status_code == 200 and "errors" not in served.json()

    recorder.clear()
    direct = await post(tight, {"query": nested(5), "variables": {"u": HANGZHOU}})
    through_fragment = await post(
        tight,
        {
            "query": "query($u: USCC!) { enterprise(uscc: $u) { ...S } } "
            "fragment S on Enterprise { shareholders { edges { node { name } } } }",
            "variables": {"u": HANGZHOU},
        },
    )
    expected = (
        400,
        "DEPTH_LIMIT_EXCEEDED",
        "The operation has 5 levels of nesting; at most 4 allowed.",
    )
    assert refusal(direct) == refusal(through_fragment) == expected
    assert recorder.commands == []


async def test_a_fragment_cycle_is_a_validation_error_not_a_hang(tight: httpx.AsyncClient) -> None:
    response = await post(
        tight, {"query": "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }"}
    )
    body = response.json()
    assert response.status_code == 200
    assert body["data"] is None
    assert [e["message"] for e in body["errors"]] == [
        "Cannot spread fragment 'A' within itself via 'B'."
    ]


COSTS = [
    # (query, variables, cost): objects × list sizes, an enterprise or badge weighing 10.
    (f"{{ {NAME} }}", {}, 10),
    (f'{{ enterprise(uscc: "{HANGZHOU}") {{ name region {{ code }} }} }}', {}, 11),
    ("{ enterprises(first: 10) { edges { node { name } } } }", {}, 1 + 10 + 100),
    ("{ enterprises { edges { node { name } } pageInfo { hasNextPage } } }", {}, 1 + 10 + 100 + 1),
    ("query($n: Int!) { enterprises(first: $n) { edges { cursor } } }", {"n": 3}, 1 + 3),
    ("query($u: [String!]!) { integrityBadges(usccs: $u) { name } }", {"u": [HANGZHOU] * 7}, 70),
    (
        f'{{ enterprise(uscc: "{HANGZHOU}") {{ businessFiles {{ stores(first: 5) '
        "{ edges { node { name } } } } } }",
        {},
        # enterprise 10 + 4 files × (1 + connection 1 + 5 edges + 5 stores)
        10 + 4 * (1 + 1 + 5 + 5),
    ),
    (
        "{ ...F ...F } fragment F on Query "
        + f'{{ a: enterprise(uscc: "{HANGZHOU}") {{ name }} }}',
        {},
        20,
    ),
    ('{ nodes(ids: ["a", "b"]) { id } }', {}, 20),
    ("{ __typename }", {}, 0),
]


@pytest.mark.parametrize(("query", "variables", "cost"), COSTS)
async def test_cost_is_reported_in_extensions(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any], cost: int
) -> None:
    response = await post(client, {"query": query, "variables": variables})
    assert response.status_code == 200
    assert response.json()["extensions"] == {"cost": {"requested": cost, "limit": 1200}}


@pytest.mark.parametrize(
    ("role", "limit"),
    [("anonymous", 1200), ("member", 10000), ("service", 30000), ("operator", 30000)],
)
async def test_cost_budget_per_viewer_kind(
    client: httpx.AsyncClient, settings: Settings, recorder: CommandRecorder, role: str, limit: int
) -> None:
    headers = {} if role == "anonymous" else bearer(settings, role)
    query = "query($n: Int!) { enterprises(first: $n) { edges { cursor } } }"
    at_limit = await post(client, {"query": query, "variables": {"n": limit - 1}}, headers=headers)
    assert at_limit.json()["extensions"] == {"cost": {"requested": limit, "limit": limit}}

    recorder.clear()
    over = await post(client, {"query": query, "variables": {"n": limit}}, headers=headers)
    assert refusal(over) == (
        400,
        "COST_LIMIT_EXCEEDED",
        f"The operation costs {limit + 1}; at most {limit} allowed for this viewer ({role}). "
        "Ask for fewer objects or smaller pages.",
    )
    assert recorder.commands == []


async def test_the_attack_of_aliased_badges_is_refused_before_any_work(
    client: httpx.AsyncClient, recorder: CommandRecorder
) -> None:
    """The issue's attack: 100 USCCs × 1,000 aliases. Refused while the body is read."""
    usccs = json.dumps([HANGZHOU] * 100)
    query = "{ " + " ".join(
        f"a{i}: integrityBadges(usccs: {usccs}) {{ name }}" for i in range(1000)
    )
    recorder.clear()
    response = await post(client, {"query": query + " }"})
    assert refusal(response) == (
        413,
        "BODY_TOO_LARGE",
        "The request body is larger than 65536 bytes, the most allowed.",
    )

    # Within the body limit the same shape is refused for its tokens, with the codes in
    # a variable for its root fields, and with two aliases for its cost.
    def badges(count: int, usccs: str) -> str:
        body = " ".join(f"a{i}: integrityBadges(usccs: {usccs}) {{ name }}" for i in range(count))
        return "query($u: [String!]!) { " + body + " }"

    assert (
        refusal(await post(client, {"query": badges(20, usccs), "variables": {"u": []}}))[1]
        == "TOO_MANY_TOKENS"
    )
    assert (
        refusal(
            await post(client, {"query": badges(11, "$u"), "variables": {"u": [HANGZHOU] * 100}})
        )[1]
        == "TOO_MANY_ROOT_FIELDS"
    )
    two = await post(client, {"query": badges(2, "$u"), "variables": {"u": [HANGZHOU] * 100}})
    assert refusal(two) == (
        400,
        "COST_LIMIT_EXCEEDED",
        "The operation costs 2000; at most 1200 allowed for this viewer (anonymous). "
        "Ask for fewer objects or smaller pages.",
    )
    assert recorder.commands == []


README_QUERIES_COST = {
    "Archive": 57,
    "Whole": 178,
    "Search": 172,
    "Badges": 30,
    "Again": 10,
    "Inbox": 43,
    "Trail": 52,
}


async def test_every_readme_query_passes_every_default_limit(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```graphql\n(.*?)```", readme, re.S)
    costs = {}
    for block in blocks:
        name = re.search(r"query (\w+)", block)
        assert name is not None
        if name.group(1) == "Verify":
            continue
        response = await post(
            client,
            {"query": block, "variables": {"uscc": HANGZHOU}},
            headers=bearer(settings, "operator"),
        )
        assert response.status_code == 200, response.text
        costs[name.group(1)] = response.json()["extensions"]["cost"]["requested"]
    assert costs == README_QUERIES_COST


def test_a_cached_documents_cost_follows_the_sizes_its_variables_give() -> None:
    """Priced once per document and sizes: each size gives its own cost, and a variable
    left out takes the argument's default."""
    query = (
        "query($n: Int, $u: [String!]!) { enterprises(first: $n) { edges { cursor } } "
        "integrityBadges(usccs: $u) { name } }"
    )
    document = cached_document(query, 2000)
    expected = {  # the connection 1 + an edge each + 10 a badge
        (5, 3): 1 + 5 + 3 * 10,
        (50, 3): 1 + 50 + 3 * 10,
        (5, 100): 1 + 5 + 100 * 10,
        (None, 1): 1 + 10 + 1 * 10,  # first: its default, 10
    }
    for _ in range(2):  # the second time from the cache
        for (first, badges), cost in expected.items():
            variables: dict[str, Any] = {"u": ["x"] * badges}
            if first is not None:
                variables["n"] = first
            assert cached_cost(schema._schema, document, None, variables) == cost
            assert operation_cost(schema._schema, document, None, variables) == cost
