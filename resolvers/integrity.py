"""Integrity level and service status. A suspended or terminated service withholds the level."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
from typing import TYPE_CHECKING, Self

import strawberry

from loaders.base import MISSING, Document
from resolvers.context import Info
from resolvers.errors import service_suspended
from resolvers.permissions import Tier, visible
from resolvers.scalars import USCC, by_value

__all__ = ["IntegrityFields", "ServiceState"]


@strawberry.enum(description="Whether the enterprise's integrity service is running.")
class ServiceState(enum.Enum):
    ACTIVE = "ACTIVE"
    SUSPENDED = strawberry.enum_value("SUSPENDED", description="Display suspended for now.")
    TERMINATED = strawberry.enum_value("TERMINATED", description="Service ended.")


service_state = by_value(ServiceState)
_ACTIVE = ServiceState.ACTIVE.value


@strawberry.type(description="The integrity service of an enterprise.")
class ServiceStatus:
    enterprise_uscc: strawberry.Private[str]
    state: ServiceState = visible(Tier.PUBLIC, "Active, suspended or terminated.")
    since: dt.datetime = visible(Tier.PUBLIC, "When the service entered this state.")
    reason: str | None = visible(Tier.OWNER, "Why it is suspended or terminated.")

    @classmethod
    def from_document(cls, uscc: str, doc: Document) -> Self:
        return cls(
            enterprise_uscc=uscc,
            state=service_state(doc["status"]),
            since=doc["since"],
            reason=doc["reason"],
        )


@strawberry.type(description="Integrity evaluation (诚信等级) of an enterprise.")
class IntegrityLevel:
    grade: str = visible(Tier.MEMBER, "Grade: AAA, AA, A, BBB, BB, B, CCC, CC or C.")
    score: int = visible(Tier.MEMBER, "Evaluation score, 0 to 1000.")
    evaluated_at: dt.datetime = visible(Tier.MEMBER, "When it was evaluated.")
    valid_until: dt.datetime = visible(Tier.MEMBER, "Until when the evaluation holds.")

    @classmethod
    def from_document(cls, doc: Document) -> Self:
        return cls(
            grade=doc["grade"],
            score=doc["score"],
            evaluated_at=doc["evaluated_at"],
            valid_until=doc["valid_until"],
        )


@strawberry.type
class IntegrityFields:
    """Enterprise fields of the integrity domain."""

    if TYPE_CHECKING:
        uscc: USCC

    @visible(Tier.PUBLIC, "The integrity service; null when none was ever set up.")
    def service_status(self, info: Info) -> ServiceStatus | None:
        found: ServiceStatus | None = info.context.loaders.service_status_by_uscc.then(
            self.uscc,
            lambda doc: ServiceStatus.from_document(self.uscc, doc) if doc is not None else None,
        )
        return found

    @visible(
        Tier.MEMBER,
        "Integrity level; null when not evaluated. Withheld (null and a SERVICE_SUSPENDED "
        "error) while the service is suspended or terminated.",
    )
    def integrity_level(self, info: Info) -> IntegrityLevel | None:
        loaders = info.context.loaders
        status = loaders.service_status_by_uscc.peek(self.uscc)
        level = loaders.integrity_level_by_uscc.peek(self.uscc)
        if status is MISSING or level is MISSING:
            return self._integrity_level(info)  # type: ignore[return-value]  # awaited
        return _level(status, level)

    async def _integrity_level(self, info: Info) -> IntegrityLevel | None:
        loaders = info.context.loaders
        status, level = await asyncio.gather(
            loaders.service_status_by_uscc.load(self.uscc),
            loaders.integrity_level_by_uscc.load(self.uscc),
        )
        return _level(status, level)


def _level(status: Document | None, level: Document | None) -> IntegrityLevel | None:
    """The level to show, or the withholding error while the service is not active."""
    withheld = withheld_because(status)
    if withheld is not None:
        raise service_suspended(withheld)
    return IntegrityLevel.from_document(level) if level is not None else None


def withheld_because(status: Document | None) -> str | None:
    """Why integrity data must not be shown, or None when it may be."""
    if status is None or status["status"] == _ACTIVE:
        return None
    return f"Integrity level withheld: the enterprise's service is {status['status'].lower()}."
