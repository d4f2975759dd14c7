"""Visibility tiers, declared once per field, next to the field (DESIGN §1).

``visible(tier, description)`` is the only way a field is declared in this schema:
it records the tier as a ``@visibility`` directive, so schema.graphql shows every
frontend team who may see what.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import strawberry
from strawberry.schema_directive import Location

__all__ = ["Tier", "Visibility", "visible"]


@strawberry.enum(description="Who may see a field (DESIGN §1).")
class Tier(enum.Enum):
    PUBLIC = strawberry.enum_value("PUBLIC", description="Anyone, no login.")
    MEMBER = strawberry.enum_value("MEMBER", description="Any logged-in viewer.")
    OWNER = strawberry.enum_value(
        "OWNER", description="A viewer acting for this enterprise, and operators."
    )
    OPERATOR = strawberry.enum_value("OPERATOR", description="Internal staff only.")


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    description=(
        "Who may see this field: its tier, and the service-client scopes that also "
        "grant it. A viewer below the tier gets null and an UNAUTHENTICATED or "
        "FORBIDDEN error at the field's path."
    ),
)
class Visibility:
    tier: Tier
    scopes: list[str] | None = strawberry.UNSET


def visible(
    tier: Tier,
    description: str,
    *,
    scopes: Sequence[str] = (),
    **kwargs: Any,
) -> Any:
    """A Strawberry field (or resolver decorator) with its visibility declared."""
    return strawberry.field(
        description=description,
        directives=[Visibility(tier=tier, scopes=list(scopes) or strawberry.UNSET)],
        metadata={"tier": tier, "scopes": frozenset(scopes)},
        **kwargs,
    )
