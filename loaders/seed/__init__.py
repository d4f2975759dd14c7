"""``integrity-gateway seed``: fill every source with a deterministic synthetic archive.

The seeder owns the databases it writes: it refuses to touch a registry that holds
enterprises it did not write (no seed marker), and otherwise replaces every source's
collections wholesale, so re-running it never duplicates anything.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from gateway.settings import Source
from gateway.sources import Sources
from loaders.indexes import ensure_indexes
from loaders.registry import ENTERPRISES
from loaders.seed.generate import AS_OF, Batch, generate_enterprise

__all__ = [
    "DEMO_RANDOM_SEED",
    "MARKER_COLLECTION",
    "SeedRefusedError",
    "SeedReport",
    "generate",
    "registry_is_empty",
    "seed",
]

#: A collection in the registry database holding one document that marks it as seeded.
MARKER_COLLECTION = "_seed"
_CHUNK = 5000
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
    sample_usccs: tuple[str, ...] = ()


async def registry_is_empty(sources: Sources) -> bool:
    return await sources.db(Source.REGISTRY)[ENTERPRISES].find_one({}, {"_id": 1}) is None


async def _check_owned(sources: Sources) -> None:
    registry = sources.db(Source.REGISTRY)
    if await registry_is_empty(sources):
        return
    if await registry[MARKER_COLLECTION].find_one({"_id": "seed"}) is None:
        raise SeedRefusedError(
            "the registry already holds enterprises that seed did not write; "
            "refusing to replace them (point MONGODB_URL at an empty or demo database)"
        )


def generate(enterprises: int, random_seed: int) -> tuple[Batch, list[str]]:
    batch: Batch = Batch(list)
    taken: set[str] = set()
    usccs = [generate_enterprise(batch, index, random_seed, taken) for index in range(enterprises)]
    return batch, usccs


async def seed(sources: Sources, *, enterprises: int, random_seed: int) -> SeedReport:
    started = time.perf_counter()
    await _check_owned(sources)
    batch, usccs = generate(enterprises, random_seed)
    for source in Source:
        db = sources.db(source)
        for name in await db.list_collection_names():
            await db.drop_collection(name)
    documents: dict[str, int] = {}
    for (source, collection), docs in sorted(batch.items()):
        for start in range(0, len(docs), _CHUNK):
            await sources.db(source)[collection].insert_many(docs[start : start + _CHUNK])
        documents[f"{source.value}.{collection}"] = len(docs)
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
        documents=documents,
        sample_usccs=tuple(usccs[:3]),
    )
