"""The four platform sources: the business integrity file of each enterprise.

Every platform database has the same collections, except that Chengxintong exists on
1688 only and on-site certifications on 1688 and Alibaba.com only.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

from pymongo import ASCENDING, DESCENDING, IndexModel

from gateway.cache import DocumentCache
from gateway.settings import Source
from gateway.sources import Sources
from loaders.base import SourceLoader, built_once
from loaders.contracts import PLATFORM_SOURCES

__all__ = ["CERTIFYING_PLATFORMS", "INDEXES", "PLATFORMS", "PlatformLoaders"]

#: The four platform sources (one shape of collection each; declared with the contracts).
PLATFORMS = PLATFORM_SOURCES
CERTIFYING_PLATFORMS = (Source.PLATFORM_1688, Source.PLATFORM_ALIBABA_COM)
_1688 = Source.PLATFORM_1688

STORES = "stores"
#: One summary per enterprise (``_id`` = USCC): store count and case counts.
STATISTICS = "statistics"
#: 1688 only, one per enterprise (``_id`` = USCC).
CHENGXINTONG = "chengxintong"
CERTIFICATIONS = "certifications"
#: Dispute, complaint and punishment records, told apart by ``kind``.
RISK_RECORDS = "risk_records"


def _platform_indexes(source: Source) -> dict[tuple[Source, str], list[IndexModel]]:
    indexes = {
        (source, STORES): [
            IndexModel([("uscc", ASCENDING), ("opened_on", DESCENDING)], name="uscc_opened"),
        ],
        (source, RISK_RECORDS): [
            IndexModel(
                [("uscc", ASCENDING), ("kind", ASCENDING), ("occurred_on", DESCENDING)],
                name="uscc_kind_date",
            ),
        ],
    }
    if source in CERTIFYING_PLATFORMS:
        indexes[(source, CERTIFICATIONS)] = [
            IndexModel([("uscc", ASCENDING), ("certified_on", DESCENDING)], name="uscc_date"),
        ]
    return indexes


INDEXES: dict[tuple[Source, str], list[IndexModel]] = {
    key: models for source in PLATFORMS for key, models in _platform_indexes(source).items()
}


class StatisticsByUsccLoader(SourceLoader):
    """Store and case counts of one platform (the platform is given per instance)."""

    collection = STATISTICS


class StoresByUsccLoader(SourceLoader):
    """An enterprise's stores on one platform, newest first."""

    collection = STORES
    key_field = "uscc"
    many = True
    sort = (("uscc", ASCENDING), ("opened_on", DESCENDING))


class ChengxintongByUsccLoader(SourceLoader):
    source = Source.PLATFORM_1688
    collection = CHENGXINTONG


class CertificationsByUsccLoader(SourceLoader):
    collection = CERTIFICATIONS
    key_field = "uscc"
    many = True
    sort = (("uscc", ASCENDING), ("certified_on", DESCENDING))


class RiskRecordsByUsccLoader(SourceLoader):
    """Dispute, complaint and punishment records, newest first."""

    collection = RISK_RECORDS
    key_field = "uscc"
    many = True
    sort = (("uscc", ASCENDING), ("occurred_on", DESCENDING))


class StoreByIdLoader(SourceLoader):
    collection = STORES
    client_keys = True


class RiskRecordByIdLoader(SourceLoader):
    collection = RISK_RECORDS
    client_keys = True


class CertificationByIdLoader(SourceLoader):
    collection = CERTIFICATIONS
    client_keys = True


L = TypeVar("L", bound=SourceLoader)


class PlatformLoaders:
    """One platform's loaders, each built on first use; certifications and Chengxintong
    only where they exist (``None`` elsewhere)."""

    def __init__(
        self,
        sources: Sources,
        cache: DocumentCache,
        source: Source,
        *,
        deadline: float | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._sources = sources
        self._cache = cache
        self.source = source
        self._deadline = deadline
        self._loop = loop
        self._certifying = source in CERTIFYING_PLATFORMS

    def _make(self, loader: type[L]) -> L:
        return loader(
            self._sources,
            self._cache,
            source=self.source,
            deadline=self._deadline,
            loop=self._loop,
        )

    @built_once
    def statistics(self) -> StatisticsByUsccLoader:
        return self._make(StatisticsByUsccLoader)

    @built_once
    def stores(self) -> StoresByUsccLoader:
        return self._make(StoresByUsccLoader)

    @built_once
    def risk_records(self) -> RiskRecordsByUsccLoader:
        return self._make(RiskRecordsByUsccLoader)

    @built_once
    def certifications(self) -> CertificationsByUsccLoader | None:
        return self._make(CertificationsByUsccLoader) if self._certifying else None

    @built_once
    def chengxintong(self) -> ChengxintongByUsccLoader | None:
        if self.source != _1688:
            return None
        return ChengxintongByUsccLoader(
            self._sources, self._cache, deadline=self._deadline, loop=self._loop
        )

    @built_once
    def store_by_id(self) -> StoreByIdLoader:
        return self._make(StoreByIdLoader)

    @built_once
    def risk_record_by_id(self) -> RiskRecordByIdLoader:
        return self._make(RiskRecordByIdLoader)

    @built_once
    def certification_by_id(self) -> CertificationByIdLoader | None:
        return self._make(CertificationByIdLoader) if self._certifying else None
