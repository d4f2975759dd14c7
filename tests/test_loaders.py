"""The read-through batch every loader uses: by key, one find per batch, failures per slot."""

from __future__ import annotations

import asyncio
import struct
from decimal import Decimal
from typing import Any

import pytest
from bson.decimal128 import Decimal128
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st
from redis.asyncio import Redis

from gateway.cache import DocumentCache
from gateway.embedded import free_port
from gateway.settings import Settings, Source
from gateway.sources import Sources
from loaders import create_loaders
from loaders.base import MISSING, SourceUnavailableError, exact_decimal, load_together
from tests.conftest import CommandRecorder, Stores

pytestmark = pytest.mark.usefixtures("seeded")

KNOWN = ["91330110MAJPDCW44H", "91440306MAHKW4YF02", "91310000MAPMJMU82E"]
UNKNOWN = "91110000600037341L"


@pytest.fixture
async def sources(settings: Settings) -> Sources:
    sources = Sources.from_settings(settings, None)
    yield sources
    await sources.close()


@pytest.fixture
async def cache(stores: Stores) -> DocumentCache:
    cache = DocumentCache.from_url(stores.redis_url, ttl_seconds=60)
    yield cache
    await cache.close()


@pytest.fixture
def mgets(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The keys of each MGET the document cache sends, in order."""
    sent: list[int] = []
    flush = DocumentCache._flush

    def counted(self: DocumentCache, batch: Any) -> None:
        sent.append(len(batch.keys))
        flush(self, batch)

    monkeypatch.setattr(DocumentCache, "_flush", counted)
    return sent


async def test_a_batch_is_one_find_and_maps_results_by_key(
    sources: Sources, cache: DocumentCache, cold_cache: None, recorder: CommandRecorder
) -> None:
    loaders = create_loaders(sources, cache)
    keys = [KNOWN[2], UNKNOWN, KNOWN[0], KNOWN[1], KNOWN[0]]
    docs = await asyncio.gather(*(loaders.enterprise_by_uscc.load(key) for key in keys))

    assert [doc["_id"] if doc else None for doc in docs] == [
        KNOWN[2], None, KNOWN[0], KNOWN[1], KNOWN[0]
    ]  # fmt: skip
    assert recorder.finds() == [("registry", "enterprises")]


async def test_one_to_many_gives_an_empty_list_for_none(
    sources: Sources, cache: DocumentCache, cold_cache: None
) -> None:
    loaders = create_loaders(sources, cache)
    records = await loaders.change_records_by_uscc.load_many(
        [KNOWN[0], UNKNOWN, "91440304MAEPB80A9J"]
    )
    assert [[r["seq"] for r in group] for group in records] == [[1, 3, 2], [], []]


async def test_a_down_source_fails_only_the_keys_it_had_to_answer(
    settings: Settings, cache: DocumentCache, cold_cache: None, redis: Redis
) -> None:
    live = Sources.from_settings(settings, None)
    await create_loaders(live, cache).enterprise_by_uscc.load(KNOWN[0])  # now in Redis
    await live.close()

    dead_url = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    dead = Sources({source: dead_url for source in Source}, timeout_ms=200)
    loaders = create_loaders(dead, cache)
    results = await asyncio.gather(
        loaders.enterprise_by_uscc.load(KNOWN[0]),
        loaders.enterprise_by_uscc.load(KNOWN[1]),
        return_exceptions=True,
    )
    await dead.close()

    assert results[0]["name"] == "杭州万邦网络科技有限公司"
    assert isinstance(results[1], SourceUnavailableError)
    assert results[1].extensions == {"code": "SOURCE_UNAVAILABLE", "source": "registry"}
    assert str(results[1]) == "The registry source is unavailable; try again later."
    assert await redis.exists(f"ig:2:registry:enterprises:_id:{KNOWN[1]}") == 0


async def test_loading_together_is_one_mget_and_one_find_per_loader_that_missed(
    sources: Sources,
    cache: DocumentCache,
    cold_cache: None,
    recorder: CommandRecorder,
    mgets: list[int],
) -> None:
    await create_loaders(sources, cache).authentication_by_uscc.load(KNOWN[0])  # in Redis now
    mgets.clear()
    recorder.clear()

    loaders = create_loaders(sources, cache)
    loading = loaders.enterprise_by_uscc.load(KNOWN[1])  # asked already: awaited, not re-read
    enterprises, authentications = await load_together(
        [
            (loaders.enterprise_by_uscc, [KNOWN[0], UNKNOWN, KNOWN[1], KNOWN[0]]),
            (loaders.authentication_by_uscc, [KNOWN[0], KNOWN[2]]),
        ]
    )
    assert await loading is enterprises[KNOWN[1]]
    assert mgets == [4, 1]  # the load already under way had its own batch (1 key)
    # The three finds run at once: in whatever order they were sent.
    assert sorted(recorder.find_filters, key=repr) == sorted(
        [
            ("enterprises", {"_id": {"$in": [KNOWN[0], UNKNOWN]}}),
            ("authentications", {"_id": {"$in": [KNOWN[2]]}}),  # KNOWN[0]'s was in Redis
            ("enterprises", {"_id": {"$in": [KNOWN[1]]}}),  # by the load under way
        ],
        key=repr,
    )
    assert {key: doc["_id"] if doc else None for key, doc in enterprises.items()} == {
        KNOWN[0]: KNOWN[0], UNKNOWN: None, KNOWN[1]: KNOWN[1]
    }  # fmt: skip
    assert [doc["_id"] for doc in authentications.values()] == [KNOWN[0], KNOWN[2]]
    # Primed: the fields that need them find them without another read.
    recorder.clear()
    assert loaders.authentication_by_uscc.peek(KNOWN[2]) is authentications[KNOWN[2]]
    assert await loaders.enterprise_by_uscc.load(UNKNOWN) is None
    assert recorder.finds() == [] and mgets == [4, 1]


async def test_a_guard_is_read_in_the_same_mget_and_decides_what_else_is_loaded(
    sources: Sources,
    cache: DocumentCache,
    cold_cache: None,
    recorder: CommandRecorder,
    redis: Redis,
    mgets: list[int],
) -> None:
    await create_loaders(sources, cache).enterprise_by_uscc.load(KNOWN[1])  # in Redis now
    mgets.clear()
    recorder.clear()

    loaders = create_loaders(sources, cache)
    keys = [KNOWN[0], UNKNOWN, KNOWN[1]]
    enterprises, levels = await load_together(
        [(loaders.integrity_level_by_uscc, keys)], guard=(loaders.enterprise_by_uscc, keys)
    )

    assert mgets == [6]  # the guard's three keys and the level's three, in one MGET
    # The guard's miss first; then the levels of the enterprises that exist only.
    assert recorder.find_filters == [
        ("enterprises", {"_id": {"$in": [KNOWN[0], UNKNOWN]}}),
        ("levels", {"_id": {"$in": [KNOWN[0], KNOWN[1]]}}),
    ]
    assert {key: doc["_id"] if doc else None for key, doc in enterprises.items()} == {
        KNOWN[0]: KNOWN[0], UNKNOWN: None, KNOWN[1]: KNOWN[1]
    }  # fmt: skip
    assert sorted(levels) == sorted([KNOWN[0], KNOWN[1]])
    assert levels[KNOWN[0]]["grade"] == "B"
    assert loaders.integrity_level_by_uscc.peek(KNOWN[0]) is levels[KNOWN[0]]  # primed
    assert loaders.integrity_level_by_uscc.peek(UNKNOWN) is MISSING  # never asked, never primed
    assert await redis.exists(f"ig:2:integrity:levels:_id:{UNKNOWN}") == 0


async def test_loading_together_leaves_a_down_sources_error_for_its_fields(
    cache: DocumentCache, cold_cache: None
) -> None:
    dead_url = f"mongodb://127.0.0.1:{free_port()}/?directConnection=true"
    dead = Sources({source: dead_url for source in Source}, timeout_ms=200)
    loaders = create_loaders(dead, cache)
    try:
        [found] = await load_together([(loaders.integrity_level_by_uscc, [KNOWN[0]])])
        assert isinstance(found[KNOWN[0]], SourceUnavailableError)
        with pytest.raises(SourceUnavailableError):
            loaders.integrity_level_by_uscc.peek(KNOWN[0])
        with pytest.raises(SourceUnavailableError):  # a field that loads it gets it too
            await loaders.integrity_level_by_uscc.load(KNOWN[0])
    finally:
        await dead.close()


async def test_clearing_a_loader_forgets_what_was_loaded_together(
    sources: Sources, cache: DocumentCache
) -> None:
    loaders = create_loaders(sources, cache)
    await load_together([(loaders.enterprise_by_uscc, KNOWN[:2])])
    assert loaders.enterprise_by_uscc.peek(KNOWN[0])["_id"] == KNOWN[0]

    loaders.enterprise_by_uscc.clear(KNOWN[0])
    assert loaders.enterprise_by_uscc.peek(KNOWN[0]) is MISSING
    assert loaders.enterprise_by_uscc.peek(KNOWN[1])["_id"] == KNOWN[1]
    loaders.enterprise_by_uscc.clear_all()
    assert loaders.enterprise_by_uscc.peek(KNOWN[1]) is MISSING


def _long_form(significand: int) -> Decimal128:
    """A Decimal128 in the form whose combination bits are 11 (a significand of more
    than 34 digits, which reads as zero)."""
    high = (3 << 61) | (6176 << 47) | ((significand >> 64) & ((1 << 47) - 1))
    return Decimal128.from_bid(struct.pack("<QQ", significand & (2**64 - 1), high))


@examples(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
            lambda value: -6143 <= value.adjusted() <= 6144 and len(value.as_tuple().digits) <= 34
        ),
        st.sampled_from(
            ["NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "0", "-0", "0E-6176", "1E+6111"]
        ).map(Decimal),
        st.integers(min_value=0, max_value=2**113 - 1).map(_long_form),
    )
)
def test_an_amount_is_read_exactly_as_bson_reads_it(value: Decimal | Decimal128) -> None:
    stored = value if isinstance(value, Decimal128) else Decimal128(value)
    ours, bsons = exact_decimal(stored), stored.to_decimal()
    assert str(ours) == str(bsons)
    assert ours.as_tuple() == bsons.as_tuple() or (ours.is_nan() and bsons.is_nan())


def test_an_amount_that_is_no_decimal128_is_read_as_a_decimal() -> None:
    assert exact_decimal(12) == Decimal(12)
    assert str(exact_decimal("12.50")) == "12.50"
