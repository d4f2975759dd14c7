"""The registry's identifiers: USCC (GB 32100-2015), ID numbers (GB 11643-1999).

Pure functions: the gateway validates every code it is given with these before any
database call, and the seeder computes its check characters with the same ones.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools

from loaders.regions import PROVINCES

__all__ = [
    "EntityKind",
    "IdNumberError",
    "UsccError",
    "entity_kind",
    "id_number_check_char",
    "mask_id_number",
    "uscc_check_chars",
    "validate_id_number",
    "validate_uscc",
]

#: The 31 characters a USCC may use: digits and capitals except I, O, Z, S, V.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {char: value for value, char in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
#: GB 11714 organization-code weights for the eight body characters (positions 9-16).
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
#: GB/T 2260 province-level codes of the mainland, and 10 for subjects registered nationally
#: (SAMR). 71 (Taiwan), 81 (Hong Kong) and 82 (Macao) are outside the service (clause 1.12).
MAINLAND_PROVINCES = frozenset(PROVINCES) | {"10"}
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


class UsccError(ValueError):
    """A USCC that breaks a rule of GB 32100-2015; the message names the rule."""


class IdNumberError(ValueError):
    """An ID number that breaks a rule of GB 11643-1999; the message names the rule."""


class EntityKind(enum.Enum):
    """What kind of subject a USCC belongs to, from its first two characters."""

    ENTERPRISE = "91"
    INDIVIDUAL_BUSINESS = "92"
    COOPERATIVE = "93"
    OTHER = "other"


# Looked up, not called: ``EntityKind(code)`` runs Python 3.11's ``Enum.__call__`` and
# raises for every code that is not a kind.
_KINDS = {kind.value: kind for kind in EntityKind}
_OTHER = EntityKind.OTHER


def _org_code_value(char: str) -> int:
    # GB 11714 maps digits to 0-9 and every Latin capital to 10-35.
    return int(char) if char.isdigit() else ord(char) - ord("A") + 10


def _org_check_char(body: str) -> str:
    remainder = (
        11 - sum(w * _org_code_value(c) for w, c in zip(_ORG_WEIGHTS, body, strict=True)) % 11
    )
    return {10: "X", 11: "0"}.get(remainder, str(remainder))


def uscc_check_chars(first16: str) -> str:
    """The two check characters (positions 17 and 18) for the first 16 characters."""
    org_check = _org_check_char(first16[8:16])
    first17 = first16 + org_check
    remainder = (
        31 - sum(w * _USCC_VALUE[c] for w, c in zip(_USCC_WEIGHTS, first17, strict=True)) % 31
    ) % 31
    return org_check + USCC_ALPHABET[remainder]


def validate_uscc(raw: str) -> str:
    """The USCC in canonical form (trimmed, upper case), or ``UsccError`` naming the rule.

    Codes that passed are remembered (a hundred badges check a hundred codes, the same
    ones again and again), when they came in no longer than a code with a little space
    around it (a client's padding is not kept); a code that fails is checked anew."""
    if len(raw) <= _REMEMBERED_LENGTH:
        return _remembered_uscc(raw)
    return _validate_uscc(raw)


#: The longest input whose validation is remembered.
_REMEMBERED_LENGTH = 24


def _validate_uscc(raw: str) -> str:
    code = raw.strip().upper()
    if len(code) != 18:
        raise UsccError(f"USCC must be 18 characters, got {len(code)}")
    bad = sorted({char for char in code if char not in _USCC_VALUE})
    if bad:
        raise UsccError(f"USCC contains characters outside 0-9A-HJ-NPQRTUWXY: {''.join(bad)}")
    if not code[2:8].isdigit():
        raise UsccError("USCC positions 3-8 (administrative division code) must be digits")
    if code[2:4] not in MAINLAND_PROVINCES:
        raise UsccError(
            f"USCC positions 3-4 ({code[2:4]}) name no mainland province-level division: "
            "the service covers subjects registered in mainland China only"
        )
    expected = uscc_check_chars(code[:16])
    if code[16] != expected[0]:
        raise UsccError("USCC position 17 fails the GB 11714 organization-code check")
    if code[17] != expected[1]:
        raise UsccError("USCC position 18 fails the GB 32100 MOD 31 check")
    return code


_remembered_uscc = functools.lru_cache(maxsize=65_536)(_validate_uscc)


def entity_kind(uscc: str) -> EntityKind:
    return _KINDS.get(uscc[:2], _OTHER)


def id_number_check_char(first17: str) -> str:
    return _ID_CHECK[sum(w * int(c) for w, c in zip(_ID_WEIGHTS, first17, strict=True)) % 11]


def mask_id_number(number: str) -> str:
    """6 + 8 + 4: division code, eight stars over the birth date, the last four."""
    return f"{number[:6]}{'*' * 8}{number[14:]}"


def validate_id_number(raw: str) -> str:
    """An 18-character resident ID number in canonical form, or ``IdNumberError``.

    The messages never repeat the number itself: it is personal data.
    """
    number = raw.strip().upper()
    if len(number) != 18:
        raise IdNumberError(f"ID number must be 18 characters, got {len(number)}")
    if not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        raise IdNumberError("ID number must be 17 digits followed by a digit or X")
    try:
        dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise IdNumberError("ID number positions 7-14 are not a valid birth date") from None
    if number[17] != id_number_check_char(number[:17]):
        raise IdNumberError("ID number fails the GB 11643 MOD 11-2 check")
    return number
