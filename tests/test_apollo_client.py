"""A real Apollo Client (Node, @apollo/client 3) against a live gateway: two queries over
one enterprise with different selections, then both read back from the normalised cache.

Without type policies the cache replaces the objects that have no id (the issue's
"Cache data may be lost" warning) and the first query can no longer be read; with the
README's (tests/node/type-policies.mjs) both read back whole, and no warning is given.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import orjson

from gateway.settings import Settings
from tests.conftest import bearer
from tests.test_deployment import NODE_TESTS, node_or_skip

ROOT = Path(__file__).resolve().parents[1]
HANGZHOU = "91330110MAJPDCW44H"


async def _apollo(node: str, url: str, token: str, *flags: str) -> dict[str, Any]:
    script = str(NODE_TESTS / "apollo-cache.mjs")
    ran = await asyncio.to_thread(
        subprocess.run,
        [node, script, url, token, HANGZHOU, *flags],
        capture_output=True,
        timeout=120,
        cwd=NODE_TESTS,
    )
    assert ran.returncode == 0, ran.stderr.decode()
    result: dict[str, Any] = orjson.loads(ran.stdout)
    return result


def _queries() -> dict[str, str]:
    """The script's queries, as it sends them."""
    text = (NODE_TESTS / "apollo-cache.mjs").read_text()
    return dict(re.findall(r"(\w+): gql`(.*?)`", text, re.S))


def _without_typenames(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_typenames(v) for k, v in value.items() if k != "__typename"}
    if isinstance(value, list):
        return [_without_typenames(item) for item in value]
    return value


async def test_both_selections_stay_readable_with_the_readme_type_policies(
    live_server: str, settings: Settings
) -> None:
    node = node_or_skip()
    headers = bearer(settings, "member")
    token = headers["authorization"].removeprefix("Bearer ")
    url = f"http://{live_server}/graphql"
    with_policies = await _apollo(node, url, token)
    without = await _apollo(node, url, token, "--no-policies")

    # What the gateway answers each query, asked directly.
    answers = {}
    async with httpx.AsyncClient(timeout=30) as http:
        for name, query in _queries().items():
            response = await http.post(
                url, json={"query": query, "variables": {"u": HANGZHOU}}, headers=headers
            )
            answers[name] = response.json()["data"]
    assert set(answers) == {"Summary", "Details"}

    assert with_policies["warnings"] == []
    reads = with_policies["reads"]
    assert {name: _without_typenames(read) for name, read in reads.items()} == answers
    # Without them: the first selection is lost, with Apollo's data-loss warning (its
    # message 15, "Cache data may be lost when replacing the … field").
    assert without["reads"]["Summary"] is None
    assert _without_typenames(without["reads"]["Details"]) == answers["Details"]
    assert without["warnings"] and all("%22message%22%3A15" in w for w in without["warnings"])


def test_the_readme_shows_the_type_policies_the_test_uses() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    policies = (NODE_TESTS / "type-policies.mjs").read_text(encoding="utf-8")
    assert f"```js\n{policies}```" in readme
