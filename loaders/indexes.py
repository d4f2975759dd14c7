"""Index creation for every source, idempotent, run at start-up and before seeding."""

from __future__ import annotations

import asyncio

from pymongo import IndexModel

from gateway.settings import Source
from gateway.sources import Sources
from loaders import identity, integrity, platforms, registry

__all__ = ["ALL_INDEXES", "ensure_indexes"]

ALL_INDEXES: dict[tuple[Source, str], list[IndexModel]] = {
    **registry.INDEXES,
    **identity.INDEXES,
    **integrity.INDEXES,
    **platforms.INDEXES,
}


async def ensure_indexes(sources: Sources) -> None:
    """``createIndexes`` is a no-op for an index that exists with the same spec."""
    await asyncio.gather(
        *(
            sources.db(source)[collection].create_indexes(models)
            for (source, collection), models in ALL_INDEXES.items()
        )
    )
