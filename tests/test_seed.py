"""The seeder: deterministic, valid codes, every source filled, idempotent, and careful."""

from __future__ import annotations

import hashlib
from collections import Counter
from decimal import Decimal
from typing import Any

import bson
import pytest

from gateway.settings import Settings, Source
from gateway.sources import Sources
from loaders import identity, integrity, platforms, registry
from loaders.codes import validate_id_number, validate_uscc
from loaders.seed import MARKER_COLLECTION, SeedRefusedError, generate, seed
from tests.conftest import RANDOM_SEED, SEEDED_ENTERPRISES

ALL_COLLECTIONS = {
    "registry.enterprises",
    "registry.enterprise_search",
    "registry.change_records",
    "registry.legal_representatives",
    "identity.authentications",
    "integrity.levels",
    "integrity.service_status",
    *(
        f"{source.value}.{name}"
        for source in platforms.PLATFORMS
        for name in (platforms.STORES, platforms.STATISTICS, platforms.RISK_RECORDS)
    ),
    "platform_1688.chengxintong",
    "platform_1688.certifications",
    "platform_alibaba_com.certifications",
}


def test_same_arguments_give_the_same_documents() -> None:
    first, first_usccs = generate(40, 7)
    second, second_usccs = generate(40, 7)
    assert first == second
    assert first_usccs == second_usccs
    _, other_usccs = generate(40, 8)
    assert set(other_usccs).isdisjoint(first_usccs)


def test_a_smaller_seed_is_a_prefix_of_a_larger_one() -> None:
    small, small_usccs = generate(10, 7)
    large, large_usccs = generate(40, 7)
    assert large_usccs[:10] == small_usccs
    for key, docs in small.items():
        assert large[key][: len(docs)] == docs


def test_nothing_happens_to_an_enterprise_before_it_was_established() -> None:
    batch, _ = generate(2000, 3)
    established = {
        doc["_id"]: doc["established_on"] for doc in batch[(Source.REGISTRY, registry.ENTERPRISES)]
    }
    events: list[tuple[str, str, Any]] = []
    for doc in batch[(Source.IDENTITY, identity.AUTHENTICATIONS)]:
        events += [(doc["_id"], "verified_at", doc["verified_at"])]
        if doc["verified_at"] is not None:
            assert doc["expires_at"] > doc["verified_at"]
    for doc in batch[(Source.INTEGRITY, integrity.SERVICE_STATUS)]:
        events.append((doc["_id"], "since", doc["since"]))
    for doc in batch[(Source.INTEGRITY, integrity.LEVELS)]:
        events.append((doc["_id"], "evaluated_at", doc["evaluated_at"]))
    for source in platforms.PLATFORMS:
        for collection, field in (
            (platforms.STORES, "opened_on"),
            (platforms.RISK_RECORDS, "occurred_on"),
            (platforms.CERTIFICATIONS, "certified_on"),
        ):
            events += [(d["uscc"], field, d[field]) for d in batch.get((source, collection), [])]
    early = [
        (uscc, field, day, established[uscc])
        for uscc, field, day in events
        if day is not None and day <= established[uscc]
    ]
    assert len(events) > 10_000
    assert early == []


def test_every_source_and_field_is_filled_with_valid_codes() -> None:
    batch, usccs = generate(300, 3)
    assert {f"{source.value}.{name}" for source, name in batch} == ALL_COLLECTIONS
    assert len(set(usccs)) == 300
    assert all(validate_uscc(uscc) == uscc for uscc in usccs)
    kinds = Counter(uscc[:2] for uscc in usccs)
    assert set(kinds) == {"91", "92", "93"}

    representatives = batch[(Source.REGISTRY, registry.LEGAL_REPRESENTATIVES)]
    assert all(validate_id_number(r["id_number"]) == r["id_number"] for r in representatives)
    assert len({r["id_number"] for r in representatives}) == 300

    statuses = Counter(d["status"] for d in batch[(Source.INTEGRITY, "service_status")])
    assert statuses["ACTIVE"] > statuses["SUSPENDED"] > 0
    assert statuses["TERMINATED"] > 0
    on_platform = {
        source: len(batch[(source, platforms.STATISTICS)]) for source in platforms.PLATFORMS
    }
    assert all(0 < count < 300 for count in on_platform.values())  # some absent from each


def test_derived_figures_agree_with_the_records() -> None:
    batch, _ = generate(300, 3)
    for source in platforms.PLATFORMS:
        stores = Counter(d["uscc"] for d in batch[(source, platforms.STORES)])
        risks = Counter((d["uscc"], d["kind"]) for d in batch[(source, platforms.RISK_RECORDS)])
        for stats in batch[(source, platforms.STATISTICS)]:
            uscc = stats["_id"]
            assert stats["store_count"] == stores[uscc]
            assert stats["dispute_count"] == risks[(uscc, "DISPUTE")]
            assert stats["complaint_count"] == risks[(uscc, "COMPLAINT")]
            assert stats["punishment_count"] == risks[(uscc, "PUNISHMENT")]
    for enterprise in batch[(Source.REGISTRY, registry.ENTERPRISES)]:
        holders = enterprise["shareholders"]
        if holders:
            capital = enterprise["registered_capital"]["amount"].to_decimal()
            assert sum(h["subscribed_capital"]["amount"].to_decimal() for h in holders) == capital
            assert sum(h["ratio_percent"].to_decimal() for h in holders) == Decimal(100)


async def _fingerprint(sources: Sources) -> dict[str, tuple[int, str]]:
    """Per collection: document count and a hash of every document, in _id order. A
    sealed ID number counts by what it opens to (each sealing has a fresh nonce)."""
    prints = {}
    for source in Source:
        db = sources.db(source)
        for name in sorted(await db.list_collection_names()):
            if name == MARKER_COLLECTION:
                continue
            digest = hashlib.sha256()
            count = 0
            async for doc in db[name].find({}).sort("_id", 1):
                if name == registry.LEGAL_REPRESENTATIVES:
                    doc["id_number"] = sources.pii.open(doc["_id"], doc["id_number"])
                digest.update(bson.encode(doc))
                count += 1
            prints[f"{source.value}.{name}"] = (count, digest.hexdigest())
    return prints


@pytest.fixture
async def bulk_sources(settings: Settings, seeded: list[str]) -> Sources:
    sources = Sources.from_settings(settings, None, bulk=True)
    yield sources
    await sources.close()


async def test_reseeding_with_the_same_arguments_changes_nothing(bulk_sources: Sources) -> None:
    before = await _fingerprint(bulk_sources)
    report = await seed(bulk_sources, enterprises=SEEDED_ENTERPRISES, random_seed=RANDOM_SEED)
    after = await _fingerprint(bulk_sources)

    assert after == before
    # What the seeder writes, and the search facets' statistics derived from it.
    assert set(before) == ALL_COLLECTIONS | {"registry.enterprise_search_facets"}
    assert before["registry.enterprises"][0] == SEEDED_ENTERPRISES
    assert report.documents == {
        name: count for name, (count, _) in before.items() if name in ALL_COLLECTIONS
    }


async def test_seed_refuses_a_registry_it_did_not_write(bulk_sources: Sources) -> None:
    marker_collection = bulk_sources.db(Source.REGISTRY)[MARKER_COLLECTION]
    marker = await marker_collection.find_one({"_id": "seed"})
    await marker_collection.delete_one({"_id": "seed"})
    try:
        with pytest.raises(SeedRefusedError):
            await seed(bulk_sources, enterprises=5, random_seed=1)
        count = await bulk_sources.db(Source.REGISTRY)["enterprises"].count_documents({})
        assert count == SEEDED_ENTERPRISES
    finally:
        await marker_collection.insert_one(marker)
