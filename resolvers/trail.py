"""The audit trail in the graph: an enterprise's ``accessLog`` (OWNER tier).

Who read its sensitive fields, verified its representative's ID number, or had its
data disclosed to an authority: newest first, read straight from the trail (never
cached). The enterprise sees the kind of viewer, a service client's id and the
platform, never another person's identity; a disclosure whose notice the law defers
appears to it when the deferral ends. Operators see everything and filter it.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from typing import TYPE_CHECKING, Any, Self

import strawberry
from graphql import GraphQLObjectType, GraphQLSchema
from strawberry.relay import PageInfo

from gateway.viewer import Operator
from loaders.audit import access_log_page
from loaders.base import Document
from resolvers.context import Info
from resolvers.errors import bad_user_input
from resolvers.notices import _page_info, _read, decode_cursor, encode_cursor
from resolvers.pagination import DEFAULT_PAGE_SIZE, PAGE_SIZE_RULE, check_first
from resolvers.permissions import Tier, visible
from resolvers.scalars import USCC

__all__ = ["AccessKind", "AccessLogFields", "AccessRecord", "check_coordinates"]

_COORDINATE = re.compile(r"[A-Z][A-Za-z0-9]*\.[a-z][A-Za-z0-9]*")
_CLIENT_ID_MAX = 200


@strawberry.enum(description="What an access record tells of.")
class AccessKind(enum.Enum):
    READ = strawberry.enum_value("READ", description="Sensitive fields were read.")
    VERIFICATION = strawberry.enum_value(
        "VERIFICATION", description="A name and ID number were checked against the record."
    )
    DISCLOSURE = strawberry.enum_value(
        "DISCLOSURE", description="Data was disclosed to an authority (clause 1.11)."
    )


_ACTIONS = {
    "read": AccessKind.READ,
    "verify_legal_representative": AccessKind.VERIFICATION,
    "disclosure": AccessKind.DISCLOSURE,
}


@strawberry.enum(description="Who a viewer is, as the trail records it.")
class ViewerKind(enum.Enum):
    MEMBER = strawberry.enum_value("member", description="A logged-in platform user.")
    OWNER = strawberry.enum_value("owner", description="Someone acting for the enterprise.")
    SERVICE = strawberry.enum_value("service", description="A platform back end or partner.")
    OPERATOR = strawberry.enum_value("operator", description="Internal staff.")


@strawberry.input(description="Narrows an accessLog.")
class AccessLogFilter:
    kind: AccessKind | None = strawberry.field(default=None, description="Only this kind.")
    viewer_kind: ViewerKind | None = strawberry.field(
        default=None, description="Only reads by this kind of viewer."
    )
    client_id: str | None = strawberry.field(
        default=None, description="Only this service client's (its token's subject)."
    )
    field: str | None = strawberry.field(
        default=None, description="Only records naming this field, as Type.field."
    )


def _trail(description: str) -> Any:
    """An OWNER-tier field of the trail itself, not audited (see ``Rule.audited``)."""
    return visible(Tier.OWNER, description, audited=False)


@strawberry.type(description="One entry of an enterprise's audit trail.")
class AccessRecord:
    enterprise_uscc: strawberry.Private[str]
    id: strawberry.ID = _trail("The record's id.")
    at: dt.datetime = _trail("When.")
    kind: AccessKind = _trail("A read, a verification or a disclosure.")
    viewer_kind: str = _trail(
        "Who: member, owner, service or operator (a disclosure: the operator)."
    )
    client_id: str | None = _trail("The service client, for a service client; null for a person.")
    platform: str | None = _trail("The viewer's platform, if its token names one.")
    fields: list[str] = _trail("The fields, as Type.field.")
    purpose: list[str] = _trail(
        "Why it was allowed: the scopes used, `operator`, or a disclosure's legal basis.",
    )
    outcome: str | None = _trail("A verification's answer: MATCH, MISMATCH or NOT_FOUND.")
    authority: str | None = _trail("A disclosure's recipient.")
    legal_basis: str | None = _trail("The law a disclosure was made under.")
    reference_number: str | None = _trail("The authority's reference.")
    notice_deferred_until: dt.datetime | None = _trail(
        "Until when the law deferred telling the enterprise of a disclosure."
    )

    @classmethod
    def from_document(cls, doc: Document) -> Self:
        viewer = doc["viewer"]
        return cls(
            enterprise_uscc=doc["enterprise"],
            id=strawberry.ID(str(doc["_id"])),
            at=doc["at"],
            kind=_ACTIONS[doc["action"]],
            viewer_kind=viewer["kind"],
            # A service client is an application: its id is shown. A person is not.
            client_id=viewer["subject"] if viewer["kind"] == "service" else None,
            platform=viewer.get("platform"),
            fields=list(doc.get("fields", [])),
            purpose=list(doc.get("purpose", [])),
            outcome=doc.get("outcome"),
            authority=doc.get("authority"),
            legal_basis=doc.get("legal_basis"),
            reference_number=doc.get("reference"),
            notice_deferred_until=doc.get("notice_deferred_until"),
        )


@strawberry.type(description="An access record in a page of them.")
class AccessRecordEdge:
    cursor: str = visible(Tier.PUBLIC, "Where this record is in the trail.")
    node: AccessRecord = visible(Tier.PUBLIC, "The record.")


@strawberry.type(description="A page of an enterprise's audit trail, newest first.")
class AccessRecordConnection:
    edges: list[AccessRecordEdge] = visible(Tier.PUBLIC, "The page.")
    page_info: PageInfo = visible(Tier.PUBLIC, "Whether more follow, and where.")


def check_coordinates(schema: GraphQLSchema, argument: str, names: list[str]) -> list[str]:
    """Each name a field of this schema, as Type.field; BAD_USER_INPUT otherwise."""
    for name in names:
        type_name, _, field_name = name.partition(".")
        found = schema.get_type(type_name) if _COORDINATE.fullmatch(name) else None
        if not isinstance(found, GraphQLObjectType) or field_name not in found.fields:
            raise bad_user_input(
                f"{argument}: {name[:100]!r} is not a field of this API (Type.field)",
                argument=argument,
            )
    return names


@strawberry.type
class AccessLogFields:
    """The enterprise's audit trail, on Enterprise."""

    if TYPE_CHECKING:
        uscc: USCC

    @visible(
        Tier.OWNER,
        audited=False,
        description="Who read the enterprise's sensitive fields, verified its representative's ID "
        "number, or received its data by lawful disclosure, newest first (kept "
        f"AUDIT_RETENTION_DAYS). Operators read any enterprise's and filter it. {PAGE_SIZE_RULE}.",
    )
    async def access_log(
        self,
        info: Info,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
        filter: AccessLogFilter | None = None,
    ) -> AccessRecordConnection | None:
        context = info.context
        check_first(context.viewer, first)
        before = decode_cursor(after)
        wanted = filter or AccessLogFilter()
        if wanted.field is not None:
            check_coordinates(info._raw_info.schema, "filter.field", [wanted.field])
        if wanted.client_id is not None and not 0 < len(wanted.client_id) <= _CLIENT_ID_MAX:
            raise bad_user_input(f"filter.clientId must be 1 to {_CLIENT_ID_MAX} characters")
        action = next((name for name, kind in _ACTIONS.items() if kind is wanted.kind), None)
        docs, more = await _read(
            context,
            lambda: access_log_page(
                context.sources,
                self.uscc,
                first=first,
                before=before,
                include_deferred=isinstance(context.viewer, Operator),
                action=action,
                viewer_kind=wanted.viewer_kind.name.lower() if wanted.viewer_kind else None,
                client_id=wanted.client_id,
                field=wanted.field,
            ),
        )
        edges = [
            AccessRecordEdge(cursor=encode_cursor(doc["_id"]), node=AccessRecord.from_document(doc))
            for doc in docs
        ]
        return AccessRecordConnection(
            edges=edges, page_info=_page_info([edge.cursor for edge in edges], more, after)
        )
