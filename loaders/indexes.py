"""Index creation for every source, idempotent, run at start-up and after seeding."""

from __future__ import annotations

import asyncio
import logging

from pymongo import IndexModel
from pymongo.errors import PyMongoError

from gateway.settings import Source
from gateway.sources import Sources
from loaders import identity, integrity, platforms, registry, search

__all__ = ["ALL_INDEXES", "ensure_indexes"]

log = logging.getLogger(__name__)

ALL_INDEXES: dict[tuple[Source, str], list[IndexModel]] = {
    **registry.INDEXES,
    **identity.INDEXES,
    **integrity.INDEXES,
    **platforms.INDEXES,
    **search.INDEXES,
}


async def ensure_indexes(sources: Sources) -> set[Source]:
    """Create every declared index; the sources that could not be reached.

    ``createIndexes`` is a no-op for an index that exists with the same spec; an index
    an earlier version built and this one no longer reads is dropped. A source
    that is down does not stop the others (nor the gateway): it is logged and returned.
    """

    async def one(source: Source, collection: str, models: list[IndexModel]) -> Source | None:
        target = sources.db(source)[collection]
        obsolete = search.OBSOLETE_INDEXES.get((source, collection), ())
        try:
            # Only where an earlier version left indexes: one round trip more, not one per
            # collection.
            held = await target.index_information() if obsolete else {}
            for name in obsolete:
                if name in held:
                    await target.drop_index(name)
                    log.info("dropped obsolete index %s of %s.%s", name, source.value, collection)
            await target.create_indexes(models)
        except PyMongoError as exc:
            log.warning("indexes of %s.%s not ensured: %s", source.value, collection, exc)
            return source
        return None

    failed = await asyncio.gather(
        *(one(source, collection, models) for (source, collection), models in ALL_INDEXES.items())
    )
    return {source for source in failed if source is not None}
