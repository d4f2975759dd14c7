"""Round trips per request are bounded by the (source, collection) pairs touched, never by
the number of enterprises: counted with a pymongo command listener and on the cache."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from redis.asyncio import Redis

from gateway.cache import DocumentCache
from gateway.settings import Settings
from tests.conftest import CommandRecorder, bearer, graphql_as
from tests.test_visibility import FULL

pytestmark = pytest.mark.usefixtures("seeded")

ARCHIVE_PAGE = """
query($uscc: USCC!) {
  enterprise(uscc: $uscc) {
    uscc name kind region { code name province } status operatingPeriod { start end }
    registeredAddress establishedOn registeredCapital { amount currency } businessScope
    registrationAuthority legalRepresentative { name maskedIdNumber }
    shareholders(first: 50) {
      edges { node { name kind subscribedCapital { amount currency } ratioPercent } }
    }
    updatedAt
    changeRecords(first: 50) { totalCount edges { node { date item before after } } }
    identityAuthentication { verified status verifiedAt expiresAt method evidenceReference }
    serviceStatus { state since reason }
    integrityLevel { grade score evaluatedAt validUntil }
    businessFiles {
      platform storeCount disputeCount complaintCount punishmentCount
      stores(first: 50) {
        totalCount edges { node { name address mainCategories status openedOn } }
      }
      chengxintong { yearsOpen cumulativeTransactions buyerCount repeatPurchaseRatePercent }
      certifications(first: 50) { edges { node { agency certifiedOn validUntil result } } }
      riskRecords(first: 50) {
        totalCount edges { node { kind occurredOn title outcome resolvedOn } }
      }
    }
  }
}
"""

#: registry: enterprises, change_records, legal_representatives; identity: authentications;
#: integrity: levels, service_status; each platform: statistics, stores, risk_records;
#: 1688: chengxintong, certifications; Alibaba.com: certifications.
ARCHIVE_PAIRS = 21

BADGES = """
query($usccs: [String!]!) {
  integrityBadges(usccs: $usccs) { uscc name verified grade gradeLabel serviceState updatedAt }
}
"""
#: registry.enterprises, identity.authentications, integrity.levels, integrity.service_status
BADGE_PAIRS = 4


@dataclass
class CacheCalls:
    reads: int = 0
    writes: int = 0

    @property
    def round_trips(self) -> int:
        return self.reads + self.writes


@pytest.fixture
def cache_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[CacheCalls]:
    """Counts the cache's Redis round trips: one per MGET, one per pipelined write-back."""
    calls = CacheCalls()
    get_many, set_many = DocumentCache.get_many, DocumentCache.set_many

    async def counted_get(self: DocumentCache, keys: list[str]) -> dict[str, bytes]:
        calls.reads += 1
        return await get_many(self, keys)

    async def counted_set(self: DocumentCache, items: dict[str, bytes]) -> None:
        calls.writes += 1
        await set_many(self, items)

    monkeypatch.setattr(DocumentCache, "get_many", counted_get)
    monkeypatch.setattr(DocumentCache, "set_many", counted_set)
    yield calls


async def test_an_archive_page_with_every_field(
    client: httpx.AsyncClient,
    settings: Settings,
    cold_cache: None,
    recorder: CommandRecorder,
    cache_calls: CacheCalls,
) -> None:
    operator = bearer(settings, "operator")
    cold = await graphql_as(client, operator, ARCHIVE_PAGE, {"uscc": FULL})
    cold_finds = recorder.finds()
    cold_trips = cache_calls.round_trips

    recorder.clear()
    cache_calls.reads = cache_calls.writes = 0
    warm = await graphql_as(client, operator, ARCHIVE_PAGE, {"uscc": FULL})

    assert "errors" not in cold
    assert warm == cold
    assert len(cold_finds) == len(set(cold_finds)) == ARCHIVE_PAIRS
    assert cold_trips <= 2 * ARCHIVE_PAIRS  # one MGET and one write-back per pair
    assert recorder.finds() == []
    assert cache_calls.writes == 0
    assert cache_calls.reads <= ARCHIVE_PAIRS


async def _badge_costs(
    client: httpx.AsyncClient,
    settings: Settings,
    usccs: list[str],
    recorder: CommandRecorder,
    cache_calls: CacheCalls,
) -> tuple[int, int, int, int]:
    member = bearer(settings, "member")
    recorder.clear()
    cache_calls.reads = cache_calls.writes = 0
    cold = await graphql_as(client, member, BADGES, {"usccs": usccs})
    cold_costs = (len(recorder.finds()), cache_calls.round_trips)
    recorder.clear()
    cache_calls.reads = cache_calls.writes = 0
    warm = await graphql_as(client, member, BADGES, {"usccs": usccs})
    assert warm == cold
    assert [badge["uscc"] for badge in cold["data"]["integrityBadges"]] == usccs
    return (*cold_costs, len(recorder.finds()), cache_calls.round_trips)


async def test_badges_cost_the_same_for_10_and_100(
    client: httpx.AsyncClient,
    settings: Settings,
    seeded: list[str],
    redis: Redis,
    recorder: CommandRecorder,
    cache_calls: CacheCalls,
) -> None:
    await redis.flushdb()
    ten = await _badge_costs(client, settings, seeded[:10], recorder, cache_calls)
    await redis.flushdb()
    hundred = await _badge_costs(client, settings, seeded[:100], recorder, cache_calls)

    cold_finds, cold_trips, warm_finds, warm_trips = hundred
    assert ten == hundred
    assert cold_finds == BADGE_PAIRS
    assert cold_trips == 2 * BADGE_PAIRS
    assert warm_finds == 0
    assert warm_trips == BADGE_PAIRS


SEARCH_PAGE = """
query($first: Int!) {
  enterprises(first: $first) {
    edges {
      node {
        uscc name
        identityAuthentication { verified }
        integrityLevel { grade }
        businessFiles { platform storeCount }
      }
    }
  }
}
"""
#: registry: enterprise_search, enterprises; identity.authentications; integrity: levels,
#: service_status; statistics on each of the four platforms.
SEARCH_PAIRS = 9


async def _search_costs(
    client: httpx.AsyncClient,
    settings: Settings,
    first: int,
    redis: Redis,
    recorder: CommandRecorder,
    cache_calls: CacheCalls,
) -> tuple[int, int, int, int]:
    service = bearer(settings, "service")
    await redis.flushdb()
    recorder.clear()
    cache_calls.reads = cache_calls.writes = 0
    cold = await graphql_as(client, service, SEARCH_PAGE, {"first": first})
    cold_costs = (len(recorder.finds()), cache_calls.round_trips)
    assert len(set(recorder.finds())) == len(recorder.finds())
    recorder.clear()
    cache_calls.reads = cache_calls.writes = 0
    warm = await graphql_as(client, service, SEARCH_PAGE, {"first": first})
    assert warm == cold
    assert len(cold["data"]["enterprises"]["edges"]) == first
    return (*cold_costs, len(recorder.finds()), cache_calls.round_trips)


async def test_a_search_page_costs_the_same_for_10_and_100(
    client: httpx.AsyncClient,
    settings: Settings,
    redis: Redis,
    recorder: CommandRecorder,
    cache_calls: CacheCalls,
) -> None:
    ten = await _search_costs(client, settings, 10, redis, recorder, cache_calls)
    hundred = await _search_costs(client, settings, 100, redis, recorder, cache_calls)

    cold_finds, cold_trips, warm_finds, warm_trips = hundred
    assert ten == hundred
    assert cold_finds == SEARCH_PAIRS
    assert cold_trips == 2 * SEARCH_PAIRS
    assert warm_finds == 0
    assert warm_trips == SEARCH_PAIRS
