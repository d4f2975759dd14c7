"""Custom scalars. Input is validated here, at coercion, before any resolver runs."""

from __future__ import annotations

from typing import NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

from loaders.codes import UsccError, validate_uscc
from resolvers.errors import bad_user_input

__all__ = ["SCALAR_MAP", "USCC"]

USCC = NewType("USCC", str)


def _parse_uscc(value: object) -> str:
    if not isinstance(value, str):
        raise bad_user_input("USCC must be a string of 18 characters")
    try:
        return validate_uscc(value)
    except UsccError as exc:
        raise bad_user_input(str(exc)) from None


SCALAR_MAP: dict[object, ScalarDefinition] = {
    USCC: strawberry.scalar(
        name="USCC",
        description=(
            "Unified social credit code (GB 32100-2015): 18 characters from "
            "0-9A-HJ-NPQRTUWXY, positions 3-8 digits, position 17 the GB 11714 check "
            "and position 18 the MOD 31 check. Input is trimmed and upper-cased; an "
            "invalid code is a BAD_USER_INPUT error naming the rule it breaks."
        ),
        specified_by_url="https://openstd.samr.gov.cn/bzgk/gb/newGbInfo?hcno=24691C25985C1073D3A7C85629378AC0",
        serialize=str,
        parse_value=_parse_uscc,
    ),
}
