"""What a changed source document makes stale, and keeping search in step (DESIGN §6).

A change (from the change-stream watcher, gateway/watcher.py, or from a mutation)
names one document of one collection, with what it was before and is after when they
are known. ``stale_keys`` gives every cache key that can hold it: the key of each
loader that caches that collection, by the document's ``_id`` and by its grouping
field (a store is cached in its enterprise's list of stores, by ``uscc``), before and
after the change. When a grouping value cannot be known (a delete without its
pre-image), the whole collection's entries go (``None``).

The search collection is derived from the registry's enterprises and from which
platforms hold a file of each enterprise; ``sync_search`` derives the affected search
documents again, writes the ones that differ, keeps the facet counts in step, and then
starts a new search generation, so no cached page from before is served.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from pymongo import UpdateOne

from gateway.cache import DocumentCache
from gateway.settings import Source
from gateway.sources import Sources
from gateway.watcher import Watcher
from loaders.base import Document, SourceLoader, cache_key, cache_prefix
from loaders.platforms import PLATFORMS, STATISTICS
from loaders.registry import ENTERPRISES
from loaders.search import FACETS, GENERATION, SEARCH, new_generation, search_document

__all__ = [
    "CACHED_FIELDS",
    "Change",
    "Freshness",
    "change_of",
    "create_watcher",
    "derived_from",
    "feeds_search",
    "resync_search",
    "stale_keys",
    "sync_search",
]

log = logging.getLogger(__name__)

#: USCCs one derivation reads at once.
_SYNC_BATCH = 500


def _loader_classes(base: type[SourceLoader] = SourceLoader) -> Iterator[type[SourceLoader]]:
    for loader in base.__subclasses__():
        yield loader
        yield from _loader_classes(loader)


def _cached_fields() -> dict[tuple[Source, str], frozenset[str]]:
    """For each (source, collection) the loaders cache, the fields they key it by."""
    found: dict[tuple[Source, str], set[str]] = {}
    for loader in _loader_classes():
        collection = getattr(loader, "collection", None)
        if collection is None:
            continue
        # A loader without a source of its own serves each platform (given per instance).
        sources = [loader.source] if hasattr(loader, "source") else list(PLATFORMS)
        for source in sources:
            found.setdefault((source, collection), set()).add(loader.key_field)
    return {key: frozenset(fields) for key, fields in found.items()}


#: The loaders' collections and key fields (every loader module is imported by
#: ``loaders``, so all are known once this module is).
CACHED_FIELDS = _cached_fields()


@dataclass(frozen=True, slots=True)
class Change:
    """One document's change: ``operation`` as a change stream names it (insert,
    update, replace, delete); ``before`` / ``after`` when known (``after`` of a delete
    is None); ``updated`` the fields an update set or removed, when it says."""

    source: Source
    collection: str
    operation: str
    key: Any
    before: Document | None = None
    after: Document | None = None
    updated: frozenset[str] | None = None


def _grouping_values(change: Change, field: str) -> set[Any] | None:
    """The values of ``field`` the document had before and has after the change, or
    None when the old one cannot be known."""
    values = {doc[field] for doc in (change.before, change.after) if doc and field in doc}
    if change.operation == "insert" or change.before is not None:
        return values
    if (
        change.operation == "update"
        and change.after is not None
        and change.updated is not None
        and not any(path == field or path.startswith(f"{field}.") for path in change.updated)
    ):
        return values  # the field was not touched: the value after is the one before
    return None


def stale_keys(change: Change) -> list[str] | None:
    """Every cache key that may hold the changed document; None: the whole
    collection's entries, since a grouping value is unknown."""
    fields = CACHED_FIELDS.get((change.source, change.collection))
    if not fields:
        return []
    keys = []
    for field in sorted(fields):
        if field == "_id":
            keys.append(cache_key(change.source, change.collection, "_id", change.key))
            continue
        values = _grouping_values(change, field)
        if values is None:
            return None
        keys += [cache_key(change.source, change.collection, field, value) for value in values]
    return keys


def feeds_search(source: Source, collection: str) -> bool:
    """Whether the collection's documents go into the search collection."""
    return (source, collection) == (Source.REGISTRY, ENTERPRISES) or (
        source in PLATFORMS and collection == STATISTICS
    )


def derived_from(change: Change) -> set[str]:
    """The USCCs whose search documents a change may alter (both are keyed by USCC)."""
    if not feeds_search(change.source, change.collection) or not isinstance(change.key, str):
        return set()
    return {change.key}


async def _derive(sources: Sources, usccs: list[str]) -> dict[str, Document | None]:
    """What each enterprise's search document must be (None: no enterprise)."""
    registry = sources.db(Source.REGISTRY)
    enterprises = {
        doc["_id"]: doc
        async for doc in registry[ENTERPRISES].find(
            {"_id": {"$in": usccs}}, {"name": 1, "division": 1, "status": 1}
        )
    }
    present: dict[str, list[str]] = {uscc: [] for uscc in usccs}
    for platform in PLATFORMS:
        async for doc in sources.db(platform)[STATISTICS].find(
            {"_id": {"$in": list(enterprises)}}, {"_id": 1}
        ):
            present[doc["_id"]].append(platform.value)
    derived: dict[str, Document | None] = {}
    for uscc in usccs:
        enterprise = enterprises.get(uscc)
        derived[uscc] = (
            None
            if enterprise is None
            else search_document(
                uscc,
                enterprise["name"],
                enterprise["division"],
                enterprise["status"],
                present[uscc],
            )
        )
    return derived


async def sync_search(sources: Sources, cache: DocumentCache, usccs: Iterable[str]) -> int:
    """Bring the search documents of ``usccs`` in step with their sources; how many
    changed. Safe to repeat and to run in several watchers at once: each document is
    swapped atomically and its facet counts move by what that swap changed. Raises
    ``PyMongoError``, and ``RedisError`` when the new generation cannot be set."""
    wanted = sorted(set(usccs))
    changed = 0
    for start in range(0, len(wanted), _SYNC_BATCH):
        batch = wanted[start : start + _SYNC_BATCH]
        changed += await _sync_batch(sources, batch)
    if changed:
        await cache.put(GENERATION, new_generation())
    return changed


async def _sync_batch(sources: Sources, usccs: list[str]) -> int:
    search = sources.db(Source.REGISTRY)[SEARCH]
    derived = await _derive(sources, usccs)
    current = {doc["_id"]: doc async for doc in search.find({"_id": {"$in": usccs}})}
    moves: Counter[str] = Counter()
    changed = 0
    for uscc in usccs:
        new = derived[uscc]
        if _same(current.get(uscc), new):
            continue
        before: Document | None
        if new is None:
            before = await search.find_one_and_delete({"_id": uscc})
        else:
            before = await search.find_one_and_replace({"_id": uscc}, new, upsert=True)
        # What this swap changed (another watcher may have made it already: then nothing).
        if _same(before, new):
            continue
        changed += 1
        moves.update((new or {}).get("facets", ()))
        moves.subtract((before or {}).get("facets", ()))
    updates = [
        UpdateOne(
            {"_id": facet}, {"$inc": {"count": step}, "$setOnInsert": {"fences": []}}, upsert=True
        )
        for facet, step in sorted(moves.items())
        if step
    ]
    if updates:
        await sources.db(Source.REGISTRY)[FACETS].bulk_write(updates, ordered=False)
    return changed


def _same(stored: Mapping[str, Any] | None, derived: Document | None) -> bool:
    if stored is None or derived is None:
        return stored is None and derived is None
    return all(stored.get(name) == value for name, value in derived.items())


async def resync_search(sources: Sources, cache: DocumentCache) -> int:
    """``sync_search`` for every enterprise there is or that search still holds (after
    a change stream lost its history); how many search documents changed."""
    registry = sources.db(Source.REGISTRY)
    usccs = {doc["_id"] async for doc in registry[ENTERPRISES].find({}, {"_id": 1})}
    usccs |= {doc["_id"] async for doc in registry[SEARCH].find({}, {"_id": 1})}
    changed = await sync_search(sources, cache, usccs)
    log.info("search resynchronised: %d of %d documents changed", changed, len(usccs))
    return changed


#: Change-stream operations on one document, and those that end a collection or more.
_DOCUMENT_OPERATIONS = {"insert", "update", "replace", "delete"}
_COLLECTION_OPERATIONS = {"drop", "rename", "dropDatabase", "invalidate"}


def change_of(source: Source, event: Mapping[str, Any]) -> Change | None:
    """The document change a change-stream event describes (None: not one)."""
    operation = event.get("operationType")
    if operation not in _DOCUMENT_OPERATIONS:
        return None
    description = event.get("updateDescription") or {}
    updated = None
    if operation == "update" and description:
        updated = frozenset(
            [*description.get("updatedFields", {}), *description.get("removedFields", ())]
        )
    return Change(
        source=source,
        collection=event["ns"]["coll"],
        operation=operation,
        key=event["documentKey"]["_id"],
        before=event.get("fullDocumentBeforeChange"),
        after=event.get("fullDocument"),
        updated=updated,
    )


class Freshness:
    """Applies changes: evicts what they make stale and keeps search in step."""

    def __init__(
        self,
        sources: Sources,
        cache: DocumentCache,
        *,
        told: Callable[[Change, str], Awaitable[None]] | None = None,
    ) -> None:
        """``told``: called with each change a watcher saw and its event's id, once
        the change is applied (notifications of changes made elsewhere)."""
        self._sources = sources
        self._cache = cache
        self._told = told

    async def apply(self, change: Change) -> None:
        """Raises ``RedisError`` or ``PyMongoError`` when it could not: the caller retries
        (the watcher) or fails (a mutation)."""
        keys = stale_keys(change)
        if keys is None:
            await self._cache.evict_prefix(cache_prefix(change.source, change.collection))
        elif keys:
            await self._cache.evict(keys)
        usccs = derived_from(change)
        if usccs:
            await sync_search(self._sources, self._cache, usccs)

    async def handle_event(self, source: Source, event: Mapping[str, Any]) -> None:
        """One change-stream event."""
        change = change_of(source, event)
        if change is not None:
            await self.apply(change)
            if self._told is not None:
                await self._told(change, str(event["_id"].get("_data", event["_id"])))
            return
        if event.get("operationType") in _COLLECTION_OPERATIONS:
            collection = (event.get("ns") or {}).get("coll")
            await self._cache.evict_prefix(cache_prefix(source, collection))
            if collection is None or feeds_search(source, collection):
                await resync_search(self._sources, self._cache)

    async def lost(self, source: Source, reason: str) -> None:
        """A source's changes in a gap are unknown: evict all its entries, and derive
        search again when the source feeds it (not on a first start: whatever wrote the
        data wrote its search documents)."""
        evicted = await self._cache.evict_prefix(cache_prefix(source))
        if source is Source.REGISTRY or source in PLATFORMS:
            # Pages cached before the gap may be stale: none of them is served again.
            await self._cache.put(GENERATION, new_generation())
        first_start = reason.startswith("no resume token")
        log.log(
            logging.INFO if first_start else logging.WARNING,
            "%s: %s; evicted its %d cached entries",
            source.value,
            reason,
            evicted,
        )
        if not first_start and (source is Source.REGISTRY or source in PLATFORMS):
            await resync_search(self._sources, self._cache)


def create_watcher(sources: Sources, cache: DocumentCache) -> Watcher:
    """The watcher of every source, applying changes with ``Freshness``: search's own
    collections are not watched (the watcher writes them), and pre-images are asked for
    where a document is cached in a list (a delete then names the list)."""
    from loaders import writes  # the write side builds on this module

    async def told(change: Change, event: str) -> None:
        await writes.notify_external(sources, cache, change, event)

    freshness = Freshness(sources, cache, told=told)
    pre_images: dict[Source, list[str]] = {}
    for (source, collection), fields in sorted(CACHED_FIELDS.items()):
        if fields - {"_id"} or (source, collection) in writes.TOLD:
            pre_images.setdefault(source, []).append(collection)
    return Watcher(
        sources,
        handle=freshness.handle_event,
        lost=freshness.lost,
        skip_collections={Source.REGISTRY: (SEARCH, FACETS)},
        pre_images={source: tuple(names) for source, names in pre_images.items()},
    )
