"""USCC (GB 32100-2015) and ID number (GB 11643-1999) validation, against real codes."""

from __future__ import annotations

import pytest

from loaders.codes import (
    EntityKind,
    IdNumberError,
    UsccError,
    entity_kind,
    uscc_check_chars,
    validate_id_number,
    validate_uscc,
)

REAL_USCCS = [
    "91110000600037341L",
    "9144030071526726XG",
    "91310115MA1K3BTP2B",
    "92340602MA2PBMEM24",
    "91620105L015101280",
]


@pytest.mark.parametrize("code", REAL_USCCS)
def test_real_usccs_are_valid(code: str) -> None:
    assert validate_uscc(code) == code
    assert uscc_check_chars(code[:16]) == code[16:]


def test_input_is_trimmed_and_upper_cased() -> None:
    assert validate_uscc("  91310115ma1k3btp2b\t") == "91310115MA1K3BTP2B"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("9111000060003734", "USCC must be 18 characters, got 16"),
        ("91110000600037341LX", "USCC must be 18 characters, got 19"),
        ("", "USCC must be 18 characters, got 0"),
        ("91310115MA1K3BTP2I", "USCC contains characters outside 0-9A-HJ-NPQRTUWXY: I"),
        ("91310115MA1K3OTP2B", "USCC contains characters outside 0-9A-HJ-NPQRTUWXY: O"),
        ("9131011-MA1K3BTP2B", "USCC contains characters outside 0-9A-HJ-NPQRTUWXY: -"),
        (
            "91A10115MA1K3BTP2B",
            "USCC positions 3-8 (administrative division code) must be digits",
        ),
        (
            "91310115MA1K3BTP3B",
            "USCC position 17 fails the GB 11714 organization-code check",
        ),
        ("91110000600037341M", "USCC position 18 fails the GB 32100 MOD 31 check"),
        ("9144030071526726XH", "USCC position 18 fails the GB 32100 MOD 31 check"),
    ],
)
def test_broken_usccs_name_the_rule(code: str, message: str) -> None:
    with pytest.raises(UsccError) as raised:
        validate_uscc(code)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("91110000600037341L", EntityKind.ENTERPRISE),
        ("92340602MA2PBMEM24", EntityKind.INDIVIDUAL_BUSINESS),
        ("93370202MA47PD088L", EntityKind.COOPERATIVE),
        ("12100000400000000X", EntityKind.OTHER),
    ],
)
def test_entity_kind_comes_from_positions_1_and_2(code: str, kind: EntityKind) -> None:
    assert entity_kind(code) is kind


def test_standard_id_number_example_is_valid() -> None:
    # The worked example of GB 11643-1999, whose check character is X.
    assert validate_id_number("11010519491231002x") == "11010519491231002X"


@pytest.mark.parametrize(
    ("number", "message"),
    [
        ("1101051949123100", "ID number must be 18 characters, got 16"),
        ("1101051949123100AX", "ID number must be 17 digits followed by a digit or X"),
        ("110105194913310021", "ID number positions 7-14 are not a valid birth date"),
        ("110105194912310021", "ID number fails the GB 11643 MOD 11-2 check"),
    ],
)
def test_broken_id_numbers_never_echo_the_number(number: str, message: str) -> None:
    with pytest.raises(IdNumberError) as raised:
        validate_id_number(number)
    assert str(raised.value) == message
    assert number[:6] not in str(raised.value)


def test_only_short_inputs_are_remembered() -> None:
    """A valid code is remembered; one padded past a little space is validated the same
    way and not kept (a client's padding never fills the memory)."""
    from loaders import codes

    codes._remembered_uscc.cache_clear()
    code = "91330110MAJPDCW44H"
    assert validate_uscc(f" {code.lower()} ") == code
    assert validate_uscc(" " * 10_000 + code) == code
    assert codes._remembered_uscc.cache_info().currsize == 1
