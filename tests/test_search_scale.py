"""Search at scale: pages read in index order with bounded windows, exact results for
generated filters, stable paging under concurrent writes, cheap misses, upgrades.

A store of its own holds the search documents of 3,000 generated enterprises (the
suite's shared store has 120, too few for a window to be smaller than the matches).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pymongo import MongoClient
from redis.asyncio import Redis

from gateway.cli import main
from gateway.embedded import EmbeddedMongo
from gateway.settings import Settings, Source
from gateway.sources import Sources
from loaders import search
from loaders.indexes import ensure_indexes
from loaders.registry import ENTERPRISES
from loaders.search import (
    ALL,
    FACETS,
    FACETS_VERSION,
    FENCE_EVERY,
    SEARCH,
    Criteria,
    document_facets,
    name_terms,
    needs_rebuild,
    read_page,
    rebuild_facets,
    search_document,
)
from loaders.seed import generate
from tests.conftest import RECORDER, bearer, graphql_as, serving

GENERATED = 3000
RANDOM_SEED = 7
_PLATFORMS = (
    Source.PLATFORM_1688,
    Source.PLATFORM_TAOBAO,
    Source.PLATFORM_TMALL,
    Source.PLATFORM_ALIBABA_COM,
)
_OTHER_KINDS = ("11", "31", "A1", "N1", "Y1")
_STATUSES = ("IN_BUSINESS", "REVOKED", "CANCELLED", "MOVED_OUT", "LIQUIDATING")

Document = dict[str, Any]


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with EmbeddedMongo(tmp_path_factory.mktemp("search-scale")) as mongo:
        assert isinstance(mongo, EmbeddedMongo)
        yield mongo.url


@pytest.fixture(scope="module")
async def sources(store_url: str) -> AsyncIterator[Sources]:
    opened = Sources(dict.fromkeys(Source, store_url), timeout_ms=30_000, bulk=True)
    yield opened
    await opened.close()


@pytest.fixture(scope="module")
async def documents(sources: Sources) -> list[Document]:
    """The search documents in the store, in USCC order: the oracle."""
    batch, _ = generate(GENERATED, RANDOM_SEED)
    generated = batch[(Source.REGISTRY, SEARCH)]
    # The seeder writes kinds 91, 92 and 93 only; subjects of other kinds sort both
    # before them (11, 31) and after (A1, N1, Y1).
    twins = {
        f"{kind}{doc['_id'][2:]}": doc
        for kind, doc in zip(_OTHER_KINDS * 16, generated[:80], strict=True)
    }
    others = [
        search_document(uscc, doc["name"], doc["division"], doc["status"], doc["platforms"])
        for uscc, doc in twins.items()
    ]
    docs = sorted([*generated, *others], key=lambda doc: doc["_id"])
    await sources.db(Source.REGISTRY)[SEARCH].insert_many([dict(doc) for doc in docs])
    # Their enterprises, for searches over HTTP (another kind's: its twin's, renamed).
    enterprises = {doc["_id"]: doc for doc in batch[(Source.REGISTRY, ENTERPRISES)]}
    for uscc, twin in twins.items():
        enterprises[uscc] = {**enterprises[twin["_id"]], "_id": uscc}
    await sources.db(Source.REGISTRY)[ENTERPRISES].insert_many(list(enterprises.values()))
    assert await rebuild_facets(sources) == (
        len(docs),
        len({f for d in docs for f in d["facets"]}),
    )
    assert await ensure_indexes(sources) == set()
    return docs


def _expected(docs: list[Document], criteria: Criteria) -> list[str]:
    """Brute force: every document checked against every criterion, as a user reads them."""

    def matches(doc: Document) -> bool:
        return (
            (criteria.keyword is None or criteria.keyword in doc["name"])
            and (criteria.region is None or doc["division"].startswith(criteria.region))
            and (
                criteria.kind is None
                or (
                    doc["_id"][:2] == criteria.kind
                    if criteria.kind != "other"
                    else doc["_id"][:2] not in ("91", "92", "93")
                )
            )
            and (criteria.status is None or doc["status"] == criteria.status)
            and (criteria.platform is None or criteria.platform.value in doc["platforms"])
        )

    return [doc["_id"] for doc in docs if matches(doc)]


async def _every_page(sources: Sources, criteria: Criteria, limit: int) -> tuple[list[str], int]:
    """Every match, page after page as a client follows ``endCursor``; the page count."""
    found: list[str] = []
    after = None
    pages = 0
    while True:
        page = await read_page(sources, criteria, after=after, limit=limit)
        pages += 1
        assert len(page.usccs) <= limit
        found += page.usccs
        if not page.more:
            return found, pages
        after = page.resume if page.resume is not None else page.usccs[-1]


def _stages(plan: dict[str, Any]) -> list[str]:
    stages = []
    while plan:
        stages.append(plan["stage"])
        plan = plan.get("inputStage", {})
    return stages


@pytest.mark.parametrize(
    "criteria",
    [
        Criteria(keyword="有限公司"),
        Criteria(keyword="科技"),
        Criteria(region="44"),
        Criteria(region="3301"),
        Criteria(kind="92"),
        Criteria(status="IN_BUSINESS"),
        Criteria(platform=Source.PLATFORM_TAOBAO),
        Criteria(),
        Criteria(keyword="有限", status="IN_BUSINESS", platform=Source.PLATFORM_1688),
    ],
    ids=repr,
)
async def test_a_page_reads_the_index_in_order_bounded_by_the_page(
    sources: Sources, documents: list[Document], criteria: Criteria
) -> None:
    expected = _expected(documents, criteria)
    # A page from the middle of the matches: what is before the cursor costs nothing.
    after = expected[len(expected) // 2]
    RECORDER.clear()
    page = await read_page(sources, criteria, after=after, limit=20)
    start = expected.index(after) + 1
    assert page.usccs == expected[start : start + 20]
    assert page.more is True and page.resume is None
    windows = [query for collection, query in RECORDER.find_filters if collection == SEARCH]
    examined = 0
    for window in windows:
        explained = await sources.db(Source.REGISTRY)[SEARCH].find(window).explain()
        plan = explained["queryPlanner"]["winningPlan"]
        # Index order: no blocking SORT, no collection scan, the one facets index.
        assert _stages(plan) == ["FETCH", "IXSCAN"]
        assert plan["inputStage"]["indexName"] == "facets"
        stats = explained["executionStats"]
        assert stats["totalKeysExamined"] == stats["totalDocsExamined"] == stats["nReturned"]
        examined += stats["totalKeysExamined"]
    # Bounded by the page (21 wanted, in windows of whole fence gaps), not by the
    # matches: there are far more of those than any page examines.
    assert 21 <= examined <= 4 * FENCE_EVERY < len(expected)


@pytest.mark.parametrize("keyword", ["量子", "量子纠缠", "有限量子"])
async def test_a_keyword_no_name_has_costs_one_empty_lookup(
    sources: Sources, documents: list[Document], keyword: str
) -> None:
    assert not any(keyword in doc["name"] for doc in documents)
    RECORDER.clear()
    page = await read_page(sources, Criteria(keyword=keyword), after=None, limit=50)
    assert (page.usccs, page.more) == ([], False)
    windows = [query for collection, query in RECORDER.find_filters if collection == SEARCH]
    # A character pair no name has drives the walk: one lookup, nothing examined.
    [window] = windows
    assert list(window) == ["facets"]
    assert window["facets"] in {f"t:{pair}" for pair in name_terms(keyword)}
    assert not any(window["facets"] in doc["facets"] for doc in documents)
    explained = await sources.db(Source.REGISTRY)[SEARCH].find(windows[0]).explain()
    assert explained["executionStats"]["totalKeysExamined"] == 0


def _generated_criteria(rng: random.Random, docs: list[Document]) -> Criteria:
    keyword = None
    if rng.random() < 0.6:
        name = rng.choice(docs)["name"]
        size = rng.randint(2, min(6, len(name)))
        at = rng.randint(0, len(name) - size)
        keyword = name[at : at + size]
        if rng.random() < 0.1:
            keyword = keyword[::-1]  # often in no name at all
    region = None
    if rng.random() < 0.4:
        division = rng.choice(docs)["division"]
        region = division[: rng.choice((2, 4, 6))]
    return Criteria(
        keyword=keyword,
        region=region,
        kind=rng.choice((None, None, "91", "92", "93", "other")),
        status=rng.choice((None, None, None, *_STATUSES)),
        platform=rng.choice((None, None, *_PLATFORMS)),
    )


async def test_generated_searches_find_exactly_what_brute_force_finds(
    sources: Sources, documents: list[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(20261129)
    budget = search.SCAN_BUDGET
    short_pages = 0
    for round_ in range(300):
        criteria = _generated_criteria(rng, documents)
        expected = _expected(documents, criteria)
        # A small scan budget in every fourth round: searches whose filters reject
        # most of what they walk then stop short and go on from where they stopped.
        monkeypatch.setattr(search, "SCAN_BUDGET", 150 if round_ % 4 == 0 else budget)
        # Small pages, but no more than about eight of them for a search.
        limit = max(rng.choice((1, 7, 20, 50)), -(-len(expected) // 8))
        found, pages = await _every_page(sources, criteria, limit)
        assert found == expected, criteria
        short_pages += pages - max(1, -(-len(expected) // limit))
    # The budget did cut scans short (the resume path ran), not only full pages.
    assert short_pages > 0


async def test_paging_neither_skips_nor_repeats_under_concurrent_writes(
    sources: Sources, documents: list[Document]
) -> None:
    """Enterprises that exist throughout are each read exactly once, in order, while
    others are inserted and deleted all along the USCC range between pages."""
    collection = sources.db(Source.REGISTRY)[SEARCH]
    rng = random.Random(3)
    stable = [doc["_id"] for doc in documents]
    inserted: list[str] = []

    async def write() -> None:
        for index in range(120):
            twin = rng.choice(documents)
            uscc = f"{twin['_id'][:17]}{'ABCDEFGHJK'[index % 10]}"
            if uscc in stable or uscc in inserted:
                continue
            doc = search_document(
                uscc, twin["name"], twin["division"], twin["status"], twin["platforms"]
            )
            await collection.insert_one(doc)
            inserted.append(uscc)
            if len(inserted) > 3:
                await collection.delete_one({"_id": inserted[-4]})
            await asyncio.sleep(0)

    try:
        writer = asyncio.create_task(write())
        found: list[str] = []
        after = None
        while True:
            page = await read_page(sources, Criteria(), after=after, limit=25)
            found += page.usccs
            if not page.more:
                break
            after = page.resume if page.resume is not None else page.usccs[-1]
            await asyncio.sleep(0)
        await writer
    finally:
        await collection.delete_many({"_id": {"$in": inserted}})
    assert len(found) == len(set(found))
    assert found == sorted(found)
    assert [uscc for uscc in found if uscc not in inserted] == stable


async def test_documents_of_an_earlier_version_are_given_this_versions_facets(
    sources: Sources, documents: list[Document]
) -> None:
    """An upgrade: search documents written without facets, or with an earlier
    version's, and statistics of an earlier version."""
    registry = sources.db(Source.REGISTRY)
    old = [
        {
            "_id": f"91330106MA2{index:05d}X",
            "name": "杭州旧版数据有限公司",
            "division": "330106",
            "status": "REVOKED",
            "platforms": ["platform_taobao"],
        }
        for index in range(5)
    ]
    earlier = documents[10]
    await registry[SEARCH].insert_many(old)
    await registry[SEARCH].update_one(
        {"_id": earlier["_id"]}, {"$set": {"facets": [ALL, f"s:{earlier['status']}"]}}
    )
    await registry[FACETS].update_one({"_id": ALL}, {"$set": {"version": FACETS_VERSION - 1}})
    try:
        assert await needs_rebuild(sources) is True
        await rebuild_facets(sources)
        assert await needs_rebuild(sources) is False
        ids = [doc["_id"] for doc in [*old, earlier]]
        stored = {doc["_id"]: doc async for doc in registry[SEARCH].find({"_id": {"$in": ids}})}
        assert [stored[uscc]["facets"] for uscc in ids] == [
            document_facets(d["_id"], d["name"], d["division"], d["status"], d["platforms"])
            for d in [*old, earlier]
        ]
        page = await read_page(
            sources,
            Criteria(keyword="旧版数据", region="3301", status="REVOKED"),
            after=None,
            limit=10,
        )
        assert (page.usccs, page.more) == ([d["_id"] for d in old], False)
    finally:
        await registry[SEARCH].delete_many({"_id": {"$in": [d["_id"] for d in old]}})
        await rebuild_facets(sources)


async def test_indexes_of_earlier_versions_are_dropped(sources: Sources) -> None:
    collection = sources.db(Source.REGISTRY)[SEARCH]
    await collection.create_index([("division", 1), ("_id", 1)], name="division")
    assert "division" in await collection.index_information()
    assert await ensure_indexes(sources) == set()
    assert sorted(await collection.index_information()) == ["_id_", "facets"]


async def test_start_up_gives_an_earlier_versions_documents_their_facets(
    sources: Sources, documents: list[Document], settings: Settings, store_url: str
) -> None:
    registry = sources.db(Source.REGISTRY)
    earlier = documents[20]
    await registry[SEARCH].update_one({"_id": earlier["_id"]}, {"$unset": {"facets": ""}})
    await registry[FACETS].update_one({"_id": ALL}, {"$unset": {"version": ""}})
    assert await needs_rebuild(sources) is True
    async with serving(settings.model_copy(update={"mongodb_url": store_url})) as http:
        assert (await http.get("/readyz")).status_code == 200
        assert await needs_rebuild(sources) is False
        stored = await registry[SEARCH].find_one({"_id": earlier["_id"]})
        assert stored is not None and stored["facets"] == earlier["facets"]


def test_reindex_search_command(
    documents: list[Document],
    store_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MONGODB_URL", store_url)
    client: MongoClient[Document] = MongoClient(store_url)
    try:
        client.registry[FACETS].update_one({"_id": ALL}, {"$set": {"version": 0}})
        assert main(["reindex-search"]) == 0
        stats = client.registry[FACETS].find_one({"_id": ALL})
    finally:
        client.close()
    assert stats is not None
    assert (stats["version"], stats["count"]) == (FACETS_VERSION, len(documents))
    facets = len({facet for doc in documents for facet in doc["facets"]})
    assert capsys.readouterr().out.startswith(
        f"reindexed {len(documents)} enterprises: {facets} facets in "
    )


async def test_a_page_stopped_by_the_budget_goes_on_from_its_end_cursor(
    sources: Sources,
    documents: list[Document],
    settings: Settings,
    store_url: str,
    redis: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over HTTP: a page that ran out of budget holds fewer hits than asked, says there
    is more, and its endCursor goes on from where the scan stopped; nothing is lost. A
    hit whose enterprise is gone from the registry (the search collection not yet in
    step) is left out, and the pages still go on past it."""
    monkeypatch.setattr(search, "SCAN_BUDGET", 64)
    filter_ = {"keyword": "饰有限", "region": "44"}
    expected = _expected(documents, Criteria(keyword="饰有限", region="44"))
    enterprises = sources.db(Source.REGISTRY)[ENTERPRISES]
    # The last hit of the first page.
    gone = await enterprises.find_one({"_id": expected[9]})
    member = bearer(settings, "member")
    query = """query($f: EnterpriseFilter, $a: String) { enterprises(filter: $f, first: 10,
      after: $a) { edges { node { uscc } } pageInfo { hasNextPage endCursor } } }"""
    await enterprises.delete_one({"_id": expected[9]})
    await redis.flushdb()
    pages: list[tuple[int, bool]] = []
    found: list[str] = []
    try:
        async with serving(settings.model_copy(update={"mongodb_url": store_url})) as http:
            after = None
            while True:
                body = await graphql_as(http, member, query, {"f": filter_, "a": after})
                connection = body["data"]["enterprises"]
                found += [edge["node"]["uscc"] for edge in connection["edges"]]
                pages.append((len(connection["edges"]), connection["pageInfo"]["hasNextPage"]))
                if not connection["pageInfo"]["hasNextPage"]:
                    break
                after = connection["pageInfo"]["endCursor"]
    finally:
        await redis.flushdb()
        if gone is not None:
            await enterprises.insert_one(gone)
    assert found == expected[:9] + expected[10:] and len(expected) > 20
    assert pages[0] == (9, True)
    assert any(hits < 10 and more for hits, more in pages[1:])
    assert pages[-1][1] is False
