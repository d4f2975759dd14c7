"""The archive's write side in MongoDB (DESIGN §6): correction requests, service status,
notifications, client mutation ids, and the audit record of every write.

What the gateway keeps itself lives in its own database (``integrity_gateway``);
accepted corrections and service status are written to their source documents, and
the cache entries that hold those are evicted (loaders/freshness.py) before the
mutation answers. Notifications are also published on Redis, where the subscriptions of
every replica hear them (gateway/notifications.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.errors import DuplicateKeyError, PyMongoError

from gateway.audit import viewer_record
from gateway.cache import DocumentCache
from gateway.settings import Settings, Source
from gateway.sources import Sources
from gateway.viewer import Viewer
from loaders import audit
from loaders.base import Document, newest_first
from loaders.freshness import Change, Freshness
from loaders.identity import AUTHENTICATIONS
from loaders.integrity import SERVICE_STATUS
from loaders.registry import ENTERPRISES

__all__ = [
    "CORRECTIONS",
    "MUTATIONS",
    "NOTIFICATIONS",
    "Claim",
    "audit_write",
    "ensure_write_indexes",
    "notification_channel",
    "notify",
    "notify_external",
    "stored_now",
]

log = logging.getLogger(__name__)

CORRECTIONS = "corrections"
NOTIFICATIONS = "notifications"
MUTATIONS = "mutations"
#: Redis channel of one enterprise's live notifications.
_CHANNEL = "ig:notifications:"


def stored_now() -> dt.datetime:
    """Now, to the millisecond BSON keeps: what a write answers is what a read will."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def notification_channel(uscc: str) -> str:
    return f"{_CHANNEL}{uscc}"


def _indexes(settings: Settings) -> dict[str, list[IndexModel]]:
    return {
        CORRECTIONS: [
            IndexModel([("uscc", ASCENDING), ("_id", DESCENDING)], name="uscc_newest"),
        ],
        NOTIFICATIONS: [
            IndexModel([("uscc", ASCENDING), ("_id", DESCENDING)], name="uscc_newest"),
            IndexModel([("uscc", ASCENDING), ("read", ASCENDING)], name="uscc_read"),
            # A change several watchers saw is told once.
            IndexModel([("event", ASCENDING)], name="event", unique=True, sparse=True),
            IndexModel(
                [("at", ASCENDING)],
                name="retention",
                expireAfterSeconds=settings.notification_retention_days * 86_400,
            ),
        ],
        MUTATIONS: [
            IndexModel(
                [("at", ASCENDING)],
                name="replay_window",
                expireAfterSeconds=settings.mutation_replay_hours * 3_600,
            ),
        ],
    }


async def ensure_write_indexes(sources: Sources, settings: Settings) -> None:
    """The write side's indexes; a retention changed in the settings is applied to the
    existing TTL index."""
    for collection, models in _indexes(settings).items():
        await audit.ensure_ttl_indexes(sources.gateway, collection, models)


async def audit_write(
    sources: Sources,
    viewer: Viewer,
    request_id: str,
    *,
    action: str,
    enterprise: str,
    before: Any,
    after: Any,
) -> None:
    """The record of one write (who, what, before and after, request id), stored before
    the mutation answers: in the trail, or spooled until it answers (loaders/audit.py).
    Raises ``PyMongoError`` only when neither the trail nor the spool does."""
    at = stored_now()
    await audit.append(
        sources,
        {
            "viewer": viewer_record(viewer),
            "request_id": request_id,
            "at": at,
            "visible_from": at,
            "enterprise": enterprise,
            "action": action,
            "before": before,
            "after": after,
        },
    )


# --- client mutation ids ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    """A client mutation id taken for one write. ``replay``: the result the same id and
    input got before (nothing is to be written again); ``conflict``: the id was used for
    another input, or is still being written; otherwise the write is this request's."""

    key: str | None
    replay: Document | None = None
    conflict: str | None = None


def _fingerprint(mutation: str, arguments: Mapping[str, Any]) -> str:
    text = orjson.dumps({"m": mutation, "a": arguments}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(text).hexdigest()


async def claim(
    sources: Sources,
    viewer: Viewer,
    client_mutation_id: str | None,
    mutation: str,
    arguments: Mapping[str, Any],
) -> Claim:
    """Take ``client_mutation_id`` for this write (per viewer: two clients' ids never
    meet). Without an id every call writes."""
    if client_mutation_id is None:
        return Claim(None)
    key = f"{viewer.kind}:{viewer.subject}:{client_mutation_id}"
    fingerprint = _fingerprint(mutation, arguments)
    records = sources.gateway[MUTATIONS]
    try:
        await records.insert_one(
            {
                "_id": key,
                "mutation": mutation,
                "input": fingerprint,
                "state": "pending",
                "at": stored_now(),
            }
        )
        return Claim(key)
    except DuplicateKeyError:
        pass
    held = await records.find_one({"_id": key})
    if held is None:  # released meanwhile: a retry may take it
        return await claim(sources, viewer, client_mutation_id, mutation, arguments)
    if held["input"] != fingerprint:
        return Claim(None, conflict="reused")
    if held["state"] != "done":
        return Claim(None, conflict="pending")
    return Claim(None, replay=held["result"])


async def settle(sources: Sources, taken: Claim, result: Document) -> None:
    """The write under ``taken`` is done: a retry gets ``result``."""
    if taken.key is not None:
        await sources.gateway[MUTATIONS].update_one(
            {"_id": taken.key}, {"$set": {"state": "done", "result": result}}
        )


async def release(sources: Sources, taken: Claim) -> None:
    """The write under ``taken`` failed before anything was written: free the id."""
    if taken.key is not None:
        try:
            await sources.gateway[MUTATIONS].delete_one({"_id": taken.key, "state": "pending"})
        except PyMongoError as exc:
            log.warning("client mutation id not released: %s", type(exc).__name__)


# --- notifications --------------------------------------------------------------------


async def notify(
    sources: Sources,
    cache: DocumentCache,
    uscc: str,
    kind: str,
    title: str,
    body: str,
    *,
    event: str | None = None,
) -> Document | None:
    """Store a notification for ``uscc`` and publish it to its live subscriptions.
    ``event``: the change it tells of, stored once (None when already told). Raises
    ``PyMongoError`` (nothing stored); a failed publish is logged only: the
    notification is stored and listed."""
    doc: Document = {
        "_id": ObjectId(),
        "uscc": uscc,
        "kind": kind,
        "title": title,
        "body": body,
        "at": stored_now(),
        "read": False,
    }
    if event is not None:
        doc["event"] = event
    try:
        await sources.gateway[NOTIFICATIONS].insert_one(doc)
    except DuplicateKeyError:
        return None
    try:
        await cache.publish(notification_channel(uscc), str(doc["_id"]).encode())
    except Exception as exc:
        log.warning("notification %s stored, not pushed: %s", doc["_id"], type(exc).__name__)
    return doc


async def notifications_page(
    sources: Sources, uscc: str, *, first: int, before: ObjectId | None, unread_only: bool
) -> tuple[list[Document], bool]:
    query: Document = {"uscc": uscc}
    if unread_only:
        query["read"] = False
    return await newest_first(sources.gateway[NOTIFICATIONS], query, first, before)


async def unread_count(sources: Sources, uscc: str) -> int:
    return await sources.gateway[NOTIFICATIONS].count_documents({"uscc": uscc, "read": False})


async def notification(sources: Sources, notification_id: ObjectId) -> Document | None:
    return await sources.gateway[NOTIFICATIONS].find_one({"_id": notification_id})


async def mark_read(sources: Sources, uscc: str, ids: list[ObjectId] | None) -> int:
    """Mark the enterprise's notifications read (the listed ones, or all); how many
    were unread."""
    query: Document = {"uscc": uscc, "read": False}
    if ids is not None:
        query["_id"] = {"$in": ids}
    result = await sources.gateway[NOTIFICATIONS].update_many(query, {"$set": {"read": True}})
    return result.modified_count


# --- corrections ----------------------------------------------------------------------


async def enterprise_document(sources: Sources, uscc: str) -> Document | None:
    """The registry document, read from MongoDB (a write decides on what is stored)."""
    return await sources.db(Source.REGISTRY)[ENTERPRISES].find_one({"_id": uscc})


async def insert_correction(sources: Sources, correction: Document) -> None:
    await sources.gateway[CORRECTIONS].insert_one(correction)


async def correction(sources: Sources, correction_id: ObjectId) -> Document | None:
    return await sources.gateway[CORRECTIONS].find_one({"_id": correction_id})


async def corrections_of(
    sources: Sources, uscc: str, *, first: int, before: ObjectId | None
) -> tuple[list[Document], bool]:
    return await newest_first(sources.gateway[CORRECTIONS], {"uscc": uscc}, first, before)


async def close_correction(
    sources: Sources, correction_id: ObjectId, outcome: Document
) -> Document | None:
    """OPEN → ``outcome["state"]``, atomically: None when it was no longer open."""
    return await sources.gateway[CORRECTIONS].find_one_and_update(
        {"_id": correction_id, "state": "OPEN"},
        {"$set": outcome},
        return_document=ReturnDocument.AFTER,
    )


async def apply_correction(
    sources: Sources, freshness: Freshness, uscc: str, field: str, value: Any
) -> Document | None:
    """Write an accepted correction to the registry document and evict what held it
    (search kept in step); the document before, or None when it is gone."""
    enterprises = sources.db(Source.REGISTRY)[ENTERPRISES]
    before = await enterprises.find_one_and_update({"_id": uscc}, {"$set": {field: value}})
    if before is not None:
        after = {**before, field: value}
        await freshness.apply(
            Change(Source.REGISTRY, ENTERPRISES, "update", uscc, before=before, after=after)
        )
    return before


# --- service status -------------------------------------------------------------------


async def service_status(sources: Sources, uscc: str) -> Document | None:
    return await sources.db(Source.INTEGRITY)[SERVICE_STATUS].find_one({"_id": uscc})


async def move_service_status(
    sources: Sources,
    freshness: Freshness,
    uscc: str,
    current: Document | None,
    new: Document,
) -> bool:
    """``current`` → ``new``, only if the status is still ``current`` (None: none was
    set up); evicts the cached status at once. False when another write came first."""
    statuses = sources.db(Source.INTEGRITY)[SERVICE_STATUS]
    if current is None:
        try:
            await statuses.insert_one(new)
        except DuplicateKeyError:
            return False
    else:
        result = await statuses.replace_one({"_id": uscc, "status": current["status"]}, new)
        if result.matched_count == 0:
            return False
    await freshness.apply(
        Change(Source.INTEGRITY, SERVICE_STATUS, "replace", uscc, before=current, after=new)
    )
    return True


# --- changes made elsewhere -----------------------------------------------------------


async def notify_external(
    sources: Sources, cache: DocumentCache, change: Change, event: str
) -> None:
    """Tell the enterprise of a service-status or authentication change another system
    made (the gateway's own writes notify as they write, and mark the status they set
    with ``set_by``)."""
    after, before = change.after, change.before
    if after is None or not isinstance(change.key, str):
        return
    if (change.source, change.collection) == (Source.INTEGRITY, SERVICE_STATUS):
        own = after.get("set_by")
        if own is not None and (before is None or before.get("set_by") != own):
            return  # written through the gateway, which told the enterprise already
        if before is not None and before.get("status") == after.get("status"):
            return
        state = str(after.get("status", "")).lower()
        await notify(
            sources,
            cache,
            change.key,
            "STATUS",
            f"Integrity service {state}",
            after.get("reason") or f"Your integrity service is {state}.",
            event=event,
        )
    elif (change.source, change.collection) == (Source.IDENTITY, AUTHENTICATIONS):
        if before is not None and before.get("status") == after.get("status"):
            return
        status = str(after.get("status", "")).lower()
        await notify(
            sources,
            cache,
            change.key,
            "AUTHENTICATION",
            f"Identity authentication {status}",
            f"Your identity authentication is now {status}.",
            event=event,
        )


#: The collections whose changes ``notify_external`` tells of.
TOLD = ((Source.INTEGRITY, SERVICE_STATUS), (Source.IDENTITY, AUTHENTICATIONS))


# --- lawful disclosures (clause 1.11) -------------------------------------------------

#: In the gateway's database: how far deferred disclosure notices have been sent.
UPKEEP = "upkeep"
_DISCLOSURE_NOTICES = "disclosure_notices"
_NOTICE_OVERLAP = dt.timedelta(minutes=5)


async def _tell_disclosure(
    sources: Sources, cache: DocumentCache, record: Document
) -> Document | None:
    """The enterprise's notice of a disclosure, stored once (its event key); None when
    it was told already."""
    authority, fields = record["authority"], ", ".join(record["fields"])
    return await notify(
        sources,
        cache,
        record["enterprise"],
        "DISCLOSURE",
        f"Information disclosed to {authority}",
        f"As the law requires ({record['legal_basis']}; reference {record['reference']}), "
        f"the operator disclosed to {authority}: {fields}.",
        event=f"disclosure:{record['_id']}",
    )


async def record_disclosure(
    sources: Sources,
    cache: DocumentCache,
    viewer: Viewer,
    request_id: str,
    *,
    enterprise: str,
    authority: str,
    legal_basis: str,
    reference: str,
    fields: list[str],
    deferred_until: dt.datetime | None,
) -> Document:
    """Put a disclosure on the enterprise's trail, and tell the enterprise now or, if
    the law defers notice, when the deferral ends (``release_deferred_notices``)."""
    at = stored_now()
    record: Document = {
        "_id": ObjectId(),
        "viewer": viewer_record(viewer),
        "request_id": request_id,
        "at": at,
        "visible_from": deferred_until or at,
        "enterprise": enterprise,
        "action": "disclosure",
        "fields": sorted(set(fields)),
        "purpose": [legal_basis],
        "authority": authority,
        "legal_basis": legal_basis,
        "reference": reference,
    }
    if deferred_until is not None:
        record["notice_deferred_until"] = deferred_until
    # When the enterprise is to be told: now, or when the deferral ends. Told now, a
    # failure is only logged: ``release_deferred_notices`` tells it on its next round.
    record["notice_due"] = deferred_until or at
    await audit.append(sources, record)
    if deferred_until is None:
        try:
            await _tell_disclosure(sources, cache, record)
        except PyMongoError as exc:
            log.warning("disclosure %s recorded, notice left for upkeep: %s", record["_id"], exc)
    return record


async def release_deferred_notices(
    sources: Sources, cache: DocumentCache, *, now: dt.datetime | None = None
) -> int:
    """Tell enterprises of the disclosures whose notice has come due (a deferral
    ended, or a notice that failed when recorded) since the last call; how many were
    told. Safe to run in every replica at once (each notice has
    its event key, so it is stored once)."""
    now = now or stored_now()
    upkeep = sources.gateway[UPKEEP]
    mark = await upkeep.find_one({"_id": _DISCLOSURE_NOTICES})
    # Each round looks a while back past the last one: a record written just as that
    # round ran is not passed over (a notice already stored is not stored again).
    since = (
        mark["until"] - _NOTICE_OVERLAP
        if mark is not None
        else dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    )
    due = sources.audit[audit.RECORDS].find(
        {"action": "disclosure", "notice_due": {"$gt": since, "$lte": now}}
    )
    told = 0
    async for record in due:
        told += await _tell_disclosure(sources, cache, record) is not None
    await upkeep.update_one({"_id": _DISCLOSURE_NOTICES}, {"$set": {"until": now}}, upsert=True)
    return told


async def upkeep(sources: Sources, cache: DocumentCache) -> None:
    """What every replica does every few seconds: move spooled audit records into the
    trail, then tell enterprises of disclosures whose deferral ended (only once the
    spool is empty, so no disclosure waiting in it is passed over)."""
    await audit.drain_spool(sources)
    await release_deferred_notices(sources, cache)
