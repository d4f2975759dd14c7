"""``integrity-gateway seed``: fill every source with a deterministic synthetic archive.

The seeder owns the databases it writes: it refuses to touch a registry that holds
enterprises it did not write (no seed marker), and otherwise replaces every source's
collections wholesale, so re-running it never duplicates anything.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field

from gateway.settings import Source
from gateway.sources import Sources
from loaders.indexes import ensure_indexes
from loaders.registry import ENTERPRISES, LEGAL_REPRESENTATIVES
from loaders.search import rebuild_facets
from loaders.seed.generate import AS_OF, Batch, generate_enterprise

__all__ = [
    "DEMO_RANDOM_SEED",
    "MARKER_COLLECTION",
    "SeedRefusedError",
    "SeedReport",
    "generate",
    "holds_seed",
    "registry_is_empty",
    "seed",
]

#: A collection in the registry database holding one document that marks it as seeded.
MARKER_COLLECTION = "_seed"
#: Enterprises generated and inserted per step.
_CHUNK = 1000
#: The demo data set is always the same one, so the README's examples stay true.
DEMO_RANDOM_SEED = 1


class SeedRefusedError(RuntimeError):
    """The target holds data the seeder did not write."""


@dataclass(frozen=True, slots=True)
class SeedReport:
    enterprises: int
    random_seed: int
    seconds: float
    documents: dict[str, int] = field(default_factory=dict)


async def registry_is_empty(sources: Sources) -> bool:
    return await sources.db(Source.REGISTRY)[ENTERPRISES].find_one({}, {"_id": 1}) is None


async def holds_seed(sources: Sources) -> bool:
    """Whether the registry holds a finished seed: one point lookup. (On the embedded
    store, ``registry_is_empty`` reads the whole collection: it does not stop a scan
    at the limit; docs/search-on-the-embedded-store.md.)"""
    marker = await sources.db(Source.REGISTRY)[MARKER_COLLECTION].find_one({"_id": "seed"})
    return marker is not None


async def _check_owned(sources: Sources) -> None:
    registry = sources.db(Source.REGISTRY)
    if await registry_is_empty(sources):
        return
    if await registry[MARKER_COLLECTION].find_one({"_id": "seed"}) is None:
        raise SeedRefusedError(
            "the registry already holds enterprises that seed did not write; "
            "refusing to replace them (point MONGODB_URL at an empty or demo database)"
        )


def _generate_range(
    start: int, stop: int, random_seed: int, taken: set[str]
) -> tuple[Batch, list[str]]:
    batch: Batch = Batch(list)
    usccs = [generate_enterprise(batch, index, random_seed, taken) for index in range(start, stop)]
    return batch, usccs


def generate(enterprises: int, random_seed: int) -> tuple[Batch, list[str]]:
    """Every document of ``enterprises`` enterprises, by (source, collection); their USCCs."""
    return _generate_range(0, enterprises, random_seed, set())


async def _insert(sources: Sources, batch: Batch, documents: Counter[str]) -> None:
    # ID numbers are sealed before they leave the process (gateway/pii.py).
    for doc in batch.get((Source.REGISTRY, LEGAL_REPRESENTATIVES), ()):
        doc["id_number"] = sources.pii.seal(doc["_id"], doc["id_number"])
    # One collection at a time: concurrent bulk inserts only fight over write locks.
    for (source, collection), docs in sorted(batch.items()):
        await sources.db(source)[collection].insert_many(docs)
        documents[f"{source.value}.{collection}"] += len(docs)


async def seed(sources: Sources, *, enterprises: int, random_seed: int) -> SeedReport:
    started = time.perf_counter()
    await _check_owned(sources)
    for source in Source:
        db = sources.db(source)
        for name in await db.list_collection_names():
            await db.drop_collection(name)
    # Generating is CPU work here, inserting is CPU work in the database: overlap them,
    # the next chunk being generated in a thread while this one is written.
    taken: set[str] = set()
    documents: Counter[str] = Counter()
    chunks = [(s, min(s + _CHUNK, enterprises)) for s in range(0, enterprises, _CHUNK)]
    pending = asyncio.create_task(
        asyncio.to_thread(_generate_range, *chunks[0], random_seed, taken)
    )
    for following in [*chunks[1:], None]:
        batch, _ = await pending
        if following is not None:
            pending = asyncio.create_task(
                asyncio.to_thread(_generate_range, *following, random_seed, taken)
            )
        await _insert(sources, batch, documents)
    await rebuild_facets(sources)
    unindexed = await ensure_indexes(sources)
    if unindexed:
        raise RuntimeError(f"indexes could not be created on {sorted(unindexed)}")
    await sources.db(Source.REGISTRY)[MARKER_COLLECTION].insert_one(
        {
            "_id": "seed",
            "enterprises": enterprises,
            "random_seed": random_seed,
            "as_of": AS_OF,
            "seeded_at": dt.datetime.now(dt.UTC),
        }
    )
    return SeedReport(
        enterprises=enterprises,
        random_seed=random_seed,
        seconds=time.perf_counter() - started,
        documents=dict(documents),
    )
