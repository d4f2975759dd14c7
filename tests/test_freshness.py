"""The change-stream watcher: a document changed straight in MongoDB shows in the next
answer, lists and search pages included, and a restart misses nothing.

The gateway here runs with its watcher (the suite's other apps run without one). Each
test changes seeded documents and puts them back, so the seed stays as it was.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from gateway.cli import main
from gateway.settings import Settings, Source
from gateway.sources import GATEWAY_DATABASE, Sources
from gateway.watcher import RESUME_TOKENS
from loaders.base import cache_key
from loaders.search import GENERATION, rebuild_facets
from tests.conftest import Stores, bearer, graphql, graphql_as, serving

#: How long a test waits for the watcher before failing (a guard, not a measurement:
#: bench/freshness.py measures the delay).
PATIENCE_S = 15.0

ARCHIVE = """
query ($u: USCC!) {
  enterprise(uscc: $u) {
    name registeredAddress
    serviceStatus { state }
    integrityLevel { grade }
    businessFiles { platform stores { totalCount edges { node { name } } } }
  }
}
"""
SEARCH = """
query ($k: String!) { enterprises(filter: {keyword: $k}, first: 10) { edges { node { uscc } } } }
"""


@pytest.fixture(scope="module")
def watched(settings: Settings) -> Settings:
    return settings.model_copy(update={"watcher_enabled": True})


@pytest.fixture(scope="module", autouse=True)
async def facets_restored(settings: Settings, seeded: list[str]) -> AsyncIterator[None]:
    """The tests put every document back; the facet statistics they moved (counts, and
    facets no enterprise has any more) are made exact again, as the seed left them."""
    yield
    sources = Sources.from_settings(settings, None, bulk=True)
    try:
        await rebuild_facets(sources)
    finally:
        await sources.close()


@pytest.fixture
async def gateway(watched: Settings, seeded: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(watched) as client:
        await client._transport.app.state.watcher.wait_open()  # type: ignore[attr-defined]
        yield client


async def eventually(
    ask: Callable[[], Awaitable[Any]], wanted: Callable[[Any], bool]
) -> tuple[Any, float]:
    """Ask until the answer is the wanted one; the answer and how long it took."""
    started = time.monotonic()
    while True:
        answer = await ask()
        if wanted(answer):
            return answer, time.monotonic() - started
        if time.monotonic() - started > PATIENCE_S:
            raise AssertionError(f"still {answer!r} after {PATIENCE_S}s")
        await asyncio.sleep(0.02)


def member(settings: Settings) -> dict[str, str]:
    return bearer(settings, "member")


async def test_a_direct_update_shows_in_the_next_answer(
    gateway: httpx.AsyncClient,
    watched: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
    redis: Redis,
) -> None:
    uscc = seeded[3]
    enterprises = mongo["registry"]["enterprises"]
    original = await enterprises.find_one({"_id": uscc})
    assert original is not None

    async def address() -> str:
        body = await graphql(
            gateway, "query($u: USCC!){enterprise(uscc:$u){registeredAddress}}", {"u": uscc}
        )
        return str(body["data"]["enterprise"]["registeredAddress"])

    assert await address() == original["address"]
    assert await redis.exists(cache_key(Source.REGISTRY, "enterprises", "_id", uscc)) == 1
    try:
        await enterprises.update_one({"_id": uscc}, {"$set": {"address": "更正后的地址 1 号"}})
        answer, _ = await eventually(address, lambda found: found != original["address"])
        assert answer == "更正后的地址 1 号"
    finally:
        await enterprises.replace_one({"_id": uscc}, original)
    answer, _ = await eventually(address, lambda found: found == original["address"])
    assert answer == original["address"]


async def test_a_suspension_written_elsewhere_withholds_the_grade(
    gateway: httpx.AsyncClient,
    watched: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    statuses = mongo["integrity"]["service_status"]
    active = [doc async for doc in statuses.find({"_id": {"$in": seeded}, "status": "ACTIVE"})]
    uscc = active[0]["_id"]

    async def level() -> dict[str, Any]:
        body = await graphql_as(gateway, member(watched), ARCHIVE, {"u": uscc})
        return body

    before = await level()
    assert before["data"]["enterprise"]["serviceStatus"] == {"state": "ACTIVE"}
    assert before["data"]["enterprise"]["integrityLevel"]["grade"]
    try:
        await statuses.update_one(
            {"_id": uscc}, {"$set": {"status": "SUSPENDED", "reason": "测试：暂停展示"}}
        )
        after, _ = await eventually(
            level, lambda body: body["data"]["enterprise"]["serviceStatus"]["state"] != "ACTIVE"
        )
    finally:
        await statuses.replace_one({"_id": uscc}, active[0])
    told = mongo[GATEWAY_DATABASE]["notifications"]
    await eventually(
        lambda: told.count_documents({"uscc": uscc, "kind": "STATUS"}), lambda n: n == 2
    )
    titles = [doc["title"] async for doc in told.find({"uscc": uscc}).sort("_id", 1)]
    assert titles == ["Integrity service suspended", "Integrity service active"]
    await told.delete_many({"uscc": uscc})
    assert after["data"]["enterprise"]["serviceStatus"] == {"state": "SUSPENDED"}
    assert after["data"]["enterprise"]["integrityLevel"] is None
    assert [error["extensions"]["code"] for error in after["errors"]] == ["SERVICE_SUSPENDED"]
    await eventually(level, lambda body: "errors" not in body)


async def test_a_store_changed_or_deleted_leaves_its_enterprise_list(
    gateway: httpx.AsyncClient,
    watched: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    """Stores are cached as each enterprise's list (by ``uscc``): an update names the
    list through its post-image, a delete through its pre-image."""
    stores = mongo["platform_taobao"]["stores"]
    store = await stores.find_one({"uscc": {"$in": seeded}})
    assert store is not None
    uscc = store["uscc"]

    async def names() -> list[str]:
        body = await graphql_as(gateway, member(watched), ARCHIVE, {"u": uscc})
        files = body["data"]["enterprise"]["businessFiles"]
        taobao = next(file for file in files if file["platform"] == "TAOBAO")
        return [edge["node"]["name"] for edge in taobao["stores"]["edges"]]

    listed = await names()
    assert store["name"] in listed
    try:
        await stores.update_one({"_id": store["_id"]}, {"$set": {"name": "改名后的店"}})
        renamed, _ = await eventually(names, lambda found: "改名后的店" in found)
        assert len(renamed) == len(listed)
        await stores.delete_one({"_id": store["_id"]})
        remaining, _ = await eventually(names, lambda found: len(found) == len(listed) - 1)
        assert "改名后的店" not in remaining
    finally:
        await stores.replace_one({"_id": store["_id"]}, store, upsert=True)
    restored, _ = await eventually(names, lambda found: len(found) == len(listed))
    assert sorted(restored) == sorted(listed)


async def test_a_deleted_enterprise_is_null_and_leaves_search(
    gateway: httpx.AsyncClient,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
    redis: Redis,
) -> None:
    uscc = seeded[5]
    enterprises = mongo["registry"]["enterprises"]
    original = await enterprises.find_one({"_id": uscc})
    assert original is not None
    keyword = original["name"][:4]

    async def found() -> tuple[Any, list[str]]:
        one = await graphql(gateway, "query($u: USCC!){enterprise(uscc:$u){uscc}}", {"u": uscc})
        hits = await graphql(gateway, SEARCH, {"k": keyword})
        usccs = [edge["node"]["uscc"] for edge in hits["data"]["enterprises"]["edges"]]
        return one["data"]["enterprise"], usccs

    # Twice: the first search starts a generation, the second is cached in it.
    await found()
    enterprise, usccs = await found()
    assert enterprise == {"uscc": uscc} and uscc in usccs
    generation = await redis.get(GENERATION)
    try:
        await enterprises.delete_one({"_id": uscc})
        # (A page still naming it would show it no more: its archive is gone.)
        await eventually(lambda: redis.get(GENERATION), lambda now: now != generation)
        search = await mongo["registry"]["enterprise_search"].find_one({"_id": uscc})
        assert search is None
        enterprise, usccs = await found()
        assert enterprise is None and uscc not in usccs
    finally:
        await enterprises.insert_one(original)
    (enterprise, usccs), _ = await eventually(found, lambda got: uscc in got[1])
    assert enterprise == {"uscc": uscc}


async def test_a_renamed_enterprise_is_found_by_its_new_name_only(
    gateway: httpx.AsyncClient,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
) -> None:
    uscc = seeded[7]
    enterprises = mongo["registry"]["enterprises"]
    facets = mongo["registry"]["enterprise_search_facets"]
    original = await enterprises.find_one({"_id": uscc})
    assert original is not None
    counted = await facets.find_one({"_id": "t:鑫澜"})

    async def hits(keyword: str) -> list[str]:
        body = await graphql(gateway, SEARCH, {"k": keyword})
        return [edge["node"]["uscc"] for edge in body["data"]["enterprises"]["edges"]]

    assert counted is None  # no seeded name has the pair
    assert await hits("鑫澜") == []
    try:
        await enterprises.update_one({"_id": uscc}, {"$set": {"name": "鑫澜测试有限公司"}})
        await eventually(lambda: hits("鑫澜"), lambda found: found == [uscc])
        old_word = original["name"][:4]
        assert uscc not in await hits(old_word)
        renamed = await facets.find_one({"_id": "t:鑫澜"})
        assert renamed is not None
        assert renamed["count"] == 1
    finally:
        await enterprises.replace_one({"_id": uscc}, original)
    await eventually(lambda: hits("鑫澜"), lambda found: uscc not in found)
    restored = await facets.find_one({"_id": "t:鑫澜"})
    assert restored is not None and restored["count"] == 0


async def test_a_restart_resumes_where_it_stopped(
    watched: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
    redis: Redis,
) -> None:
    """Changed while no watcher runs: the cached entry outlives the gateway, and the
    next gateway's watcher replays the change from its stored token."""
    uscc = seeded[9]
    enterprises = mongo["registry"]["enterprises"]
    original = await enterprises.find_one({"_id": uscc})
    assert original is not None
    query = "query($u: USCC!){enterprise(uscc:$u){businessScope}}"
    async with serving(watched) as client:
        await client._transport.app.state.watcher.wait_open()  # type: ignore[attr-defined]
        body = await graphql(client, query, {"u": uscc})
        assert body["data"]["enterprise"]["businessScope"] == original["business_scope"]
    tokens = mongo[GATEWAY_DATABASE][RESUME_TOKENS]
    assert await tokens.count_documents({}) == len(Source)
    try:
        await enterprises.update_one({"_id": uscc}, {"$set": {"business_scope": "停机期间改的"}})
        key = cache_key(Source.REGISTRY, "enterprises", "_id", uscc)
        assert await redis.exists(key) == 1  # nobody evicted it while no watcher ran
        async with serving(watched) as client:
            watcher = client._transport.app.state.watcher  # type: ignore[attr-defined]
            await watcher.wait_open()

            async def scope() -> str:
                body = await graphql(client, query, {"u": uscc})
                return str(body["data"]["enterprise"]["businessScope"])

            await eventually(scope, lambda found: found == "停机期间改的")
            # Replayed from the token (handled counts once search is in step too).
            await eventually(
                lambda: asyncio.sleep(0, watcher.handled[Source.REGISTRY]), lambda n: n >= 1
            )
    finally:
        await enterprises.replace_one({"_id": uscc}, original)


async def test_a_token_that_cannot_resume_evicts_the_source(
    watched: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
    redis: Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    uscc = seeded[11]
    key = cache_key(Source.IDENTITY, "authentications", "_id", uscc)
    # An earlier test's eviction may have left a tombstone (SET NX then keeps the read
    # from being written back): start from no entry at all.
    await redis.delete(key)
    async with serving(watched) as client:
        await client._transport.app.state.watcher.wait_open()  # type: ignore[attr-defined]
        await graphql(
            client,
            "query($u: USCC!){enterprise(uscc:$u){identityAuthentication{verified}}}",
            {"u": uscc},
        )
    assert await redis.get(key)
    tokens = mongo[GATEWAY_DATABASE][RESUME_TOKENS]
    await tokens.update_one({"_id": "identity"}, {"$set": {"token": {"_data": "00"}}})

    with caplog.at_level("WARNING", logger="gateway.watcher"):
        async with serving(watched) as client:
            await client._transport.app.state.watcher.wait_open()  # type: ignore[attr-defined]
    assert any("identity: the change stream cannot resume" in r.message for r in caplog.records)
    assert await redis.get(key) == b""  # a tombstone: read as a miss
    stored = await tokens.find_one({"_id": "identity"})
    assert stored is not None and stored["token"] != {"_data": "00"}


def test_watch_alone_needs_real_urls(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MONGODB_URL", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["watch"]) == 2
    assert "set MONGODB_URL and REDIS_URL" in capsys.readouterr().err


async def test_watch_runs_apart_from_the_gateway(
    stores: Stores,
    settings: Settings,
    seeded: list[str],
    mongo: AsyncMongoClient[dict[str, Any]],
    redis: Redis,
    tmp_path: Path,
) -> None:
    """``integrity-gateway watch`` as its own process: it evicts what changes, and stops
    cleanly on SIGTERM."""
    uscc = seeded[13]
    key = cache_key(Source.INTEGRITY, "levels", "_id", uscc)
    await redis.set(key, b"cached level")
    environment = {
        **os.environ,
        "MONGODB_URL": stores.mongodb_url,
        "REDIS_URL": stores.redis_url,
        "GATEWAY_DATA_DIR": str(tmp_path),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "watch",
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(PATIENCE_S):
            line = await process.stdout.readline()
        assert line.decode().startswith("watching every source for changes")
        levels = mongo["integrity"]["levels"]
        await levels.update_one({"_id": uscc}, {"$inc": {"score": 1}})
        await levels.update_one({"_id": uscc}, {"$inc": {"score": -1}})
        await eventually(lambda: redis.get(key), lambda value: value == b"")
    finally:
        process.terminate()
        async with asyncio.timeout(PATIENCE_S):
            out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert out.decode() == "watch: stopped\n"


def test_the_eviction_grace_outlasts_any_request_deadline() -> None:
    """Derived from the deadline unless set; set, it must be longer than a request."""
    assert Settings(request_deadline_ms=3_000).eviction_grace_seconds == 30
    assert Settings(request_deadline_ms=30_000).eviction_grace_seconds == 35
    assert Settings(cache_eviction_grace_seconds=90).eviction_grace_seconds == 90
    with pytest.raises(ValueError, match="CACHE_EVICTION_GRACE_SECONDS must be longer"):
        Settings(request_deadline_ms=30_000, cache_eviction_grace_seconds=30)
