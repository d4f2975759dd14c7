"""The audit trail in MongoDB (``audit.records``, on ``AUDIT_MONGODB_URL`` or the
registry's cluster): append-only, indexed for an enterprise's accessLog, kept for
``AUDIT_RETENTION_DAYS`` (a TTL index).

Nothing here updates or deletes a record: records are inserted (with their ``_id``
chosen beforehand, so a retry never duplicates one) and read. Sensitive reads are
recorded before their response leaves (``record_reads``); a write's record goes to the
trail or, when the trail's store does not answer, to a spool in the gateway's own
database that ``drain_spool`` empties into the trail, with retries, never dropping one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import BulkWriteError, OperationFailure, PyMongoError

from gateway.settings import Settings
from gateway.sources import Sources
from loaders.base import newest_first

__all__ = [
    "ACCESS_ACTIONS",
    "RECORDS",
    "SPOOL",
    "access_log_page",
    "append",
    "drain_spool",
    "ensure_audit_indexes",
    "ensure_ttl_indexes",
    "record_reads",
]

log = logging.getLogger(__name__)

RECORDS = "records"
#: In the gateway's database: write records waiting for the trail's store.
SPOOL = "audit_spool"
#: The records an enterprise's accessLog shows (writes are told as notifications).
ACCESS_ACTIONS = ("read", "verify_legal_representative", "disclosure")
_DUPLICATE_KEY = 11000


def _indexes(settings: Settings) -> list[IndexModel]:
    return [
        IndexModel([("enterprise", ASCENDING), ("at", DESCENDING)], name="enterprise_at"),
        IndexModel([("request_id", ASCENDING)], name="request_id"),
        # accessLog pages: newest first, whole or by viewer or by field.
        IndexModel([("enterprise", ASCENDING), ("_id", DESCENDING)], name="enterprise_newest"),
        IndexModel(
            [("enterprise", ASCENDING), ("viewer.kind", ASCENDING), ("_id", DESCENDING)],
            name="enterprise_viewer_newest",
        ),
        IndexModel(
            [("enterprise", ASCENDING), ("fields", ASCENDING), ("_id", DESCENDING)],
            name="enterprise_field_newest",
        ),
        # Disclosures whose notice is deferred, found when the deferral ends.
        IndexModel([("notice_deferred_until", ASCENDING)], name="deferred_notices", sparse=True),
        IndexModel(
            [("at", ASCENDING)],
            name="retention",
            expireAfterSeconds=settings.audit_retention_days * 86_400,
        ),
    ]


async def ensure_ttl_indexes(database: Any, collection: str, models: list[IndexModel]) -> None:
    """Create ``models``; a TTL changed in the settings is applied to the existing index."""
    try:
        await database[collection].create_indexes(models)
    except OperationFailure as exc:
        if exc.code not in (85, 86):  # IndexOptionsConflict, IndexKeySpecsConflict
            log.warning("%s indexes not ensured: %s", collection, exc)
            return
        for model in models:
            seconds = model.document.get("expireAfterSeconds")
            if seconds is not None:
                await database.command(
                    {
                        "collMod": collection,
                        "index": {"name": model.document["name"], "expireAfterSeconds": seconds},
                    }
                )
    except PyMongoError as exc:
        log.warning("%s indexes not ensured: %s", collection, exc)


async def ensure_audit_indexes(sources: Sources, settings: Settings) -> None:
    await ensure_ttl_indexes(sources.audit, RECORDS, _indexes(settings))


async def record_reads(sources: Sources, records: list[dict[str, Any]], timeout_s: float) -> bool:
    """Write a response's records before it leaves; whether they are durable."""
    try:
        async with asyncio.timeout(timeout_s):
            await _insert(sources, records)
    except (PyMongoError, TimeoutError) as exc:
        log.error(
            "audit trail not written (%d records of request %s): %s; sensitive fields withheld",
            len(records),
            records[0].get("request_id") if records else "-",
            type(exc).__name__,
        )
        return False
    return True


async def _insert(sources: Sources, records: Sequence[dict[str, Any]]) -> None:
    """Insert records whose ``_id`` is set; one already there (a retry) is no error."""
    try:
        await sources.audit[RECORDS].insert_many(list(records), ordered=False)
    except BulkWriteError as exc:
        others = [e for e in exc.details.get("writeErrors", []) if e.get("code") != _DUPLICATE_KEY]
        if others or exc.details.get("writeConcernErrors"):
            raise


async def append(sources: Sources, record: dict[str, Any]) -> None:
    """A write's record: to the trail, or to the spool when the trail does not answer.
    Raises ``PyMongoError`` only when neither does."""
    record.setdefault("_id", ObjectId())
    try:
        await _insert(sources, [record])
    except PyMongoError as exc:
        log.warning(
            "audit trail unavailable (%s): record of request %s spooled",
            type(exc).__name__,
            record.get("request_id"),
        )
        await sources.gateway[SPOOL].insert_one(record)


async def drain_spool(sources: Sources, *, batch: int = 500) -> int:
    """Move spooled records into the trail; how many moved. A record leaves the spool
    only once the trail holds it."""
    moved = 0
    while True:
        waiting = await sources.gateway[SPOOL].find({}).sort("_id", 1).limit(batch).to_list(None)
        if not waiting:
            return moved
        await _insert(sources, waiting)
        await sources.gateway[SPOOL].delete_many({"_id": {"$in": [r["_id"] for r in waiting]}})
        moved += len(waiting)


async def access_log_page(
    sources: Sources,
    enterprise: str,
    *,
    first: int,
    before: ObjectId | None,
    include_deferred: bool,
    action: str | None = None,
    viewer_kind: str | None = None,
    client_id: str | None = None,
    field: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """A page of the enterprise's trail, newest first, and whether more follow.
    ``include_deferred``: also what the enterprise may not see yet (operators)."""
    query: dict[str, Any] = {
        "enterprise": enterprise,
        "action": action if action is not None else {"$in": list(ACCESS_ACTIONS)},
    }
    if not include_deferred:
        # (Records written before deferrals existed have no visible_from: shown.)
        query["$or"] = [
            {"visible_from": {"$lte": now or dt.datetime.now(dt.UTC)}},
            {"visible_from": {"$exists": False}},
        ]
    if client_id is not None:
        # A client id is a service client's (a person's subject is never searched for):
        # with another viewer kind asked for as well, nothing matches.
        query["viewer.subject"] = client_id
        query["viewer.kind"] = "service" if viewer_kind in (None, "service") else viewer_kind
        if viewer_kind not in (None, "service"):
            return [], False
    elif viewer_kind is not None:
        query["viewer.kind"] = viewer_kind
    if field is not None:
        query["fields"] = field
    return await newest_first(
        sources.audit[RECORDS], query, first, before, {"before": 0, "after": 0}
    )
