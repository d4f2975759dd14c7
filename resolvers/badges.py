"""Integrity badges: what a mobile app draws for many enterprises at once."""

from __future__ import annotations

import datetime as dt
from typing import Any, Self

import strawberry

from loaders.base import Document, load_together
from loaders.codes import UsccError, validate_uscc
from resolvers.context import Info
from resolvers.errors import bad_user_input, service_suspended
from resolvers.identity import is_verified
from resolvers.integrity import ServiceState, service_state, withheld_because
from resolvers.permissions import Tier, visible
from resolvers.prefetch import may_see, selections
from resolvers.scalars import USCC

__all__ = ["BadgeQuery", "IntegrityBadge"]

MAX_BADGES = 100

GRADE_LABELS = {
    "AAA": "信用极好",
    "AA": "信用优良",
    "A": "信用较好",
    "BBB": "信用一般",
    "BB": "信用欠佳",
    "B": "信用较差",
    "CCC": "信用很差",
    "CC": "信用极差",
    "C": "信用缺失",
}


@strawberry.type(description="The integrity badge of one enterprise.")
class IntegrityBadge:
    enterprise_uscc: strawberry.Private[str]
    level: strawberry.Private[Document | None]
    withheld: strawberry.Private[str | None]
    uscc: USCC = visible(Tier.PUBLIC, "Unified social credit code.")
    name: str = visible(Tier.PUBLIC, "Registered name.")
    verified: bool = visible(Tier.PUBLIC, "Whether the identity is currently verified.")
    service_state: ServiceState | None = visible(
        Tier.PUBLIC, "Integrity service state; null when none was ever set up."
    )
    updated_at: dt.datetime = visible(
        Tier.PUBLIC, "When anything on the badge last changed (registry, identity, level, service)."
    )

    @visible(
        Tier.MEMBER,
        "Integrity grade; null when not evaluated; withheld (SERVICE_SUSPENDED) while the "
        "service is suspended or terminated.",
    )
    def grade(self) -> str | None:
        if self.withheld is not None:
            raise service_suspended(self.withheld)
        return self.level["grade"] if self.level is not None else None

    @visible(Tier.MEMBER, "The grade in words, e.g. 信用极好 for AAA; withheld like the grade.")
    def grade_label(self) -> str | None:
        grade = self.grade()
        return GRADE_LABELS[grade] if grade is not None else None

    @classmethod
    def from_documents(
        cls,
        enterprise: Document,
        authentication: Document | None,
        level: Document | None,
        status: Document | None,
    ) -> Self:
        moments = [enterprise["updated_at"]]
        for doc, key in (
            (authentication, "verified_at"),
            (level, "evaluated_at"),
            (status, "since"),
        ):
            if doc is not None and doc.get(key) is not None:
                moments.append(doc[key])
        return cls(
            enterprise_uscc=enterprise["_id"],
            level=level,
            withheld=withheld_because(status),
            uscc=USCC(enterprise["_id"]),
            name=enterprise["name"],
            verified=is_verified(authentication),
            service_state=service_state(status["status"]) if status is not None else None,
            updated_at=max(moments),
        )


async def _badges(info: Info, usccs: list[str]) -> list[Any]:
    """All badges in one step: each loader is asked for every USCC at once (not one task
    per badge), everything read from Redis in one MGET; MongoDB is asked for the rest
    of a badge only when its enterprise exists (so probing for codes that exist
    nowhere leaves only short-lived misses in Redis). Documents no selected field is
    built from are not loaded. An invalid USCC, or a document its source could not
    give, is an error at its own index only."""
    valid: dict[int, str] = {}
    items: list[Any] = [None] * len(usccs)
    for index, raw in enumerate(usccs):
        try:
            valid[index] = validate_uscc(raw)
        except UsccError as exc:
            # graphql-core reports an exception in a list as that item's error.
            items[index] = bad_user_input(f"usccs[{index}]: {exc}")
    loaders = info.context.loaders
    usccs = list(dict.fromkeys(valid.values()))
    # Only the documents the selected fields are built from (a grade the viewer may
    # not see needs no level: its field is denied before it is built).
    raw_info = info._raw_info
    selected = selections((node.selection_set for node in raw_info.field_nodes), raw_info.fragments)
    dated = "updatedAt" in selected
    graded = any(
        name in selected and may_see(info, "IntegrityBadge", name)
        for name in ("grade", "gradeLabel")
    )
    wanted = (
        (loaders.authentication_by_uscc, dated or "verified" in selected),
        (loaders.integrity_level_by_uscc, dated or graded),
        (loaders.service_status_by_uscc, dated or graded or "serviceState" in selected),
    )
    enterprises, *loaded = await load_together(
        [(loader, usccs) for loader, needed in wanted if needed],
        guard=(loaders.enterprise_by_uscc, usccs),
    )
    found = iter(loaded)
    authentications, levels, statuses = (next(found) if needed else {} for _, needed in wanted)
    for index, uscc in valid.items():
        enterprise = enterprises[uscc]
        if not isinstance(enterprise, dict):
            items[index] = enterprise  # None (no such enterprise), or its error
            continue
        documents = (authentications.get(uscc), levels.get(uscc), statuses.get(uscc))
        for document in documents:
            if isinstance(document, BaseException):
                items[index] = document  # the error of a source that failed
                break
        else:
            items[index] = IntegrityBadge.from_documents(enterprise, *documents)
    return items


@strawberry.type
class BadgeQuery:
    @visible(
        Tier.PUBLIC,
        f"Badges for up to {MAX_BADGES} USCCs, in input order. An invalid USCC is a "
        "BAD_USER_INPUT error at its own index (the others are served); an unknown one "
        "is null.",
    )
    async def integrity_badges(self, info: Info, usccs: list[str]) -> list[IntegrityBadge | None]:
        if len(usccs) > MAX_BADGES:
            raise bad_user_input(f"at most {MAX_BADGES} USCCs per call, got {len(usccs)}")
        return await _badges(info, usccs)
