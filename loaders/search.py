"""Enterprise search over one derived collection, ``registry.enterprise_search``.

One document per enterprise with what the filters need, from every source, and its
*facets*: one string per thing a filter can ask for — every character pair of the name
(Chinese has no spaces, so "contained words" are found by their character pairs and
then confirmed on the name), each division-code prefix, alone and with the status, the
kind of subject, the status, each platform, and ``*`` (every enterprise). One compound index,
``{facets: 1, _id: 1}``, answers every search: an equality on one facet walks USCCs in
order, so a page is a walk of that index from the cursor, never a sort.

A walk's length is bounded by the page, not by the matches: besides each facet's count,
``enterprise_search_facets`` holds its *fences*, every ``FENCE_EVERY``-th USCC that has
it, and a page reads a window of the index between the cursor and a fence chosen to
hold about as many entries as the page needs (more when the other filters are
expected to reject some), then the next, wider window only if that was not enough.
The embedded store needs this: it does not stop an index scan at the find's limit
(docs/search-on-the-embedded-store.md); MongoDB would, and runs the same bounded reads.

Of a search's facets the one with the fewest enterprises drives the walk; the rest
(and the whole keyword against the name) are checked here, on the fetched window: in
the embedded store any filter beside the equality and the ``_id`` range turns the
index walk into a collection scan. A facet no enterprise has costs one empty index
lookup. Facet statistics only steer the cost: a result never depends on them.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import math
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from pymongo import ASCENDING, IndexModel, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from gateway.cache import DocumentCache
from gateway.metrics import SOURCE_ERRORS
from gateway.settings import Source
from gateway.sources import Sources, admitted
from loaders.base import (
    CACHE_FORMAT,
    Document,
    cache_key,
    pack,
    source_error,
    source_timeout,
    unpack,
)

__all__ = [
    "ALL",
    "FACETS",
    "FACETS_VERSION",
    "FENCE_EVERY",
    "GENERATION",
    "INDEXES",
    "OBSOLETE_INDEXES",
    "SCAN_BUDGET",
    "SEARCH",
    "Criteria",
    "Page",
    "document_facets",
    "name_terms",
    "needs_rebuild",
    "new_generation",
    "read_page",
    "rebuild_facets",
    "search_document",
    "search_page",
]

SEARCH = "enterprise_search"
#: Per facet: ``count`` (enterprises that have it) and ``fences`` (every
#: ``FENCE_EVERY``-th of their USCCs, in order).
FACETS = "enterprise_search_facets"
#: The generation search pages are valid in (see ``search_page``).
#: Not under the registry's cache prefix: evicting the registry's documents (a change
#: stream that lost its history) must set a new generation, not leave none, which
#: every concurrent search would then start anew.
GENERATION = f"ig:{CACHE_FORMAT}:search-generation"
#: The facet every enterprise has: the walk of a search without filters.
ALL = "*"
#: Bump when ``document_facets`` changes: start-up then gives every document its new
#: facets (``rebuild_facets``) before a search could miss one.
FACETS_VERSION = 1
#: One fence per this many enterprises of a facet: the grain of a window.
FENCE_EVERY = 64
#: The most index entries one page may examine. A search whose filters reject nearly
#: everything the driving facet walks stops there with a short page, ``more`` set
#: and a cursor to go on from (the answer is still exact, only delivered in parts).
SCAN_BUDGET = 1024
#: What the filters are checked on, besides ``_id``.
_PROJECTION = {"_id": 1, "name": 1, "division": 1, "status": 1, "platforms": 1}
_LISTED_KINDS = ("91", "92", "93")
_T = TypeVar("_T")

INDEXES: dict[tuple[Source, str], list[IndexModel]] = {
    (Source.REGISTRY, SEARCH): [
        IndexModel([("facets", ASCENDING), ("_id", ASCENDING)], name="facets"),
    ],
}
#: Indexes earlier versions built on the search collection; dropped at start-up.
OBSOLETE_INDEXES: dict[tuple[Source, str], tuple[str, ...]] = {
    (Source.REGISTRY, SEARCH): ("terms", "division", "platforms"),
}


def name_terms(text: str) -> list[str]:
    """The distinct character pairs of ``text``, sorted."""
    return sorted({text[i : i + 2] for i in range(len(text) - 1)})


def kind_class(uscc: str) -> str:
    """The kind filter's value for a USCC: its first two characters, or ``other``."""
    kind = uscc[:2]
    return kind if kind in _LISTED_KINDS else "other"


def _after_kind(kind: str) -> str:
    """The least string after every USCC of ``kind``."""
    return kind[:-1] + chr(ord(kind[-1]) + 1)


def document_facets(
    uscc: str, name: str, division: str, status: str, platforms: Iterable[str]
) -> list[str]:
    regions = (division[:2], division[:4], division)
    facets = {ALL, f"k:{kind_class(uscc)}", f"s:{status}"}
    facets.update(f"r:{region}" for region in regions)
    # A region's walk is where its enterprises are (see ``_driver``); statuses other
    # than IN_BUSINESS are a few percent of it, too sparse to find by checking it.
    facets.update(f"rs:{region}:{status}" for region in regions)
    facets.update(f"t:{pair}" for pair in name_terms(name))
    facets.update(f"p:{platform}" for platform in platforms)
    return sorted(facets)


def search_document(
    uscc: str, name: str, division: str, status: str, platforms: list[str]
) -> Document:
    return {
        "_id": uscc,
        "name": name,
        "division": division,
        "status": status,
        "platforms": platforms,
        "facets": document_facets(uscc, name, division, status, platforms),
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

    def facets(self) -> list[str]:
        """The facets an enterprise must have to match: every one of them."""
        facets: list[str] = []
        if self.keyword is not None:
            facets += [f"t:{pair}" for pair in name_terms(self.keyword)]
        if self.region is not None:
            facets.append(f"r:{self.region}")
            if self.status is not None:
                facets.append(f"rs:{self.region}:{self.status}")
        if self.kind is not None:
            facets.append(f"k:{self.kind}")
        if self.status is not None:
            facets.append(f"s:{self.status}")
        if self.platform is not None:
            facets.append(f"p:{self.platform.value}")
        return facets or [ALL]

    def id_ranges(self) -> list[tuple[str | None, str | None]]:
        """The USCC ranges (from inclusive, to exclusive; None: unbounded) a match can
        lie in: its kind is its first two characters."""
        if self.kind is None:
            return [(None, None)]
        if self.kind == "other":
            return [(None, _LISTED_KINDS[0]), (_after_kind(_LISTED_KINDS[-1]), None)]
        return [(self.kind, _after_kind(self.kind))]

    def matches(self, doc: Document) -> bool:
        """Whether a search document matches every criterion (checked on ``_PROJECTION``)."""
        return (
            (self.keyword is None or self.keyword in doc["name"])
            and (self.region is None or doc["division"].startswith(self.region))
            and (self.kind is None or kind_class(doc["_id"]) == self.kind)
            and (self.status is None or doc["status"] == self.status)
            and (self.platform is None or self.platform.value in doc["platforms"])
        )

    def fingerprint(self) -> str:
        return _fingerprint(self.keyword, self.region, self.kind, self.status, self.platform)


@functools.lru_cache(maxsize=4096)
def _fingerprint(*parts: object) -> str:
    """What a cursor says of its search's criteria (every cursor of a page says it)."""
    text = "|".join(str(part) for part in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Page:
    """Up to ``limit`` matching USCCs after the cursor, in USCC order."""

    usccs: list[str]
    #: Whether more may follow: another match was seen, or the scan stopped short.
    more: bool
    #: Set when the scan budget ran out before the page filled: the USCC up to which
    #: every enterprise was examined, where the next page goes on.
    resume: str | None = None


@dataclass(frozen=True, slots=True)
class _Stats:
    count: int
    fences: list[str]


_NO_STATS = _Stats(0, [])


async def _facet_stats(
    collection: AsyncCollection[Document], facets: list[str]
) -> dict[str, _Stats]:
    """Each facet's statistics; a facet without any reads as none (count 0)."""
    found = {
        doc["_id"]: _Stats(doc["count"], doc["fences"])
        async for doc in collection.find({"_id": {"$in": [*facets, ALL]}})
    }
    return {facet: found.get(facet, _NO_STATS) for facet in [*facets, ALL]}


def _in_ranges(stats: _Stats, ranges: list[tuple[str | None, str | None]]) -> int:
    """About how many enterprises of a facet lie in the USCC ``ranges``, from its fences
    (never fewer than there are)."""
    if ranges == [(None, None)]:
        return stats.count
    fences = stats.fences
    fenced = sum(
        (len(fences) if high is None else bisect.bisect_left(fences, high))
        - (0 if low is None else bisect.bisect_left(fences, low))
        for low, high in ranges
    )
    # Each range may hold up to a gap's worth beyond its last fence.
    return min(stats.count, (fenced + len(ranges)) * FENCE_EVERY)


def _driver(criteria: Criteria, facets: list[str], stats: dict[str, _Stats]) -> str:
    """The facet whose walk answers the search.

    The rarest (in the kind's USCC range, when a kind is asked for: the kind is the
    USCC's first two characters, a range of the walk, see ``Criteria.id_ranges``), when
    its walk fits the scan budget. Otherwise the region's when there is one: USCCs carry
    the registering division, so a region's enterprises are bunched in USCC order and,
    checked on another facet's walk, would turn up only after long empty stretches; the
    other filters are spread evenly along a region's own walk."""
    ranges = criteria.id_ranges()
    walks = {facet: _in_ranges(stats[facet], ranges) for facet in facets}
    rarest = min(facets, key=walks.__getitem__)
    if walks[rarest] <= SCAN_BUDGET or criteria.region is None:
        return rarest
    if criteria.status is not None:
        return f"rs:{criteria.region}:{criteria.status}"
    return f"r:{criteria.region}"


def _first_gaps(stats: dict[str, _Stats], driver: str, others: list[str], want: int) -> int:
    """How many fence gaps the first window should span to hold ``want`` matches.

    The other filters are taken as independent of the driver and of each other, except
    the character pairs of one keyword, which come together (the rarest stands for
    them all)."""
    total = max(stats[ALL].count, 1)

    def share(facet: str) -> float:
        return min(stats[facet].count / total, 1.0)

    pairs = [share(facet) for facet in others if facet.startswith("t:")]
    expected = min(pairs, default=1.0)
    for facet in others:
        if not facet.startswith("t:"):
            expected *= share(facet)
    needed = min(want / max(expected, 1 / SCAN_BUDGET), SCAN_BUDGET)
    # One more gap than the entries need: the cursor may sit just before a fence.
    return math.ceil(needed / FENCE_EVERY) + 1


def _passed(position: str | None, high: str | None) -> bool:
    """Whether a walk at ``position`` is past every USCC below ``high``."""
    return high is not None and position is not None and position >= high


async def _scan(
    collection: AsyncCollection[Document],
    criteria: Criteria,
    driver: str,
    fences: list[str],
    gaps: int,
    after: str | None,
    want: int,
) -> Page:
    found: list[str] = []
    examined = 0
    #: Every USCC up to here (exclusive lower bound of what is left) was examined.
    position = after
    ranges = criteria.id_ranges()
    while True:
        # The part of the walk left: from the position, inside the next USCC range.
        left = [(low, high) for low, high in ranges if not _passed(position, high)]
        if not left:
            return Page(found, more=False)
        low, high = left[0]
        bounds: Document = {}
        if low is not None and (position is None or position < low):
            bounds["$gte"] = low
            start = bisect.bisect_left(fences, low)
        elif position is not None:
            bounds["$gt"] = position
            start = bisect.bisect_right(fences, position)
        else:
            start = 0
        last = start + gaps - 1
        end = fences[last] if last < len(fences) else None
        if high is not None and (end is None or end >= high):
            end = None
            bounds["$lt"] = high
        elif end is not None:
            bounds["$lte"] = end
        query: Document = {"facets": driver}
        if bounds:
            query["_id"] = bounds
        # No sort and no limit: either would make the embedded store sort the whole
        # walk; the window is already small, and in index order on MongoDB.
        window = [doc async for doc in collection.find(query, _PROJECTION)]
        window.sort(key=lambda doc: doc["_id"])
        examined += len(window)
        for doc in window:
            if criteria.matches(doc):
                found.append(doc["_id"])
                if len(found) == want:
                    return Page(found[: want - 1], more=True)
        position = end if end is not None else high
        if position is None:
            return Page(found, more=False)
        if examined >= SCAN_BUDGET:
            return Page(found, more=True, resume=position)
        remaining = max((SCAN_BUDGET - examined) // FENCE_EVERY, 1)
        gaps = min(gaps * 2, remaining)


async def search_page(
    sources: Sources,
    cache: DocumentCache,
    criteria: Criteria,
    *,
    after: str | None,
    limit: int,
    deadline: float | None = None,
) -> Page:
    """Up to ``limit`` USCCs matching ``criteria``, in USCC order, after ``after``.

    A cached page is used only when it was computed under the current search
    generation (``GENERATION``), read in the same round trip: any change to the search
    collection sets a new generation (``new_generation``), so no page from before it
    is served, whichever criteria it was for."""
    # "pages": cached under "walk" without their generation before the watcher kept
    # search in step.
    key = cache_key(Source.REGISTRY, SEARCH, "pages", f"{criteria.fingerprint()}:{after}:{limit}")
    found = await cache.get_many([key, GENERATION])
    generation = found.get(GENERATION)
    cached = found.get(key)
    if cached is not None and generation is not None:
        usccs, more, resume, computed_in = unpack(cached)
        if computed_in == generation:
            return Page(usccs, more, resume)
    await admitted()  # what follows reads MongoDB and writes Redis
    if generation is None:
        # No generation (a new or flushed Redis, or one evicted): start one before
        # reading, so what is read now is valid in it.
        generation = await cache.start(GENERATION, new_generation())
    try:
        with source_timeout(sources, deadline):
            page = await read_page(sources, criteria, after=after, limit=limit)
    except PyMongoError:
        SOURCE_ERRORS.labels(Source.REGISTRY.value).inc()
        raise source_error(Source.REGISTRY, deadline) from None
    if generation is not None:
        await cache.set_many(
            {key: pack([page.usccs, page.more, page.resume, generation])}, replace=True
        )
    return page


def new_generation() -> bytes:
    """A search generation never used before."""
    return secrets.token_hex(8).encode()


async def read_page(sources: Sources, criteria: Criteria, *, after: str | None, limit: int) -> Page:
    """``search_page`` from the store, without the cache or a deadline."""
    facets = criteria.facets()
    stats = await _facet_stats(sources.collection(Source.REGISTRY, FACETS), facets)
    driver = _driver(criteria, facets, stats)
    # What the driver's walk leaves to check: the kind is a range of the walk, and a
    # region-and-status facet has its region and its status.
    implied = {driver}
    if driver.startswith("rs:"):
        implied |= {f"r:{criteria.region}", f"s:{criteria.status}"}
    others = [facet for facet in facets if facet not in implied and not facet.startswith("k:")]
    return await _scan(
        sources.collection(Source.REGISTRY, SEARCH),
        criteria,
        driver,
        stats[driver].fences,
        _first_gaps(stats, driver, others, limit + 1),
        after,
        limit + 1,
    )


def _batches(items: list[_T], size: int = 1000) -> Iterator[list[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def needs_rebuild(sources: Sources) -> bool:
    """Whether search documents exist without this version's facets and statistics (an
    earlier version wrote them, or a rebuild was cut short)."""
    registry = sources.db(Source.REGISTRY)
    stats = await registry[FACETS].find_one({"_id": ALL}, {"version": 1})
    if stats is not None:
        return bool(stats.get("version") != FACETS_VERSION)
    # (On the embedded store this reads the whole collection; only before the first
    # statistics are written.)
    return await registry[SEARCH].find_one({}, {"_id": 1}) is not None


async def rebuild_facets(sources: Sources) -> tuple[int, int]:
    """Recompute every facet's count and fences from the search collection (after a
    seed, a bulk change or an upgrade); a document whose facets are not what this
    version gives it (an earlier version wrote it) gets them. Returns (enterprises,
    facets). The statistics of ``*`` carry ``FACETS_VERSION``, written last."""
    search = sources.db(Source.REGISTRY)[SEARCH]
    counts: dict[str, int] = {}
    fences: dict[str, list[str]] = {}
    outdated: list[UpdateOne] = []
    enterprises = 0
    projection = {**_PROJECTION, "facets": 1}
    async for doc in search.find({}, projection).sort("_id", ASCENDING):
        enterprises += 1
        facets = document_facets(
            doc["_id"], doc["name"], doc["division"], doc["status"], doc["platforms"]
        )
        if doc.get("facets") != facets:
            outdated.append(UpdateOne({"_id": doc["_id"]}, {"$set": {"facets": facets}}))
        for facet in facets:
            count = counts[facet] = counts.get(facet, 0) + 1
            if count % FENCE_EVERY == 0:
                fences.setdefault(facet, []).append(doc["_id"])
    # In batches: no one command keeps the store busy for long.
    for updates in _batches(outdated):
        await search.bulk_write(updates, ordered=False)
    stats = sources.db(Source.REGISTRY)[FACETS]
    rows: list[Document] = [
        {"_id": facet, "count": count, "fences": fences.get(facet, [])}
        for facet, count in counts.items()
        if facet != ALL
    ]
    version = {"_id": ALL, "count": counts.get(ALL, 0), "fences": fences.get(ALL, [])}
    version["version"] = FACETS_VERSION
    held = {doc["_id"] async for doc in stats.find({}, {"_id": 1})}
    if not held:
        for chunk in _batches(rows):
            await stats.insert_many(chunk, ordered=False)
    else:
        for chunk in _batches(rows):
            await stats.bulk_write(
                [ReplaceOne({"_id": row["_id"]}, row, upsert=True) for row in chunk],
                ordered=False,
            )
        # Facets no enterprise has any more.
        stale = list(held - counts.keys())
        if stale:
            await stats.delete_many({"_id": {"$in": stale}})
    await stats.replace_one({"_id": ALL}, version, upsert=True)
    return enterprises, len(counts)
