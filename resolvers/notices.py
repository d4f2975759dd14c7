"""An enterprise's notifications and correction requests (OWNER tier, DESIGN §1, §6),
and the subscription that pushes its notifications live.

Both are read straight from the gateway's own database, newest first, never cached:
they change with every write and only their enterprise (and operators) read them.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import enum
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Self, TypeVar

import strawberry
from bson import ObjectId
from bson.errors import InvalidId
from graphql import GraphQLError
from pymongo.errors import PyMongoError
from strawberry.relay import PageInfo

from gateway.settings import Source
from gateway.sources import admitted
from gateway.viewer import Anonymous
from loaders import writes
from loaders.base import Document, source_error, source_timeout
from resolvers.context import Info
from resolvers.errors import bad_user_input
from resolvers.pagination import DEFAULT_PAGE_SIZE, PAGE_SIZE_RULE, check_first
from resolvers.permissions import Decision, Rule, Tier, decide, visible
from resolvers.scalars import USCC, by_value

__all__ = [
    "CorrectionRequest",
    "CorrectionState",
    "NoticeFields",
    "Notification",
    "NotificationKind",
    "NotificationSubscription",
    "correction_field",
    "decode_cursor",
    "encode_cursor",
]


CORRECTIONS_REQUEST = "corrections:request"
CORRECTIONS_RESOLVE = "corrections:resolve"
#: The service clients that write corrections read what they wrote.
CORRECTION_SCOPES = [CORRECTIONS_REQUEST, CORRECTIONS_RESOLVE]


@strawberry.enum(description="What a notification is about (service agreement clause 1.10).")
class NotificationKind(enum.Enum):
    SERVICE = strawberry.enum_value("SERVICE", description="A service notice.")
    AUTHENTICATION = strawberry.enum_value(
        "AUTHENTICATION", description="The identity authentication changed."
    )
    SECURITY = strawberry.enum_value("SECURITY", description="Something to check for safety.")
    CORRECTION = strawberry.enum_value(
        "CORRECTION", description="A correction request was received or answered."
    )
    STATUS = strawberry.enum_value(
        "STATUS", description="The integrity service was suspended, terminated or reinstated."
    )
    DISCLOSURE = strawberry.enum_value(
        "DISCLOSURE",
        description="Data was disclosed to an authority as the law requires (clause 1.11).",
    )


@strawberry.enum(description="Where a correction request stands.")
class CorrectionState(enum.Enum):
    OPEN = strawberry.enum_value("OPEN", description="Waiting for an operator.")
    ACCEPTED = strawberry.enum_value("ACCEPTED", description="Accepted: the archive shows it.")
    REJECTED = strawberry.enum_value("REJECTED", description="Rejected; the note says why.")


_notification_kind = by_value(NotificationKind)
_correction_state = by_value(CorrectionState)


@strawberry.type(description="A notification to the enterprise.")
class Notification:
    enterprise_uscc: strawberry.Private[str]
    id: strawberry.ID = visible(Tier.OWNER, "The notification's id.")
    kind: NotificationKind = visible(Tier.OWNER, "What it is about.")
    title: str = visible(Tier.OWNER, "One line.")
    body: str = visible(Tier.OWNER, "The whole notice.")
    at: dt.datetime = visible(Tier.OWNER, "When it was sent.")
    read: bool = visible(Tier.OWNER, "Whether the enterprise has marked it read.")

    @classmethod
    def from_document(cls, doc: Document) -> Self:
        return cls(
            enterprise_uscc=doc["uscc"],
            id=strawberry.ID(str(doc["_id"])),
            kind=_notification_kind(doc["kind"]),
            title=doc["title"],
            body=doc["body"],
            at=doc["at"],
            read=doc["read"],
        )


@strawberry.type(description="A notification in a page of them.")
class NotificationEdge:
    cursor: str = visible(Tier.PUBLIC, "Where this notification is in the list.")
    node: Notification = visible(Tier.PUBLIC, "The notification.")


@strawberry.type(description="A page of notifications, newest first.")
class NotificationConnection:
    edges: list[NotificationEdge] = visible(Tier.PUBLIC, "The page.")
    page_info: PageInfo = visible(Tier.PUBLIC, "Whether more follow, and where.")
    unread_count: int = visible(Tier.PUBLIC, "Unread notifications, across all pages.")


def correction_field(description: str) -> Any:
    return visible(Tier.OWNER, description, scopes=CORRECTION_SCOPES)


@strawberry.type(description="A request to correct a presentation error in the archive.")
class CorrectionRequest:
    enterprise_uscc: strawberry.Private[str]
    id: strawberry.ID = correction_field("The request's id.")
    field: str = visible(
        Tier.OWNER, "The archive field, by its GraphQL name.", scopes=CORRECTION_SCOPES
    )
    proposed_value: str = visible(
        Tier.OWNER, "What the enterprise says it should show.", scopes=CORRECTION_SCOPES
    )
    previous_value: str = visible(
        Tier.OWNER, "What it showed when the request was made.", scopes=CORRECTION_SCOPES
    )
    explanation: str = visible(
        Tier.OWNER, "Why, in the enterprise's words.", scopes=CORRECTION_SCOPES
    )
    state: CorrectionState = visible(
        Tier.OWNER, "Open, accepted or rejected.", scopes=CORRECTION_SCOPES
    )
    requested_at: dt.datetime = correction_field("When it was made.")
    resolved_at: dt.datetime | None = visible(
        Tier.OWNER, "When it was answered; null if open.", scopes=CORRECTION_SCOPES
    )
    note: str | None = visible(
        Tier.OWNER, "The operator's answer; null while open.", scopes=CORRECTION_SCOPES
    )

    @classmethod
    def from_document(cls, doc: Document) -> Self:
        return cls(
            enterprise_uscc=doc["uscc"],
            id=strawberry.ID(str(doc["_id"])),
            field=doc["field"],
            proposed_value=doc["proposed_value"],
            previous_value=doc["previous_value"],
            explanation=doc["explanation"],
            state=_correction_state(doc["state"]),
            requested_at=doc["requested_at"],
            resolved_at=doc.get("resolved_at"),
            note=doc.get("note"),
        )


@strawberry.type(description="A correction request in a page of them.")
class CorrectionRequestEdge:
    cursor: str = visible(Tier.PUBLIC, "Where this request is in the list.")
    node: CorrectionRequest = visible(Tier.PUBLIC, "The request.")


@strawberry.type(description="A page of correction requests, newest first.")
class CorrectionRequestConnection:
    edges: list[CorrectionRequestEdge] = visible(Tier.PUBLIC, "The page.")
    page_info: PageInfo = visible(Tier.PUBLIC, "Whether more follow, and where.")


_CURSOR_PREFIX = "after:"
_T = TypeVar("_T")


def encode_cursor(object_id: ObjectId) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{object_id}".encode()).decode()


def decode_cursor(cursor: str | None) -> ObjectId | None:
    """The id a cursor stands for; BAD_USER_INPUT for anything else."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError(text)
        return ObjectId(text.removeprefix(_CURSOR_PREFIX))
    except (ValueError, InvalidId, UnicodeDecodeError):
        raise bad_user_input("after is not a cursor returned by this connection") from None


async def _read(context: Any, read: Callable[[], Awaitable[_T]]) -> _T:
    """``read()``, a read of the gateway's own database, once the request's charge
    admits it, bounded by the request's deadline; failed, it is the registry's cluster
    that failed."""
    await admitted()
    try:
        with source_timeout(context.sources, context.loaders.deadline):
            return await read()
    except PyMongoError:
        raise source_error(Source.REGISTRY, context.loaders.deadline) from None


def _page_info(cursors: list[str], more: bool, after: str | None) -> PageInfo:
    return PageInfo(
        has_next_page=more,
        has_previous_page=after is not None,
        start_cursor=cursors[0] if cursors else None,
        end_cursor=cursors[-1] if cursors else None,
    )


@strawberry.type
class NoticeFields:
    """Enterprise fields of the write side: what only the enterprise (and operators) read."""

    if TYPE_CHECKING:
        uscc: USCC

    @property
    def enterprise_uscc(self) -> str:
        """Whose fields these are, for the OWNER rule (resolvers/permissions.py)."""
        return self.uscc

    @visible(
        Tier.OWNER,
        f"The enterprise's notifications, newest first, with the unread count. {PAGE_SIZE_RULE}.",
    )
    async def notifications(
        self,
        info: Info,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        unread_only: bool = False,
    ) -> NotificationConnection | None:
        context = info.context
        check_first(context.viewer, first)
        before = decode_cursor(after)
        (docs, more), unread = await _read(
            context,
            lambda: asyncio.gather(
                writes.notifications_page(
                    context.sources, self.uscc, first=first, before=before, unread_only=unread_only
                ),
                writes.unread_count(context.sources, self.uscc),
            ),
        )
        edges = [
            NotificationEdge(cursor=encode_cursor(doc["_id"]), node=Notification.from_document(doc))
            for doc in docs
        ]
        return NotificationConnection(
            edges=edges,
            page_info=_page_info([edge.cursor for edge in edges], more, after),
            unread_count=unread,
        )

    @visible(
        Tier.OWNER,
        f"The enterprise's requests to correct its archive, newest first; also for "
        f"service clients with scope corrections:request or corrections:resolve. "
        f"{PAGE_SIZE_RULE}.",
        scopes=CORRECTION_SCOPES,
    )
    async def correction_requests(
        self, info: Info, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> CorrectionRequestConnection | None:
        context = info.context
        check_first(context.viewer, first)
        before = decode_cursor(after)
        docs, more = await _read(
            context,
            lambda: writes.corrections_of(context.sources, self.uscc, first=first, before=before),
        )
        edges = [
            CorrectionRequestEdge(
                cursor=encode_cursor(doc["_id"]), node=CorrectionRequest.from_document(doc)
            )
            for doc in docs
        ]
        return CorrectionRequestConnection(
            edges=edges, page_info=_page_info([edge.cursor for edge in edges], more, after)
        )


_LIVE_RULE = Rule(Tier.OWNER)


def check_owner(context: Any, uscc: str, field_name: str) -> None:
    """The OWNER rule, for resolvers that check it themselves (a subscription's source)."""
    decision = decide(_LIVE_RULE, context.viewer, uscc)
    if decision in (Decision.UNAUTHENTICATED, Decision.FORBIDDEN):
        words = (
            f"Log in to see {field_name} (tier OWNER)."
            if isinstance(context.viewer, Anonymous)
            else f"{field_name} needs tier OWNER."
        )
        raise GraphQLError(words, extensions={"code": decision.value})


@strawberry.type(name="Subscription", description="Live events, over graphql-transport-ws.")
class NotificationSubscription:
    @visible(
        Tier.OWNER,
        "The enterprise's notifications as they are sent (graphql-transport-ws, the bearer "
        "token in connection_init's payload as `Authorization`). Only the enterprise "
        "itself and operators may follow it.",
        is_subscription=True,
        enforced_by_resolver=True,
    )
    async def notification_added(
        self, info: Info, uscc: USCC
    ) -> AsyncGenerator[Notification | None, None]:
        context = info.context
        check_owner(context, uscc, "notificationAdded")
        hub = context.notifications
        if hub is None:
            raise GraphQLError(
                "Live notifications are not available here.",
                extensions={"code": "SUBSCRIPTIONS_UNAVAILABLE"},
            )
        async with hub.listen(writes.notification_channel(uscc)) as received:
            while True:
                notification_id = await received.get()
                try:
                    doc = await writes.notification(context.sources, ObjectId(notification_id))
                except (PyMongoError, InvalidId):
                    continue
                if doc is not None and doc["uscc"] == uscc:
                    yield Notification.from_document(doc)
