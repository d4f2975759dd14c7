"""The four platform sources: the business integrity file of each enterprise.

Every platform database has the same collections, except that Chengxintong exists on
1688 only and on-site certifications on 1688 and Alibaba.com only.
"""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel

from gateway.settings import Source

__all__ = ["CERTIFYING_PLATFORMS", "INDEXES", "PLATFORMS"]

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
