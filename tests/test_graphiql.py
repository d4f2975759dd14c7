"""GraphiQL served by the gateway itself: it works on a machine without internet.

A real browser (headless Chromium, driven by playwright-core) loads the page with every
request that is not to the gateway blocked, clicks a dev token, runs a query and reads
the answer. Needs Node's packages (`make test`) and Chromium (Debian: apt-get install
chromium); without them it skips and says so, except in CI, where it fails.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import subprocess
import urllib.parse
from typing import Any

import httpx
import orjson
import pytest

from gateway.ide import ASSETS
from gateway.settings import Settings
from tests.conftest import bearer
from tests.test_deployment import NODE_TESTS, node_or_skip

HANGZHOU = "91330110MAJPDCW44H"
QUERY = f'{{ enterprise(uscc: "{HANGZHOU}") {{ name integrityLevel {{ grade }} }} }}'
#: The files as their npm packages ship them (gateway/static/graphiql/VERSIONS).
PINNED = {
    "graphiql.min.js": "22faab94067b695e5f7959619fbe686ebcc8955002a0c97d986bcbba4ad4bc2c",
    "graphiql.min.css": "b1868247f8e0502cd869e581f5f3cb55b334862e7f51b1d6cbace11059b9adc2",
    "react.production.min.js": "4b4969fa4ef3594324da2c6d78ce8766fbbc2fd121fff395aedf997db0a99a06",
    "react-dom.production.min.js": (
        "21758ed084cd0e37e735722ee4f3957ea960628a29dfa6c3ce1a1d47a2d6e4f7"
    ),
}


def _chromium_or_skip() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if found:
        return found
    missing = "Chromium is not installed (Debian: apt-get install chromium)"
    if os.environ.get("INTEGRITY_GATEWAY_REQUIRE_NODE"):
        pytest.fail(missing)
    pytest.skip(missing)


async def test_the_page_names_no_other_host_and_its_files_are_the_pinned_ones(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert re.findall(r"https?://", page.text) == []
    assert re.findall(r'(?:src|href)="([^"]+)"', page.text) == [
        "data:,",
        "/graphql-ide/graphiql.min.css",
        "/graphql-ide/react.production.min.js",
        "/graphql-ide/react-dom.production.min.js",
        "/graphql-ide/graphiql.min.js",
    ]
    for name, digest in PINNED.items():
        served = await client.get(f"/graphql-ide/{name}")
        assert served.status_code == 200
        assert hashlib.sha256(served.content).hexdigest() == digest
        assert (ASSETS / name).read_bytes() == served.content


async def _in_browser(live_server: str, role: str) -> dict[str, Any]:
    node, chromium = node_or_skip(), _chromium_or_skip()
    url = f"http://{live_server}/graphql#query={urllib.parse.quote(QUERY)}"
    ran = await asyncio.to_thread(
        subprocess.run,
        [node, str(NODE_TESTS / "graphiql.mjs"), url, role, chromium],
        capture_output=True,
        timeout=180,
        cwd=NODE_TESTS,
    )
    assert ran.returncode == 0, ran.stderr.decode()[-2000:]
    result: dict[str, Any] = orjson.loads(ran.stdout)
    return result


async def test_graphiql_runs_a_query_offline_with_a_dev_token(
    live_server: str, settings: Settings
) -> None:
    seen = await _in_browser(live_server, "member")
    assert seen["blocked"] == []  # it asked for nothing beyond the gateway
    async with httpx.AsyncClient() as http:
        direct = await http.post(
            f"http://{live_server}/graphql",
            json={"query": QUERY},
            headers=bearer(settings, "member"),
        )
    answer = orjson.loads(seen["response"])
    assert answer["data"] == direct.json()["data"]
    assert answer["data"]["enterprise"]["integrityLevel"]["grade"] is not None
    assert '"Authorization": "Bearer ' in seen["headers"]


async def test_anonymous_in_graphiql_is_anonymous(live_server: str) -> None:
    seen = await _in_browser(live_server, "anonymous")
    answer = orjson.loads(seen["response"])
    assert answer["data"]["enterprise"]["integrityLevel"] is None
    assert [e["extensions"]["code"] for e in answer["errors"]] == ["UNAUTHENTICATED"]
    assert seen["blocked"] == []
