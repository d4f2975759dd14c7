"""The business integrity file on each platform: 1688, Taobao, Tmall, Alibaba.com."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Self

import strawberry
from strawberry import relay

from gateway.settings import Source
from loaders.base import MISSING, Document, exact_decimal
from loaders.platforms import PLATFORMS, PlatformLoaders
from resolvers.context import Info
from resolvers.pagination import DEFAULT_PAGE_SIZE, PAGE_SIZE_RULE, CountedListConnection
from resolvers.permissions import Tier, visible
from resolvers.scalars import USCC, by_value

__all__ = ["PlatformFields"]

RISK_READ = "risk:read"


def platform_key(source: Source, doc_id: str) -> str:
    """A platform record's node key: which platform, then its id there."""
    return f"{source.value}/{doc_id}"


def split_platform_key(key: str) -> tuple[Source, str] | None:
    source_name, _, doc_id = key.partition("/")
    try:
        source = Source(source_name)
    except ValueError:
        return None
    return (source, doc_id) if source in PLATFORMS and doc_id else None


@strawberry.enum(description="A trading platform.")
class Platform(enum.Enum):
    ALIBABA_1688 = strawberry.enum_value(Source.PLATFORM_1688, description="1688.com")
    TAOBAO = strawberry.enum_value(Source.PLATFORM_TAOBAO, description="Taobao")
    TMALL = strawberry.enum_value(Source.PLATFORM_TMALL, description="Tmall")
    ALIBABA_COM = strawberry.enum_value(
        Source.PLATFORM_ALIBABA_COM, description="Alibaba.com (International Station)"
    )


#: Each platform source's Platform (looked up once: an enum call by value is not cheap,
#: and a search page makes two hundred platform files).
_PLATFORM_OF: dict[Any, Platform] = {platform.value: platform for platform in Platform}


@strawberry.enum(description="Whether a store is trading.")
class StoreStatus(enum.Enum):
    OPEN = "OPEN"
    CLOSED = "CLOSED"
    SUSPENDED = "SUSPENDED"


@strawberry.enum(description="Kind of a risk record.")
class RiskKind(enum.Enum):
    DISPUTE = strawberry.enum_value("DISPUTE", description="Trade dispute (交易纠纷).")
    COMPLAINT = strawberry.enum_value("COMPLAINT", description="Complaint (投诉).")
    PUNISHMENT = strawberry.enum_value("PUNISHMENT", description="Platform punishment (处罚).")


@strawberry.enum(description="Outcome of an on-site certification.")
class CertificationResult(enum.Enum):
    PASSED = "PASSED"
    CONDITIONAL = "CONDITIONAL"
    FAILED = "FAILED"


_store_status = by_value(StoreStatus)
_certification_result = by_value(CertificationResult)
_risk_kind = by_value(RiskKind)


@strawberry.type(description="A store of the enterprise on a platform.")
class Store(relay.Node):
    node_key: relay.NodeID[str]
    enterprise_uscc: strawberry.Private[str]
    name: str = visible(Tier.MEMBER, "Store name.")
    address: str = visible(Tier.MEMBER, "Store address.")
    main_categories: list[str] = visible(Tier.MEMBER, "Main categories sold (主营类目).")
    status: StoreStatus = visible(Tier.MEMBER, "Whether the store is trading.")
    opened_on: dt.date = visible(Tier.MEMBER, "When the store opened.")

    @classmethod
    def from_document(cls, source: Source, doc: Document) -> Self:
        return cls(
            node_key=platform_key(source, doc["_id"]),
            enterprise_uscc=doc["uscc"],
            name=doc["name"],
            address=doc["address"],
            main_categories=doc["main_categories"],
            status=_store_status(doc["status"]),
            opened_on=doc["opened_on"].date(),
        )


@strawberry.type(description="A page of stores, newest first.")
class StoreConnection(CountedListConnection[Store]):
    pass


@strawberry.type(description="1688 Chengxintong (诚信通) membership figures.")
class Chengxintong:
    years_open: int = visible(Tier.MEMBER, "Years of membership.")
    cumulative_transactions: int = visible(Tier.MEMBER, "Transactions since joining.")
    buyer_count: int = visible(Tier.MEMBER, "Distinct buyers since joining.")
    repeat_purchase_rate_percent: Decimal = visible(
        Tier.MEMBER, "Share of buyers who bought again, percent with two decimals."
    )

    @classmethod
    def from_document(cls, doc: Document) -> Self:
        return cls(
            years_open=doc["years_open"],
            cumulative_transactions=doc["cumulative_transactions"],
            buyer_count=doc["buyer_count"],
            repeat_purchase_rate_percent=exact_decimal(doc["repeat_purchase_rate"]),
        )


@strawberry.type(description="An on-site certification (实地认证) by a third-party agency.")
class Certification(relay.Node):
    node_key: relay.NodeID[str]
    enterprise_uscc: strawberry.Private[str]
    agency: str = visible(Tier.MEMBER, "Certifying agency.")
    certified_on: dt.date = visible(Tier.MEMBER, "Date of the inspection.")
    valid_until: dt.date = visible(Tier.MEMBER, "Last day the certification holds.")
    result: CertificationResult = visible(Tier.MEMBER, "Outcome.")

    @classmethod
    def from_document(cls, source: Source, doc: Document) -> Self:
        return cls(
            node_key=platform_key(source, doc["_id"]),
            enterprise_uscc=doc["uscc"],
            agency=doc["agency"],
            certified_on=doc["certified_on"].date(),
            valid_until=doc["valid_until"].date(),
            result=_certification_result(doc["result"]),
        )


@strawberry.type(description="A page of on-site certifications, newest first.")
class CertificationConnection(CountedListConnection[Certification]):
    pass


@strawberry.type(description="A dispute, complaint or punishment, in detail.")
class RiskRecord(relay.Node):
    node_key: relay.NodeID[str]
    kind: RiskKind = visible(Tier.OWNER, "Dispute, complaint or punishment.", scopes=[RISK_READ])
    occurred_on: dt.date = visible(Tier.OWNER, "When it happened.", scopes=[RISK_READ])
    title: str = visible(Tier.OWNER, "What it was about.", scopes=[RISK_READ])
    outcome: str = visible(Tier.OWNER, "How it was handled.", scopes=[RISK_READ])
    resolved_on: dt.date | None = visible(
        Tier.OWNER, "When it was closed; null while open.", scopes=[RISK_READ]
    )
    enterprise_uscc: strawberry.Private[str]

    @classmethod
    def from_document(cls, source: Source, doc: Document) -> Self:
        resolved = doc["resolved_on"]
        return cls(
            node_key=platform_key(source, doc["_id"]),
            enterprise_uscc=doc["uscc"],
            kind=_risk_kind(doc["kind"]),
            occurred_on=doc["occurred_on"].date(),
            title=doc["title"],
            outcome=doc["outcome"],
            resolved_on=resolved.date() if resolved is not None else None,
        )


@strawberry.type(description="A page of risk records, newest first.")
class RiskRecordConnection(CountedListConnection[RiskRecord]):
    pass


@strawberry.type(description="The enterprise's business integrity file on one platform.")
class PlatformFile:
    enterprise_uscc: strawberry.Private[str]
    source: strawberry.Private[Source]
    #: The platform's statistics document, loaded with the file (None: not on the
    #: platform), or the error that kept it from loading.
    statistics: strawberry.Private[Document | BaseException | None]
    platform: Platform = visible(Tier.MEMBER, "The platform.")

    def _loaders(self, info: Info) -> PlatformLoaders:
        return info.context.loaders.platforms[self.source]

    def _count(self, name: str) -> int:
        if isinstance(self.statistics, BaseException):
            raise self.statistics  # this platform's source failed: only its fields are null
        return self.statistics[name] if self.statistics is not None else 0

    @visible(Tier.MEMBER, "Stores on this platform; 0 when the enterprise is not on it.")
    def store_count(self) -> int | None:
        return self._count("store_count")

    @visible(Tier.MEMBER, f"Stores, newest first. {PAGE_SIZE_RULE}.")
    def stores(
        self, info: Info, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> StoreConnection | None:
        page: StoreConnection = StoreConnection.from_loader(
            self._loaders(info).stores,
            self.enterprise_uscc,
            lambda docs: [Store.from_document(self.source, doc) for doc in docs],
            info=info,
            first=first,
            after=after,
        )
        return page

    @visible(Tier.MEMBER, "1688 Chengxintong figures; null elsewhere or when not a member.")
    def chengxintong(self, info: Info) -> Chengxintong | None:
        loader = self._loaders(info).chengxintong
        if loader is None:
            return None
        found: Chengxintong | None = loader.then(
            self.enterprise_uscc,
            lambda doc: Chengxintong.from_document(doc) if doc is not None else None,
        )
        return found

    @visible(
        Tier.MEMBER,
        "On-site certifications, newest first; null on platforms without them "
        f"(only 1688 and Alibaba.com certify). {PAGE_SIZE_RULE}.",
    )
    def certifications(
        self, info: Info, first: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> CertificationConnection | None:
        loader = self._loaders(info).certifications
        if loader is None:
            return None
        page: CertificationConnection = CertificationConnection.from_loader(
            loader,
            self.enterprise_uscc,
            lambda docs: [Certification.from_document(self.source, doc) for doc in docs],
            info=info,
            first=first,
            after=after,
        )
        return page

    @visible(Tier.MEMBER, "Trade disputes on record.")
    def dispute_count(self) -> int | None:
        return self._count("dispute_count")

    @visible(Tier.MEMBER, "Complaints on record.")
    def complaint_count(self) -> int | None:
        return self._count("complaint_count")

    @visible(Tier.MEMBER, "Punishments on record.")
    def punishment_count(self) -> int | None:
        return self._count("punishment_count")

    @visible(
        Tier.OWNER,
        f"Dispute, complaint and punishment records, newest first, optionally of one kind. "
        f"{PAGE_SIZE_RULE}.",
        scopes=[RISK_READ],
    )
    def risk_records(
        self,
        info: Info,
        kind: RiskKind | None = None,
        first: int = DEFAULT_PAGE_SIZE,
        after: str | None = None,
    ) -> RiskRecordConnection | None:
        def build(docs: list[Document]) -> list[RiskRecord]:
            records = [RiskRecord.from_document(self.source, doc) for doc in docs]
            return [r for r in records if kind is None or r.kind is kind]

        page: RiskRecordConnection = RiskRecordConnection.from_loader(
            self._loaders(info).risk_records,
            self.enterprise_uscc,
            build,
            info=info,
            first=first,
            after=after,
        )
        return page


@strawberry.type
class PlatformFields:
    """Enterprise fields of the platform domain."""

    if TYPE_CHECKING:
        uscc: USCC

    @visible(Tier.MEMBER, "The business integrity file on each of the four platforms.")
    def business_files(self, info: Info) -> list[PlatformFile] | None:
        # The counts of all four platforms in one step, rather than one await per field;
        # at once when a parent loaded them.
        loaders = info.context.loaders.platforms
        statistics: list[Any] = []
        for source in PLATFORMS:
            try:
                statistics.append(loaders[source].statistics.peek(self.uscc))
            except Exception as exc:  # that platform's source failed: its fields only
                statistics.append(exc)
        if any(stats is MISSING for stats in statistics):
            return self._business_files(info)  # type: ignore[return-value]  # awaited
        return self._files(statistics)

    async def _business_files(self, info: Info) -> list[PlatformFile]:
        loaders = info.context.loaders.platforms
        statistics = await asyncio.gather(
            *(loaders[source].statistics.load(self.uscc) for source in PLATFORMS),
            return_exceptions=True,
        )
        return self._files(list(statistics))

    def _files(self, statistics: list[Any]) -> list[PlatformFile]:
        return [
            PlatformFile(
                enterprise_uscc=self.uscc,
                source=source,
                statistics=stats,
                platform=_PLATFORM_OF[source],
            )
            for source, stats in zip(PLATFORMS, statistics, strict=True)
        ]
