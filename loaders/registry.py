"""The registry source: enterprises (public archive), change records, legal representatives."""

from __future__ import annotations

from pymongo import ASCENDING, DESCENDING, IndexModel

from gateway.settings import Source
from gateway.sources import Sources
from loaders.base import SourceLoader

__all__ = ["INDEXES", "ChangeRecordsByUsccLoader", "EnterpriseByUsccLoader", "sample_usccs"]

ENTERPRISES = "enterprises"
CHANGE_RECORDS = "change_records"
#: Kept apart from the public archive: the ID number is personal data.
LEGAL_REPRESENTATIVES = "legal_representatives"

INDEXES: dict[tuple[Source, str], list[IndexModel]] = {
    (Source.REGISTRY, CHANGE_RECORDS): [
        IndexModel(
            [("uscc", ASCENDING), ("date", DESCENDING), ("seq", DESCENDING)], name="uscc_date"
        ),
    ],
}


class EnterpriseByUsccLoader(SourceLoader):
    source = Source.REGISTRY
    collection = ENTERPRISES


class ChangeRecordsByUsccLoader(SourceLoader):
    """All change records of an enterprise, newest first."""

    source = Source.REGISTRY
    collection = CHANGE_RECORDS
    key_field = "uscc"
    many = True
    sort = (("uscc", ASCENDING), ("date", DESCENDING), ("seq", DESCENDING))


async def sample_usccs(sources: Sources) -> list[str]:
    """One USCC of each kind (enterprise, individual business, cooperative) to show a newcomer."""
    enterprises = sources.db(Source.REGISTRY)[ENTERPRISES]
    found = []
    for prefix in ("91", "92", "93"):
        upper = prefix[0] + chr(ord(prefix[1]) + 1)
        doc = await enterprises.find_one(
            {"_id": {"$gte": prefix, "$lt": upper}}, {"_id": 1}, sort=[("_id", 1)]
        )
        if doc is not None:
            found.append(doc["_id"])
    return found
