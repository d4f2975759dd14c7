"""The public archive: identity and registry data of an enterprise (DESIGN §1, PUBLIC rows)."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Self

import strawberry
from strawberry import relay

from loaders.base import Document, exact_decimal
from loaders.codes import EntityKind, UsccError, entity_kind, validate_uscc
from loaders.regions import division
from resolvers.context import Info
from resolvers.errors import bad_user_input
from resolvers.identity import IdentityFields
from resolvers.integrity import IntegrityFields
from resolvers.notices import NoticeFields
from resolvers.pagination import DEFAULT_PAGE_SIZE, PAGE_SIZE_RULE, CountedListConnection
from resolvers.permissions import Tier, visible
from resolvers.platforms import PlatformFields
from resolvers.prefetch import prefetch_enterprises, selections
from resolvers.scalars import USCC, by_value
from resolvers.trail import AccessLogFields

__all__ = ["ArchiveQuery", "Enterprise"]

strawberry.enum(
    EntityKind,
    name="EntityKind",
    description="Kind of registered subject, from USCC positions 1-2.",
)


@strawberry.enum(description="Registration status in the business registry.")
class BusinessStatus(enum.Enum):
    IN_BUSINESS = strawberry.enum_value("IN_BUSINESS", description="存续（在营、开业、在册）")
    REVOKED = strawberry.enum_value("REVOKED", description="吊销：business licence revoked")
    CANCELLED = strawberry.enum_value("CANCELLED", description="注销：deregistered")
    MOVED_OUT = strawberry.enum_value("MOVED_OUT", description="迁出：moved to another registry")
    LIQUIDATING = strawberry.enum_value("LIQUIDATING", description="清算中：in liquidation")


_business_status = by_value(BusinessStatus)


@strawberry.enum(description="Whether a shareholder is a natural or a legal person.")
class ShareholderKind(enum.Enum):
    NATURAL_PERSON = "NATURAL_PERSON"
    LEGAL_PERSON = "LEGAL_PERSON"


_shareholder_kind = by_value(ShareholderKind)


def _date(value: dt.datetime | None) -> dt.date | None:
    """The registry keeps calendar dates as midnight-UTC BSON dates."""
    return value.date() if value is not None else None


@strawberry.type(description="An amount of money, exact to the unit the registry records.")
class Money:
    amount: Decimal = visible(Tier.PUBLIC, "Exact decimal amount, as a string.")
    currency: str = visible(Tier.PUBLIC, "ISO 4217 currency code, e.g. CNY.")

    @classmethod
    def from_document(cls, doc: Document) -> Self:
        return cls(amount=exact_decimal(doc["amount"]), currency=doc["currency"])


@strawberry.type(description="Administrative division (GB/T 2260) of the registration authority.")
class Region:
    code: str = visible(Tier.PUBLIC, "Six-digit division code, USCC positions 3-8.")
    name: str = visible(Tier.PUBLIC, "Full name, province first, e.g. 浙江省杭州市西湖区.")
    province: str = visible(Tier.PUBLIC, "Province-level division name, e.g. 浙江省.")


@strawberry.type(description="The period the business licence allows operation in.")
class OperatingPeriod:
    start: dt.date = visible(Tier.PUBLIC, "First day of the operating period.")
    end: dt.date | None = visible(Tier.PUBLIC, "Last day; null when open-ended (长期).")


@strawberry.type(description="The legal representative (法定代表人 / 经营者).")
class LegalRepresentative:
    enterprise_uscc: strawberry.Private[str]
    name: str = visible(Tier.PUBLIC, "Name of the legal representative.")

    @visible(
        Tier.OWNER,
        "Resident ID number, masked 6+8+4 (330106********1234): division code and last "
        "four only. The full number never leaves the gateway.",
    )
    async def masked_id_number(self, info: Info) -> str | None:
        loader = info.context.loaders.legal_representative_by_uscc
        doc = await loader.load(self.enterprise_uscc)
        return doc["masked_id_number"] if doc is not None else None


@strawberry.type(description="A shareholder (or cooperative member) and its subscription.")
class Shareholder:
    name: str = visible(Tier.PUBLIC, "Shareholder name: a person's or a legal person's.")
    kind: ShareholderKind = visible(Tier.PUBLIC, "Natural person or legal person.")
    subscribed_capital: Money = visible(Tier.PUBLIC, "Capital subscribed by this shareholder.")
    ratio_percent: Decimal = visible(
        Tier.PUBLIC, "Share of the registered capital, in percent with two decimals."
    )

    @classmethod
    def from_document(cls, doc: Document) -> Self:
        return cls(
            name=doc["name"],
            kind=_shareholder_kind(doc["kind"]),
            subscribed_capital=Money.from_document(doc["subscribed_capital"]),
            ratio_percent=exact_decimal(doc["ratio_percent"]),
        )


@strawberry.type(description="A page of shareholders.")
class ShareholderConnection(CountedListConnection[Shareholder]):  # type: ignore[type-var]
    pass


@strawberry.type(description="One change to the registered particulars (变更记录).")
class ChangeRecord(relay.Node):
    node_key: relay.NodeID[str]
    enterprise_uscc: strawberry.Private[str]
    date: dt.date = visible(Tier.PUBLIC, "Date the change was registered.")
    item: str = visible(Tier.PUBLIC, "What changed, e.g. 注册资本变更.")
    before: str = visible(Tier.PUBLIC, "The particular before the change.")
    after: str = visible(Tier.PUBLIC, "The particular after the change.")

    @classmethod
    def from_document(cls, doc: Document) -> Self:
        return cls(
            node_key=doc["_id"],
            enterprise_uscc=doc["uscc"],
            date=doc["date"].date(),
            item=doc["item"],
            before=doc["before"],
            after=doc["after"],
        )


@strawberry.type(description="A page of change records, newest first.")
class ChangeRecordConnection(CountedListConnection[ChangeRecord]):
    pass


@strawberry.type
class RegistryFields:
    """Enterprise fields of the registry: identity and the public archive."""

    node_key: relay.NodeID[str]

    uscc: USCC = visible(Tier.PUBLIC, "Unified social credit code.")
    name: str = visible(Tier.PUBLIC, "Registered name.")
    #: The registry document: the rest of the archive is read off it when a field asks
    #: (a search page of fifty enterprises mostly asks for their names).
    document: strawberry.Private[Document]

    @visible(Tier.PUBLIC, "Kind of subject, from the USCC.")
    def kind(self) -> EntityKind:
        return entity_kind(self.uscc)

    @visible(Tier.PUBLIC, "Division of the registration authority, from the USCC.")
    def region(self) -> Region:
        region = division(self.document["division"])
        return Region(code=region.code, name=region.name, province=region.province)

    @visible(Tier.PUBLIC, "Registration status.")
    def status(self) -> BusinessStatus:
        return _business_status(self.document["status"])

    @visible(Tier.PUBLIC, "Operating period of the licence.")
    def operating_period(self) -> OperatingPeriod:
        doc = self.document
        return OperatingPeriod(start=doc["operating_from"].date(), end=_date(doc["operating_to"]))

    @visible(Tier.PUBLIC, "Registered address (住所).")
    def registered_address(self) -> str:
        address: str = self.document["address"]
        return address

    @visible(Tier.PUBLIC, "Date of establishment.")
    def established_on(self) -> dt.date:
        established: dt.datetime = self.document["established_on"]
        return established.date()

    @visible(Tier.PUBLIC, "Business scope (经营范围).")
    def business_scope(self) -> str:
        scope: str = self.document["business_scope"]
        return scope

    @visible(Tier.PUBLIC, "Registration authority (登记机关).")
    def registration_authority(self) -> str:
        authority: str = self.document["authority"]
        return authority

    @visible(Tier.PUBLIC, "The legal representative (法定代表人 / 经营者).")
    def legal_representative(self) -> LegalRepresentative:
        return LegalRepresentative(
            enterprise_uscc=self.uscc, name=self.document["legal_representative_name"]
        )

    @visible(Tier.PUBLIC, "When the registry last updated this archive.")
    def updated_at(self) -> dt.datetime:
        updated: dt.datetime = self.document["updated_at"]
        return updated

    @visible(Tier.PUBLIC, "Registered capital.")
    def registered_capital(self) -> Money:
        return Money.from_document(self.document["registered_capital"])

    @visible(
        Tier.PUBLIC,
        f"Shareholders or cooperative members, largest first as registered; none for an "
        f"individual business. {PAGE_SIZE_RULE}.",
    )
    def shareholders(
        self, info: Info, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> ShareholderConnection:
        shareholders = [Shareholder.from_document(doc) for doc in self.document["shareholders"]]
        return ShareholderConnection.of(shareholders, info=info, first=first, after=after)

    @visible(
        Tier.PUBLIC,
        f"Change records, newest first. {PAGE_SIZE_RULE}.",
    )
    def change_records(
        self, info: Info, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> ChangeRecordConnection:
        page: ChangeRecordConnection = ChangeRecordConnection.from_loader(
            info.context.loaders.change_records_by_uscc,
            self.uscc,
            lambda docs: [ChangeRecord.from_document(doc) for doc in docs],
            info=info,
            first=first,
            after=after,
        )
        return page

    @classmethod
    def from_document(cls, doc: Document) -> Self:
        uscc = doc["_id"]
        return cls(node_key=uscc, uscc=USCC(uscc), name=doc["name"], document=doc)


@strawberry.federation.type(keys=["uscc"], description="An enterprise's integrity archive.")
class Enterprise(
    RegistryFields,
    IdentityFields,
    IntegrityFields,
    PlatformFields,
    NoticeFields,
    AccessLogFields,
    relay.Node,
):
    @classmethod
    async def resolve_reference(cls, info: Info, uscc: str) -> Enterprise | None:
        """An enterprise a supergraph's router asks for by its key (``_entities``):
        loaded like ``enterprise(uscc:)``, each field then under its own tier."""
        try:
            code = validate_uscc(uscc)
        except UsccError as exc:
            raise bad_user_input(str(exc)) from None
        doc = await info.context.loaders.enterprise_by_uscc.load(code)
        return None if doc is None else cls.from_document(doc)


@strawberry.type
class ArchiveQuery:
    @visible(
        Tier.PUBLIC,
        "One enterprise's archive by USCC; null when no enterprise has that code. "
        "An invalid code is a BAD_USER_INPUT error and is never looked up.",
    )
    async def enterprise(self, info: Info, uscc: USCC) -> Enterprise | None:
        raw = info._raw_info
        selected = selections((node.selection_set for node in raw.field_nodes), raw.fragments)
        # The enterprise and what its selection needs, read from Redis in one MGET.
        await prefetch_enterprises(info, [uscc], selected, guarded=True)
        doc = await info.context.loaders.enterprise_by_uscc.load(uscc)  # loaded already
        if doc is None:
            return None
        return Enterprise.from_document(doc)
