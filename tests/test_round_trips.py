"""Round trips per request are bounded by the (source, collection) pairs touched, never by
the number of enterprises: counted with a pymongo command listener and on the cache."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

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
class Costs:
    """What one request cost, cold (empty Redis) and then warm (the same request again)."""

    cold_finds: list[tuple[str, str]] = field(default_factory=list)
    cold_trips: int = 0
    warm_finds: list[tuple[str, str]] = field(default_factory=list)
    warm_trips: int = 0
    warm_writes: int = 0


@dataclass
class Meter:
    """Counts the cache's Redis round trips (one per MGET, one per pipelined write-back)
    beside the recorder's MongoDB commands, for one request at a time."""

    client: httpx.AsyncClient
    redis: Redis
    recorder: CommandRecorder
    reads: int = 0
    writes: int = 0

    def _reset(self) -> None:
        self.recorder.clear()
        self.reads = self.writes = 0

    async def cold_then_warm(
        self, headers: dict[str, str], query: str, variables: dict[str, Any]
    ) -> tuple[dict[str, Any], Costs]:
        await self.redis.flushdb()
        self._reset()
        cold = await graphql_as(self.client, headers, query, variables)
        costs = Costs(cold_finds=sorted(self.recorder.finds()), cold_trips=self.reads + self.writes)
        self._reset()
        warm = await graphql_as(self.client, headers, query, variables)
        costs.warm_finds = self.recorder.finds()
        costs.warm_trips = self.reads + self.writes
        costs.warm_writes = self.writes
        assert warm == cold
        return cold, costs


@pytest.fixture
def meter(
    client: httpx.AsyncClient,
    redis: Redis,
    recorder: CommandRecorder,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Meter]:
    meter = Meter(client, redis, recorder)
    flush, set_many = DocumentCache._flush, DocumentCache.set_many

    def counted_get(self: DocumentCache, batch: Any) -> None:
        meter.reads += 1  # one MGET round trip, however many loaders share it
        flush(self, batch)

    async def counted_set(self: DocumentCache, items: dict[str, bytes], **options: Any) -> None:
        meter.writes += 1
        await set_many(self, items, **options)

    monkeypatch.setattr(DocumentCache, "_flush", counted_get)
    monkeypatch.setattr(DocumentCache, "set_many", counted_set)
    yield meter


def assert_bounded(costs: Costs, pairs: int, levels: int, entries: int | None = None) -> None:
    """Cold: one find per (source, collection) pair, each once, a write-back per cache
    entry (``entries``, by default one per pair) and one MGET per level of loading (the
    loaders of a level share it); warm: no MongoDB at all, one MGET per level."""
    assert len(costs.cold_finds) == len(set(costs.cold_finds)) == pairs
    assert costs.cold_trips == (pairs if entries is None else entries) + levels
    assert costs.warm_finds == []
    assert costs.warm_writes == 0
    assert costs.warm_trips == levels


async def test_an_archive_page_with_every_field(meter: Meter, settings: Settings) -> None:
    body, costs = await meter.cold_then_warm(
        bearer(settings, "operator"), ARCHIVE_PAGE, {"uscc": FULL}
    )
    assert "errors" not in body
    # The enterprise and everything its selection needs, read in one step.
    assert_bounded(costs, ARCHIVE_PAIRS, levels=1)


async def test_badges_cost_the_same_for_10_and_100(
    meter: Meter, settings: Settings, seeded: list[str]
) -> None:
    member = bearer(settings, "member")
    ten_body, ten = await meter.cold_then_warm(member, BADGES, {"usccs": seeded[:10]})
    body, hundred = await meter.cold_then_warm(member, BADGES, {"usccs": seeded[:100]})

    assert [badge["uscc"] for badge in ten_body["data"]["integrityBadges"]] == seeded[:10]
    assert [badge["uscc"] for badge in body["data"]["integrityBadges"]] == seeded[:100]
    assert ten == hundred
    # The enterprises and the rest of their badges, read in one step.
    assert_bounded(hundred, BADGE_PAIRS, levels=1)


ANONYMOUS_BADGES = """query($usccs: [String!]!) {
  integrityBadges(usccs: $usccs) { uscc name verified grade serviceState } }"""


async def test_badges_load_only_what_their_selected_fields_are_built_from(
    meter: Meter, seeded: list[str]
) -> None:
    """An anonymous viewer's grade is denied before it is built: no level is read."""
    body, costs = await meter.cold_then_warm({}, ANONYMOUS_BADGES, {"usccs": seeded[:20]})

    badges = body["data"]["integrityBadges"]
    assert [badge["uscc"] for badge in badges] == seeded[:20]
    assert {badge["grade"] for badge in badges} == {None}
    assert {error["extensions"]["code"] for error in body["errors"]} == {"UNAUTHENTICATED"}
    assert sorted(costs.cold_finds) == [
        ("identity", "authentications"),
        ("integrity", "service_status"),
        ("registry", "enterprises"),
    ]
    assert_bounded(costs, 3, levels=1)


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
#: registry: enterprise_search_facets (the statistics that size the walk),
#: enterprise_search (one window of it), enterprises; identity.authentications; integrity:
#: levels, service_status; statistics on each of the four platforms.
SEARCH_PAIRS = 10


async def test_a_search_page_costs_the_same_for_10_and_100(
    meter: Meter, settings: Settings
) -> None:
    service = bearer(settings, "service")
    ten_body, ten = await meter.cold_then_warm(service, SEARCH_PAGE, {"first": 10})
    body, hundred = await meter.cold_then_warm(service, SEARCH_PAGE, {"first": 100})

    assert len(ten_body["data"]["enterprises"]["edges"]) == 10
    assert len(body["data"]["enterprises"]["edges"]) == 100
    assert ten == hundred
    # The page of USCCs (its statistics and window cached as one entry), then their
    # enterprises and everything about them, in one step.
    assert_bounded(hundred, SEARCH_PAIRS, levels=2, entries=SEARCH_PAIRS - 1)
