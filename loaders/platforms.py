"""The four platform sources: the business integrity file of each enterprise.

Every platform database has the same collections, except that Chengxintong exists on
1688 only and on-site certifications on 1688 and Alibaba.com only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from pymongo import ASCENDING, DESCENDING, IndexModel

from gateway.cache import DocumentCache
from gateway.settings import Source
from gateway.sources import Sources
from loaders.base import SourceLoader

__all__ = ["CERTIFYING_PLATFORMS", "INDEXES", "PLATFORMS", "PlatformLoaders"]

PLATFORMS = (
    Source.PLATFORM_1688,
    Source.PLATFORM_TAOBAO,
    Source.PLATFORM_TMALL,
    Source.PLATFORM_ALIBABA_COM,
)
CERTIFYING_PLATFORMS = (Source.PLATFORM_1688, Source.PLATFORM_ALIBABA_COM)

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


class RiskRecordByIdLoader(SourceLoader):
    collection = RISK_RECORDS


class CertificationByIdLoader(SourceLoader):
    collection = CERTIFICATIONS


L = TypeVar("L", bound=SourceLoader)


@dataclass(frozen=True, slots=True)
class PlatformLoaders:
    """One platform's loaders; certifications and Chengxintong only where they exist."""

    statistics: StatisticsByUsccLoader
    stores: StoresByUsccLoader
    risk_records: RiskRecordsByUsccLoader
    certifications: CertificationsByUsccLoader | None
    chengxintong: ChengxintongByUsccLoader | None
    store_by_id: StoreByIdLoader
    risk_record_by_id: RiskRecordByIdLoader
    certification_by_id: CertificationByIdLoader | None

    @classmethod
    def create(
        cls,
        sources: Sources,
        cache: DocumentCache,
        source: Source,
        *,
        deadline: float | None = None,
    ) -> PlatformLoaders:
        certifying = source in CERTIFYING_PLATFORMS

        def make(loader: type[L]) -> L:
            return loader(sources, cache, source=source, deadline=deadline)

        return cls(
            statistics=make(StatisticsByUsccLoader),
            stores=make(StoresByUsccLoader),
            risk_records=make(RiskRecordsByUsccLoader),
            certifications=make(CertificationsByUsccLoader) if certifying else None,
            chengxintong=ChengxintongByUsccLoader(sources, cache, deadline=deadline)
            if source == Source.PLATFORM_1688
            else None,
            store_by_id=make(StoreByIdLoader),
            risk_record_by_id=make(RiskRecordByIdLoader),
            certification_by_id=make(CertificationByIdLoader) if certifying else None,
        )
