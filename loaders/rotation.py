"""``integrity-gateway rotate-keys``: every ID number sealed with the first key.

Walks ``registry.legal_representatives`` in ``_id`` order, in batches, over the
documents not yet sealed with the first key of ``PII_ENCRYPTION_KEYS`` (sealed with an
older key, or stored before encryption as plain text), opens each with the key that
sealed it and seals it again. Each document is replaced only if it still holds what was
read (a write that came meanwhile wins and is picked up by the next run). Stopped at any
point, it is resumed by running it again: what is done no longer matches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pymongo import UpdateOne

from gateway.pii import PiiError
from gateway.settings import Source
from gateway.sources import Sources
from loaders.registry import LEGAL_REPRESENTATIVES, stored_id_number

__all__ = ["RotationReport", "rotate_keys"]


@dataclass
class RotationReport:
    #: Documents sealed with the first key by this run.
    resealed: int = 0
    #: Documents that no configured key opens (named in ``unreadable_ids``).
    unreadable: int = 0
    #: Documents changed by another writer between read and write (left for a rerun).
    changed_meanwhile: int = 0
    unreadable_ids: list[str] | None = None


async def rotate_keys(
    sources: Sources,
    *,
    batch: int = 500,
    progress: Callable[[RotationReport], None] | None = None,
) -> RotationReport:
    keyring = sources.pii
    collection = sources.collection(Source.REGISTRY, LEGAL_REPRESENTATIVES)
    report = RotationReport(unreadable_ids=[])
    assert report.unreadable_ids is not None
    after: str | None = None
    while True:
        stale = {"id_number.kid": {"$ne": keyring.current.kid}}
        if after is not None:
            stale["_id"] = {"$gt": after}
        docs = await collection.find(stale).sort("_id", 1).limit(batch).to_list(None)
        if not docs:
            return report
        after = docs[-1]["_id"]
        writes = []
        for doc in docs:
            try:
                number = stored_id_number(sources, doc)
            except PiiError:
                report.unreadable += 1
                report.unreadable_ids.append(doc["_id"])
                continue
            writes.append(
                UpdateOne(
                    {"_id": doc["_id"], "id_number": doc["id_number"]},
                    {"$set": {"id_number": keyring.seal(doc["_id"], number)}},
                )
            )
        if writes:
            result = await collection.bulk_write(writes, ordered=False)
            report.resealed += result.modified_count
            report.changed_meanwhile += len(writes) - result.matched_count
        if progress is not None:
            progress(report)
