"""The archive's writes (DESIGN §6): corrections, service status, notifications read.

Every mutation has its tier (an owner requests corrections and marks its notifications
read; operators, or service clients under a scope, resolve corrections and set service
status), validates its whole input before any database call, takes its client mutation
id (a retry with the same id and input gets the first answer, another input with it is
refused), writes, evicts what it changed before answering, writes its audit record
(who, what, before and after, request id) and notifies the enterprise.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import strawberry
from bson import ObjectId
from bson.errors import InvalidId
from pymongo.errors import PyMongoError
from redis.exceptions import RedisError

from gateway.settings import Source
from gateway.viewer import Owner
from loaders import writes
from loaders.base import Document, source_error, source_timeout
from loaders.freshness import Freshness
from resolvers.context import Context, Info
from resolvers.errors import ErrorCode, bad_user_input, refused
from resolvers.integrity import ServiceState, ServiceStatus
from resolvers.notices import (
    CORRECTIONS_REQUEST,
    CORRECTIONS_RESOLVE,
    CorrectionRequest,
    correction_field,
)
from resolvers.permissions import Tier, visible
from resolvers.scalars import USCC
from resolvers.trail import AccessRecord, check_coordinates

__all__ = ["CORRECTABLE", "Mutation"]

log = logging.getLogger(__name__)

SERVICE_STATUS_WRITE = "service-status:write"


@dataclass(frozen=True, slots=True)
class Correctable:
    """An archive field a correction may change: its registry field and bounds."""

    document_field: str
    shortest: int = 1
    longest: int = 200
    is_date: bool = False


#: By GraphQL name. Presentation errors only: what the USCC implies (kind, region),
#: the registration status, capital, shareholders and change records are the
#: registry's own record and are corrected there, not here.
CORRECTABLE = {
    "name": Correctable("name", 2, 100),
    "registeredAddress": Correctable("address", 2, 200),
    "businessScope": Correctable("business_scope", 2, 2000),
    "registrationAuthority": Correctable("authority", 2, 100),
    "establishedOn": Correctable("established_on", 10, 10, is_date=True),
}
_TEXT = {
    "explanation": 1000,
    "note": 1000,
    "reason": 500,
    "authority": 200,
    "legalBasis": 500,
    "referenceNumber": 100,
}
_MAX_DISCLOSED_FIELDS = 50
#: The longest a law may defer telling the enterprise of a disclosure, here.
_LONGEST_DEFERRAL = dt.timedelta(days=5 * 366)
_CLIENT_MUTATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_MAX_IDS = 100


# --- payloads -------------------------------------------------------------------------


@strawberry.type
class Written:
    """What every payload says: the client mutation id, and whether this was a retry."""

    client_mutation_id: str | None = visible(Tier.PUBLIC, "As sent.")
    replayed: bool = visible(
        Tier.PUBLIC, "True when this client mutation id was done before: nothing was written."
    )


@strawberry.type
class CorrectionWritten(Written):
    correction: CorrectionRequest | None = correction_field("The request, as it stands.")
    #: Whose request it is, for the rule on ``correction``.
    enterprise_uscc: strawberry.Private[str] = ""


@strawberry.type(description="What requestCorrection did.")
class RequestCorrectionPayload(CorrectionWritten):
    pass


@strawberry.type(description="What resolveCorrection did.")
class ResolveCorrectionPayload(CorrectionWritten):
    pass


@strawberry.type(description="What setServiceStatus did.")
class SetServiceStatusPayload(Written):
    service_status: ServiceStatus = visible(Tier.PUBLIC, "The status set.")


@strawberry.type(description="What markNotificationsRead did.")
class MarkNotificationsReadPayload(Written):
    marked: int = visible(Tier.PUBLIC, "Notifications that were unread and now are read.")
    unread_count: int = visible(Tier.PUBLIC, "Unread notifications left.")


@strawberry.type(description="What recordDisclosure did.")
class RecordDisclosurePayload(Written):
    disclosure: AccessRecord | None = visible(
        Tier.OWNER, "The disclosure, as the enterprise's accessLog shows it.", audited=False
    )
    #: Whose disclosure it is, for the rule on ``disclosure``.
    enterprise_uscc: strawberry.Private[str] = ""


# --- input checks (no database call) -------------------------------------------------


def _text(argument: str, value: str, longest: int, shortest: int = 1) -> str:
    clean = value.strip()
    if not shortest <= len(clean) <= longest:
        raise bad_user_input(
            f"{argument} must be {shortest} to {longest} characters", argument=argument
        )
    return clean


def _client_mutation_id(value: str | None) -> str | None:
    if value is not None and not _CLIENT_MUTATION_ID.fullmatch(value):
        raise bad_user_input(
            "clientMutationId must be 1 to 64 characters from A-Z a-z 0-9 . _ : -",
            argument="clientMutationId",
        )
    return value


def _object_id(argument: str, value: str) -> ObjectId:
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        raise bad_user_input(f"{argument} is not an id this API gave", argument=argument) from None


def _proposed(field: str, value: str) -> tuple[Correctable, Any, str]:
    """The correctable field, the value to store and its text; refused otherwise."""
    target = CORRECTABLE.get(field)
    if target is None:
        raise refused(
            ErrorCode.FIELD_NOT_CORRECTABLE,
            f"{field!r} cannot be corrected here; correctable fields: "
            f"{', '.join(sorted(CORRECTABLE))}.",
        )
    text = _text("proposedValue", value, target.longest, target.shortest)
    if not target.is_date:
        return target, text, text
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise bad_user_input(
            "proposedValue must be a date, YYYY-MM-DD", argument="proposedValue"
        ) from None
    if day > dt.datetime.now(dt.UTC).date():
        raise bad_user_input("proposedValue is a date in the future", argument="proposedValue")
    stored = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return target, stored, day.isoformat()


def _shown(value: Any) -> str:
    """A stored registry value as the archive shows it, for comparison and the record."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    return "" if value is None else str(value)


# --- the write protocol ---------------------------------------------------------------

_TRANSITIONS = {
    None: {"ACTIVE", "SUSPENDED", "TERMINATED"},
    "ACTIVE": {"SUSPENDED", "TERMINATED"},
    "SUSPENDED": {"ACTIVE", "TERMINATED"},
    "TERMINATED": set(),
}


async def _once(
    context: Context,
    client_mutation_id: str | None,
    mutation: str,
    arguments: dict[str, Any],
    write: Callable[[], Awaitable[Document]],
) -> tuple[Document, bool]:
    """Run ``write`` once per client mutation id: its result, and whether it is a replay.

    A refusal or a failure before anything was written frees the id again."""
    sources = context.sources
    try:
        with source_timeout(sources, context.loaders.deadline):
            taken = await writes.claim(
                sources, context.viewer, client_mutation_id, mutation, arguments
            )
    except PyMongoError:
        raise source_error(Source.REGISTRY, context.loaders.deadline) from None
    if taken.conflict == "reused":
        raise refused(
            ErrorCode.CLIENT_MUTATION_ID_REUSED,
            "This clientMutationId was used for a different input; use a new one.",
        )
    if taken.conflict == "pending":
        raise refused(
            ErrorCode.MUTATION_IN_PROGRESS,
            "The first write with this clientMutationId is still running; retry shortly.",
        )
    if taken.replay is not None:
        return taken.replay, True
    try:
        result = await write()
    except BaseException:
        await writes.release(sources, taken)
        raise
    try:
        await writes.settle(sources, taken, result)
    except PyMongoError as exc:
        log.error("client mutation id not settled (request %s): %s", context.request_id, exc)
    return result, False


async def _after_write(context: Context, work: Awaitable[Any], what: str) -> None:
    """Audit and notification, once the write is done: a failure is logged with the
    request id (the write stands; it is in the source and the record says what)."""
    try:
        await work
    except (PyMongoError, RedisError) as exc:
        log.error("%s failed after a write (request %s): %s", what, context.request_id, exc)


async def _enterprise(context: Context, uscc: str) -> Document:
    """The enterprise's registry document, read for a write; NOT_FOUND if none."""
    try:
        enterprise = await writes.enterprise_document(context.sources, uscc)
    except PyMongoError:
        raise _source_failure(context, Source.REGISTRY) from None
    if enterprise is None:
        raise refused(ErrorCode.NOT_FOUND, f"No enterprise has USCC {uscc}.")
    return enterprise


def _freshness(context: Context) -> Freshness:
    return Freshness(context.sources, context.cache)


def _source_failure(context: Context, source: Source) -> Exception:
    return source_error(source, context.loaders.deadline)


@strawberry.type(description="Writes. Each states who may make it; every one is audited.")
class Mutation:
    @visible(
        Tier.OWNER,
        "Ask the operator to correct a presentation error in one archive field (service "
        "agreement clause 1.4). `field` is the GraphQL name: name, registeredAddress, "
        "businessScope, registrationAuthority or establishedOn (YYYY-MM-DD); "
        "`proposedValue` and `explanation` (1 to 1000 characters) are required. "
        "The enterprise itself, or a service client with scope corrections:request.",
        scopes=[CORRECTIONS_REQUEST],
    )
    async def request_correction(
        self,
        info: Info,
        uscc: USCC,
        field: str,
        proposed_value: str,
        explanation: str,
        client_mutation_id: str | None = None,
    ) -> RequestCorrectionPayload | None:
        context = info.context
        target, _, proposed_text = _proposed(field, proposed_value)
        reason = _text("explanation", explanation, _TEXT["explanation"])
        cmid = _client_mutation_id(client_mutation_id)
        sources = context.sources

        async def write() -> Document:
            enterprise = await _enterprise(context, uscc)
            previous = _shown(enterprise.get(target.document_field))
            if previous == proposed_text:
                raise refused(ErrorCode.NO_CHANGE, f"{field} already shows this value.")
            doc: Document = {
                "_id": ObjectId(),
                "uscc": uscc,
                "field": field,
                "proposed_value": proposed_text,
                "previous_value": previous,
                "explanation": reason,
                "state": "OPEN",
                "requested_at": writes.stored_now(),
                "requested_by": {"kind": context.viewer.kind, "subject": context.viewer.subject},
                "request_id": context.request_id,
            }
            try:
                await writes.insert_correction(sources, doc)
            except PyMongoError:
                raise _source_failure(context, Source.REGISTRY) from None
            await _after_write(
                context,
                writes.audit_write(
                    sources,
                    context.viewer,
                    context.request_id,
                    action="requestCorrection",
                    enterprise=uscc,
                    before=None,
                    after={
                        "correction": str(doc["_id"]),
                        "field": field,
                        "proposed": proposed_text,
                    },
                ),
                "audit record",
            )
            await _after_write(
                context,
                writes.notify(
                    sources,
                    context.cache,
                    uscc,
                    "CORRECTION",
                    f"Correction request received: {field}",
                    f"We received your request to show {proposed_text!r} as {field}; "
                    "an operator will answer it.",
                ),
                "notification",
            )
            return {"correction": doc["_id"]}

        arguments = {"uscc": uscc, "field": field, "value": proposed_text, "why": reason}
        result, replayed = await _once(context, cmid, "requestCorrection", arguments, write)
        return RequestCorrectionPayload(
            enterprise_uscc=uscc,
            client_mutation_id=cmid,
            replayed=replayed,
            correction=await _correction(context, result["correction"]),
        )

    @visible(
        Tier.OPERATOR,
        "Accept or reject an open correction request, with a note to the enterprise. "
        "Accepting writes the value to the archive at once. Operators, or service "
        "clients with scope corrections:resolve.",
        scopes=[CORRECTIONS_RESOLVE],
    )
    async def resolve_correction(
        self,
        info: Info,
        id: strawberry.ID,
        accept: bool,
        note: str,
        client_mutation_id: str | None = None,
    ) -> ResolveCorrectionPayload | None:
        context = info.context
        correction_id = _object_id("id", id)
        answer = _text("note", note, _TEXT["note"])
        cmid = _client_mutation_id(client_mutation_id)
        sources = context.sources

        async def write() -> Document:
            try:
                found = await writes.correction(sources, correction_id)
            except PyMongoError:
                raise _source_failure(context, Source.REGISTRY) from None
            if found is None:
                raise refused(ErrorCode.NOT_FOUND, f"No correction request has id {id}.")
            if found["state"] != "OPEN":
                raise refused(
                    ErrorCode.ALREADY_RESOLVED,
                    f"This request was already {found['state'].lower()}.",
                )
            state = "ACCEPTED" if accept else "REJECTED"
            outcome = {
                "state": state,
                "note": answer,
                "resolved_at": writes.stored_now(),
                "resolved_by": {"kind": context.viewer.kind, "subject": context.viewer.subject},
            }
            try:
                closed = await writes.close_correction(sources, correction_id, outcome)
            except PyMongoError:
                raise _source_failure(context, Source.REGISTRY) from None
            if closed is None:
                raise refused(ErrorCode.ALREADY_RESOLVED, "This request was answered meanwhile.")
            uscc = found["uscc"]
            before = found["previous_value"]
            if accept:
                target, value, _ = _proposed(found["field"], found["proposed_value"])
                try:
                    stored = await writes.apply_correction(
                        sources, _freshness(context), uscc, target.document_field, value
                    )
                except (PyMongoError, RedisError):
                    await _reopen(sources, correction_id)
                    raise _source_failure(context, Source.REGISTRY) from None
                if stored is None:
                    await _reopen(sources, correction_id)
                    raise refused(ErrorCode.NOT_FOUND, f"No enterprise has USCC {uscc} any more.")
                before = _shown(stored.get(target.document_field))
            await _after_write(
                context,
                writes.audit_write(
                    sources,
                    context.viewer,
                    context.request_id,
                    action="resolveCorrection",
                    enterprise=uscc,
                    before={"field": found["field"], "value": before, "state": "OPEN"},
                    after={
                        "field": found["field"],
                        "value": found["proposed_value"] if accept else before,
                        "state": state,
                    },
                ),
                "audit record",
            )
            await _after_write(
                context,
                writes.notify(
                    sources,
                    context.cache,
                    uscc,
                    "CORRECTION",
                    f"Correction {state.lower()}: {found['field']}",
                    answer,
                ),
                "notification",
            )
            return {"correction": correction_id}

        arguments = {"id": str(correction_id), "accept": accept, "note": answer}
        result, replayed = await _once(context, cmid, "resolveCorrection", arguments, write)
        answered = await _correction(context, result["correction"])
        return ResolveCorrectionPayload(
            enterprise_uscc=answered.enterprise_uscc if answered is not None else "",
            client_mutation_id=cmid,
            replayed=replayed,
            correction=answered,
        )

    @visible(
        Tier.OPERATOR,
        "Suspend, terminate or reinstate an enterprise's integrity service (clauses 3 and "
        "4.3). ACTIVE and SUSPENDED move to each other; either moves to TERMINATED, which "
        "is final. `reason` (1 to 500 characters) is required unless reinstating. The "
        "grade is withheld on every page at once. Operators, or service clients with "
        "scope service-status:write.",
        scopes=[SERVICE_STATUS_WRITE],
    )
    async def set_service_status(
        self,
        info: Info,
        uscc: USCC,
        state: ServiceState,
        reason: str | None = None,
        client_mutation_id: str | None = None,
    ) -> SetServiceStatusPayload | None:
        context = info.context
        why: str | None
        if state is ServiceState.ACTIVE and (reason is None or not reason.strip()):
            why = None
        else:
            why = _text("reason", reason or "", _TEXT["reason"])
        cmid = _client_mutation_id(client_mutation_id)
        sources = context.sources

        async def write() -> Document:
            try:
                enterprise = await writes.enterprise_document(sources, uscc)
                current = await writes.service_status(sources, uscc)
            except PyMongoError:
                raise _source_failure(context, Source.INTEGRITY) from None
            if enterprise is None:
                raise refused(ErrorCode.NOT_FOUND, f"No enterprise has USCC {uscc}.")
            was = current["status"] if current is not None else None
            if state.value not in _TRANSITIONS[was]:
                raise refused(
                    ErrorCode.TRANSITION_NOT_ALLOWED,
                    f"The service cannot move from {was} to {state.value}"
                    + ("; TERMINATED is final." if was == "TERMINATED" else "."),
                )
            new: Document = {
                "_id": uscc,
                "status": state.value,
                "since": writes.stored_now(),
                "reason": why,
                "set_by": {
                    "kind": context.viewer.kind,
                    "subject": context.viewer.subject,
                    "request_id": context.request_id,
                },
            }
            try:
                moved = await writes.move_service_status(
                    sources, _freshness(context), uscc, current, new
                )
            except (PyMongoError, RedisError):
                raise _source_failure(context, Source.INTEGRITY) from None
            if not moved:
                raise refused(ErrorCode.CONFLICT, "The status changed meanwhile; read it again.")
            shown = {key: new[key] for key in ("status", "since", "reason")}
            await _after_write(
                context,
                writes.audit_write(
                    sources,
                    context.viewer,
                    context.request_id,
                    action="setServiceStatus",
                    enterprise=uscc,
                    before=None
                    if current is None
                    else {key: current.get(key) for key in ("status", "since", "reason")},
                    after=shown,
                ),
                "audit record",
            )
            words = {"ACTIVE": "reinstated", "SUSPENDED": "suspended", "TERMINATED": "terminated"}
            await _after_write(
                context,
                writes.notify(
                    sources,
                    context.cache,
                    uscc,
                    "STATUS",
                    f"Integrity service {words[state.value]}",
                    why or "Your integrity service is active again.",
                ),
                "notification",
            )
            return {"status": {"_id": uscc, **shown}}

        arguments = {"uscc": uscc, "state": state.value, "reason": why}
        result, replayed = await _once(context, cmid, "setServiceStatus", arguments, write)
        return SetServiceStatusPayload(
            client_mutation_id=cmid,
            replayed=replayed,
            service_status=ServiceStatus.from_document(uscc, result["status"]),
        )

    @visible(
        Tier.OWNER,
        f"Mark the enterprise's notifications read: those named in `ids` (at most "
        f"{_MAX_IDS}), or all. The enterprise itself only.",
    )
    async def mark_notifications_read(
        self,
        info: Info,
        uscc: USCC,
        ids: list[strawberry.ID] | None = None,
        client_mutation_id: str | None = None,
    ) -> MarkNotificationsReadPayload | None:
        context = info.context
        if not isinstance(context.viewer, Owner):
            raise refused(
                ErrorCode.FORBIDDEN, "Only the enterprise itself marks its notifications read."
            )
        if ids is not None and len(ids) > _MAX_IDS:
            raise bad_user_input(f"ids holds at most {_MAX_IDS} ids", argument="ids")
        chosen = None if ids is None else [_object_id("ids", value) for value in ids]
        cmid = _client_mutation_id(client_mutation_id)
        sources = context.sources

        async def write() -> Document:
            try:
                marked = await writes.mark_read(sources, uscc, chosen)
            except PyMongoError:
                raise _source_failure(context, Source.REGISTRY) from None
            await _after_write(
                context,
                writes.audit_write(
                    sources,
                    context.viewer,
                    context.request_id,
                    action="markNotificationsRead",
                    enterprise=uscc,
                    before=None,
                    after={"marked": marked, "ids": None if chosen is None else len(chosen)},
                ),
                "audit record",
            )
            return {"marked": marked}

        arguments = {"uscc": uscc, "ids": None if chosen is None else sorted(map(str, chosen))}
        result, replayed = await _once(context, cmid, "markNotificationsRead", arguments, write)
        try:
            unread = await writes.unread_count(sources, uscc)
        except PyMongoError:
            raise _source_failure(context, Source.REGISTRY) from None
        return MarkNotificationsReadPayload(
            client_mutation_id=cmid, replayed=replayed, marked=result["marked"], unread_count=unread
        )

    @visible(
        Tier.OPERATOR,
        "Record a disclosure of the enterprise's data to an authority as the law requires "
        "(service agreement clause 1.11): the authority, the legal basis, the authority's "
        "reference and the fields disclosed (as Type.field, 1 to 50). It appears in the "
        "enterprise's accessLog and notifications at once, or, when the law defers notice, "
        "once `noticeDeferredUntil` (a future time, at most five years ahead) has passed. "
        "Operators only.",
    )
    async def record_disclosure(
        self,
        info: Info,
        uscc: USCC,
        authority: str,
        legal_basis: str,
        reference_number: str,
        fields: list[str],
        notice_deferred_until: dt.datetime | None = None,
        client_mutation_id: str | None = None,
    ) -> RecordDisclosurePayload | None:
        context = info.context
        recipient = _text("authority", authority, _TEXT["authority"])
        basis = _text("legalBasis", legal_basis, _TEXT["legalBasis"])
        reference = _text("referenceNumber", reference_number, _TEXT["referenceNumber"])
        if not 0 < len(fields) <= _MAX_DISCLOSED_FIELDS:
            raise bad_user_input(
                f"fields names 1 to {_MAX_DISCLOSED_FIELDS} fields", argument="fields"
            )
        disclosed = check_coordinates(info._raw_info.schema, "fields", fields)
        deferred = notice_deferred_until
        if deferred is not None:
            if deferred.tzinfo is None:
                raise bad_user_input(
                    "noticeDeferredUntil needs a time zone", argument="noticeDeferredUntil"
                )
            now = dt.datetime.now(dt.UTC)
            if not now < deferred <= now + _LONGEST_DEFERRAL:
                raise bad_user_input(
                    "noticeDeferredUntil must be in the future, at most five years ahead",
                    argument="noticeDeferredUntil",
                )
            deferred = deferred.astimezone(dt.UTC).replace(
                microsecond=deferred.microsecond // 1000 * 1000
            )
        cmid = _client_mutation_id(client_mutation_id)
        sources = context.sources

        async def write() -> Document:
            await _enterprise(context, uscc)
            try:
                record = await writes.record_disclosure(
                    sources,
                    context.cache,
                    context.viewer,
                    context.request_id,
                    enterprise=uscc,
                    authority=recipient,
                    legal_basis=basis,
                    reference=reference,
                    fields=disclosed,
                    deferred_until=deferred,
                )
            except PyMongoError:
                raise _source_failure(context, Source.REGISTRY) from None
            return {"record": record}

        arguments = {
            "uscc": uscc,
            "authority": recipient,
            "basis": basis,
            "reference": reference,
            "fields": sorted(disclosed),
            "deferred": deferred.isoformat() if deferred is not None else None,
        }
        result, replayed = await _once(context, cmid, "recordDisclosure", arguments, write)
        return RecordDisclosurePayload(
            enterprise_uscc=uscc,
            client_mutation_id=cmid,
            replayed=replayed,
            disclosure=AccessRecord.from_document(result["record"]),
        )


async def _correction(context: Context, correction_id: ObjectId) -> CorrectionRequest | None:
    try:
        doc = await writes.correction(context.sources, correction_id)
    except PyMongoError:
        raise _source_failure(context, Source.REGISTRY) from None
    return CorrectionRequest.from_document(doc) if doc is not None else None


async def _reopen(sources: Any, correction_id: ObjectId) -> None:
    """An accepted correction that could not be applied is open again."""
    try:
        await sources.gateway[writes.CORRECTIONS].update_one(
            {"_id": correction_id},
            {
                "$set": {"state": "OPEN"},
                "$unset": {"note": "", "resolved_at": "", "resolved_by": ""},
            },
        )
    except PyMongoError as exc:
        log.error("correction %s left accepted but not applied: %s", correction_id, exc)
