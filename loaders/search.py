"""Enterprise search over one derived collection, ``registry.enterprise_search``.

One document per enterprise with what the filters need, from every source: name and its
bigrams (Chinese has no spaces, so "contained words" are matched on character pairs and
then confirmed on the name), division code, kind, status and the platforms it trades on.
Each filter is an equality or a prefix range on an indexed field (character pairs,
division code, platforms, USCC); a page is one find, ordered by USCC, cached in Redis.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from pymongo import ASCENDING, IndexModel
from pymongo.errors import PyMongoError

from gateway.cache import DocumentCache
from gateway.settings import Source
from gateway.sources import Sources
from loaders.base import (
    Document,
    cache_key,
    pack,
    prefix_range,
    source_error,
    source_timeout,
    unpack,
)

__all__ = ["INDEXES", "SEARCH", "Criteria", "name_terms", "search_document", "search_usccs"]

SEARCH = "enterprise_search"

INDEXES: dict[tuple[Source, str], list[IndexModel]] = {
    (Source.REGISTRY, SEARCH): [
        IndexModel([("name_terms", ASCENDING), ("_id", ASCENDING)], name="terms"),
        IndexModel([("division", ASCENDING), ("_id", ASCENDING)], name="division"),
        IndexModel([("platforms", ASCENDING), ("_id", ASCENDING)], name="platforms"),
    ],
}


def name_terms(text: str) -> list[str]:
    """The distinct character pairs of ``text``, sorted."""
    return sorted({text[i : i + 2] for i in range(len(text) - 1)})


def search_document(
    uscc: str, name: str, division: str, status: str, platforms: list[str]
) -> Document:
    return {
        "_id": uscc,
        "name": name,
        "name_terms": name_terms(name),
        "division": division,
        "kind": uscc[:2],
        "status": status,
        "platforms": platforms,
    }


@dataclass(frozen=True, slots=True)
class Criteria:
    """Validated search criteria; every field optional."""

    keyword: str | None = None
    #: A division-code prefix: 2 digits (province), 4 (prefecture) or 6 (county).
    region: str | None = None
    #: USCC positions 1-2, e.g. "91", or "other" for none of 91, 92, 93.
    kind: str | None = None
    status: str | None = None
    platform: Source | None = None

    def query(self) -> Document:
        query: Document = {}
        if self.keyword is not None:
            # One character pair finds the candidates through the index; the name then
            # must contain the whole keyword.
            query["name_terms"] = name_terms(self.keyword)[0]
            query["name"] = {"$regex": re.escape(self.keyword)}
        if self.region is not None:
            # A division-code prefix is a range of the division index.
            query["division"] = prefix_range(self.region)
        if self.kind == "other":
            query["kind"] = {"$nin": ["91", "92", "93"]}
        elif self.kind is not None:
            # The kind is the USCC's first two characters: a range of the _id index.
            query["_id"] = prefix_range(self.kind)
        if self.status is not None:
            query["status"] = self.status
        if self.platform is not None:
            query["platforms"] = self.platform.value
        return query

    def index(self) -> str:
        """The index that answers this search: the most selective filter's, else ``_id``
        (whose walk is already in USCC order). Named rather than left to the planner,
        which in SecantusDB picks an index only for single-predicate filters."""
        if self.keyword is not None:
            return "terms"
        if self.region is not None:
            return "division"
        if self.platform is not None:
            return "platforms"
        return "_id_"

    def fingerprint(self) -> str:
        text = "|".join(
            str(part) for part in (self.keyword, self.region, self.kind, self.status, self.platform)
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


async def search_usccs(
    sources: Sources,
    cache: DocumentCache,
    criteria: Criteria,
    *,
    after: str | None,
    limit: int,
    deadline: float | None = None,
) -> list[str]:
    """Up to ``limit`` USCCs matching ``criteria``, in USCC order, after ``after``."""
    query = criteria.query()
    if after is not None:
        query["_id"] = {**query.get("_id", {}), "$gt": after}
    key = cache_key(Source.REGISTRY, SEARCH, "page", f"{criteria.fingerprint()}:{after}:{limit}")
    cached = (await cache.get_many([key])).get(key)
    if cached is not None:
        usccs: list[str] = unpack(cached)
        return usccs
    collection = sources.collection(Source.REGISTRY, SEARCH)
    try:
        with source_timeout(sources, deadline):
            cursor = (
                collection.find(query, {"_id": 1})
                .hint(criteria.index())
                .sort("_id", ASCENDING)
                .limit(limit)
            )
            usccs = [doc["_id"] async for doc in cursor]
    except PyMongoError:
        raise source_error(Source.REGISTRY, deadline) from None
    await cache.set_many({key: pack(usccs)})
    return usccs
