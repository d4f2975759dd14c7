"""Custom scalars (input is validated here, at coercion, before any resolver runs), and
enum members read off stored values."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, NewType, TypeVar

import strawberry
from strawberry.types.scalar import ScalarDefinition

from loaders.codes import UsccError, validate_uscc
from resolvers.errors import bad_user_input

__all__ = ["SCALAR_MAP", "USCC", "by_value"]

USCC = NewType("USCC", str)
E = TypeVar("E", bound=enum.Enum)


def by_value(enum_class: type[E]) -> Callable[[Any], E]:
    """``enum_class(value)`` as a dictionary lookup: Python 3.11's ``Enum.__call__``
    runs two Python functions per call, and a stored status is read this way for
    every store, certification and state an answer holds. A value that is no
    member's raises the ``ValueError`` the class itself raises."""
    members = {member.value: member for member in enum_class}

    def member(value: Any) -> E:
        try:
            return members[value]
        except (KeyError, TypeError):  # TypeError: unhashable, never a member's value
            return enum_class(value)

    return member


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
