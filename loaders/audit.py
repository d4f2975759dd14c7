"""Writes audit records to MongoDB (the ``audit`` database beside the registry)."""

from __future__ import annotations

import logging

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.errors import PyMongoError

from gateway.audit import AuditTrail
from gateway.sources import Sources

__all__ = ["AUDIT_INDEXES", "RECORDS", "ensure_audit_indexes", "write_audit"]

log = logging.getLogger(__name__)

RECORDS = "records"
AUDIT_INDEXES = [
    IndexModel([("enterprise", ASCENDING), ("at", DESCENDING)], name="enterprise_at"),
    IndexModel([("request_id", ASCENDING)], name="request_id"),
]


async def ensure_audit_indexes(sources: Sources) -> None:
    try:
        await sources.audit[RECORDS].create_indexes(AUDIT_INDEXES)
    except PyMongoError as exc:
        log.warning("audit indexes not ensured: %s", exc)


async def write_audit(sources: Sources, trail: AuditTrail) -> None:
    """One insert per request. A failure is logged loudly (the record is lost), never
    raised: the response has already been sent."""
    records = trail.records()
    if not records:
        return
    try:
        await sources.audit[RECORDS].insert_many(records)
    except PyMongoError as exc:
        log.error(
            "audit write failed for request %s (%d records): %s",
            trail.request_id,
            len(records),
            type(exc).__name__,
        )
