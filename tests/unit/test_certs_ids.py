"""Unit tests for certs.ids: USCCs, citizen ID numbers and e-certificate identifiers.

Valid examples are either published values (found in public documents and
code, each checked against the algorithms by hand and by python-stdnum) or
synthetic values built with the make_* functions. Invalid examples cover every
error branch; each asserts that the message names the part that is wrong.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from datetime import date

import pytest

from certs.ids import (
    CERT_ID_ROOT,
    USCC_CATEGORIES,
    CertId,
    IdentifierError,
    citizen_id_check_char,
    format_cert_id,
    make_citizen_id,
    make_uscc,
    mask_citizen_id,
    mask_name,
    mod37_36_check_char,
    org_code_check_char,
    parse_cert_id,
    uscc_check_char,
    validate_citizen_id,
    validate_uscc,
)
from ledger.errors import InputError

# Two identifiers of real certificates, published in public code: a type defined
# by the Ministry of Housing and Urban-Rural Development (11100000000013338W),
# issued by provincial and district departments.
REAL_CERT_IDS = [
    "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U",
    "1.2.156.3005.2.11100000000013338W009.11330105002500287C.2025052201.002.0",
]
TYPE_CODE = "11100000000013338W011"
ISSUER = "11430000006122244L"


# --- USCC ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uscc",
    [
        pytest.param("91110000600037341L", id="python-stdnum-doctest"),
        pytest.param("91100000100003962T", id="icbc"),
        pytest.param("911000001000013428", id="bank-of-china"),
        pytest.param("914403001922038216", id="huawei"),
        pytest.param("91440300708461136T", id="tencent"),
        pytest.param("91110108551385082Q", id="xiaomi"),
        pytest.param("91350203MA344PKP8K", id="xiamen-ma-series"),
        pytest.param("11100000000013338W", id="ministry-type-definer"),
        pytest.param("11430000006122244L", id="provincial-department"),
        pytest.param("11330105002500287C", id="district-department"),
        pytest.param("11100000MB03271699", id="mb-series-central-body"),
        pytest.param("91350100M000100Y43", id="fuzhou-test-fixture"),
        pytest.param("11350100MB1F000224", id="synthetic-fuzhou-finance"),
        pytest.param("91350100MB1F004360", id="check-value-31-written-0"),
    ],
)
def test_valid_usccs_are_accepted_unchanged(uscc: str) -> None:
    """Goal: published and synthetic USCCs pass every check. Method: validate_uscc returns them."""
    assert validate_uscc(uscc) == uscc


def test_uscc_is_normalised() -> None:
    """Goal: surrounding whitespace and lower case are accepted. Method: compare to canonical."""
    assert validate_uscc("  91350100m000100y43\t") == "91350100M000100Y43"
    assert validate_uscc("\u300091350100M000100Y43") == "91350100M000100Y43"


@pytest.mark.parametrize(
    ("value", "part", "message"),
    [
        pytest.param("", "length", "USCC '': length is 0, expected 18", id="empty"),
        pytest.param("91350100M000100Y4", "length", "length is 17, expected 18", id="too-short"),
        pytest.param(
            "91350100MO00100Y43",
            "character",
            "character 'O' at position 10 is not allowed",
            id="letter-O",
        ),
        pytest.param(
            "9135010０M000100Y43",
            "character",
            "character '０' at position 8 is not allowed",
            id="full-width-digit",
        ),
        pytest.param(
            "91350100M000100ſ43",
            "character",
            "character 'ſ' at position 16 is not allowed",
            id="long-s-not-mapped-to-S",
        ),
        pytest.param(
            "B1350100M000100Y43",
            "registration authority",
            "registration authority code 'B' is not defined by GB 32100",
            id="unknown-authority",
        ),
        pytest.param(
            "94350100M000100Y43",
            "organisation category",
            "organisation category '4' is not defined for registration authority '9' (工商);"
            " expected one of 1, 2, 3",
            id="unknown-category",
        ),
        pytest.param(
            "Y2350100M000100Y43",
            "organisation category",
            "organisation category '2' is not defined for registration authority 'Y'",
            id="other-authority-has-only-1",
        ),
        pytest.param(
            "913501A0M000100Y43",
            "division code",
            "administrative division code '3501A0' is not 6 digits",
            id="division-letter",
        ),
        pytest.param(
            "91110000100006269C",
            "organisation code check",
            "organisation code 100006269: GB 11714 check character is '9', expected '6'",
            id="inner-check-commonly-quoted-code",
        ),
        pytest.param(
            "91310000631295002H",
            "organisation code check",
            "GB 11714 check character is '2', expected '1'",
            id="outer-check-passes-inner-fails",
        ),
        pytest.param(
            "91350100M000100Y4X",
            "check character",
            "USCC 91350100M000100Y4X: check character is 'X', expected '3'",
            id="check-character",
        ),
    ],
)
def test_invalid_usccs_name_the_wrong_part(value: str, part: str, message: str) -> None:
    """Goal: each rejection says which part is wrong. Method: match message and part name."""
    with pytest.raises(IdentifierError) as info:
        validate_uscc(value)
    assert message in str(info.value)
    assert info.value.part == part


def test_uscc_category_table_matches_gb_32100() -> None:
    """Goal: the authority/category table is GB 32100's. Method: compare codes per authority."""
    codes = {authority: "".join(cats) for authority, (_, cats) in USCC_CATEGORIES.items()}
    assert codes == {
        "1": "1239",
        "2": "19",
        "3": "123459",
        "4": "19",
        "5": "1239",
        "6": "129",
        "7": "129",
        "8": "19",
        "9": "123",
        "A": "19",
        "N": "1239",
        "Y": "1",
    }


@pytest.mark.parametrize(
    ("body8", "check"),
    [
        pytest.param("M000100Y", "4", id="fixture"),
        pytest.param("10000396", "2", id="icbc"),
        pytest.param("00000006", "X", id="ten-written-X"),
        pytest.param("00000000", "0", id="eleven-written-0"),
    ],
)
def test_org_code_check_char(body8: str, check: str) -> None:
    """Goal: GB 11714 check incl. the X and 0 cases. Method: known organisation codes."""
    assert org_code_check_char(body8) == check


@pytest.mark.parametrize(
    ("func", "arg", "message"),
    [
        pytest.param(uscc_check_char, "9135", "length is 4, expected 17", id="uscc-length"),
        pytest.param(
            uscc_check_char, "91350100M000100I4", "character 'I' at position 16", id="uscc-char"
        ),
        pytest.param(org_code_check_char, "M00", "length is 3, expected 8", id="org-length"),
        pytest.param(org_code_check_char, "M00010-Y", "character '-'", id="org-char"),
        pytest.param(citizen_id_check_char, "1101", "length is 4, expected 17", id="cid-length"),
        pytest.param(citizen_id_check_char, "1101051949123100X", "'X' at position 17", id="cid"),
        pytest.param(mod37_36_check_char, "AB.C", "character '.' at position 3", id="mod37"),
    ],
)
def test_check_char_functions_reject_bad_input(
    func: Callable[[str], str], arg: str, message: str
) -> None:
    """Goal: the public check-character helpers are total on str. Method: bad inputs raise."""
    with pytest.raises(IdentifierError, match=re.escape(message)):
        func(arg)


def test_make_uscc_builds_known_values() -> None:
    """Goal: make_uscc computes both check characters. Method: rebuild known USCCs from parts."""
    assert make_uscc("9", "1", "350100", "M000100Y") == "91350100M000100Y43"
    assert make_uscc("9", "1", "100000", "10000396") == "91100000100003962T"
    assert make_uscc("1", "1", "350100", "mb1f0002") == "11350100MB1F000224"


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        pytest.param(("9", "1", "3501", "M000100Y"), "expected 1 + 1 + 6 + 8", id="length"),
        pytest.param(("9", "1", "350100", "M0001O0Y"), "character 'O'", id="character"),
        pytest.param(("9", "5", "350100", "M000100Y"), "organisation category '5'", id="pair"),
        pytest.param(("9", "1", "35010A", "M000100Y"), "division code '35010A'", id="division"),
    ],
)
def test_make_uscc_rejects_bad_parts(parts: tuple[str, str, str, str], message: str) -> None:
    """Goal: bad parts are reported, not silently checksummed. Method: match the message."""
    with pytest.raises(IdentifierError, match=re.escape(message)):
        make_uscc(*parts)


# --- Citizen ID number ----------------------------------------------------------------


@pytest.mark.parametrize(
    "citizen_id",
    [
        pytest.param("11010519491231002X", id="gb-11643-example"),
        pytest.param("360426199101010071", id="python-stdnum-doctest"),
        pytest.param("35010219850312123X", id="synthetic-gulou"),
        pytest.param("350103199007082463", id="synthetic-taijiang"),
        pytest.param("350121196802293584", id="synthetic-leap-day"),
        pytest.param("810000199001010019", id="hong-kong-residence-permit-shape"),
    ],
)
def test_valid_citizen_ids_are_accepted(citizen_id: str) -> None:
    """Goal: real-shaped citizen ID numbers pass. Method: validate with and without as_of."""
    assert validate_citizen_id(citizen_id) == citizen_id
    assert validate_citizen_id(citizen_id, as_of=date(2025, 1, 1)) == citizen_id


def test_citizen_id_is_normalised() -> None:
    """Goal: a lower-case x and whitespace are accepted. Method: compare to the canonical form."""
    assert validate_citizen_id(" 11010519491231002x ") == "11010519491231002X"


def test_birth_on_the_as_of_date_is_accepted() -> None:
    """Goal: the future check is strict, not off by one. Method: birth date == as_of."""
    citizen_id = make_citizen_id("350102", date(2024, 5, 6), "001")
    assert validate_citizen_id(citizen_id, as_of=date(2024, 5, 6)) == citizen_id


@pytest.mark.parametrize(
    ("value", "as_of", "part", "message"),
    [
        pytest.param("1101051949123100", None, "length", "length is 16, expected 18", id="len"),
        pytest.param(
            "110105491231002",
            None,
            "length",
            "length is 15, expected 18 (a 15-digit first-generation number",
            id="first-generation",
        ),
        pytest.param(
            "1101051949A231002X",
            None,
            "character",
            "character 'A' at position 11 is not allowed (positions 1-17 are digits)",
            id="letter-in-body",
        ),
        pytest.param(
            "11010519491231002Y",
            None,
            "character",
            "check character 'Y' is not allowed (expected a digit or 'X')",
            id="bad-check-symbol",
        ),
        pytest.param(
            "010105194912310025",
            None,
            "address code",
            "address code 010105 does not start with a province code",
            id="address-code",
        ),
        pytest.param(
            "11010519990230002X",
            None,
            "birth date",
            "birth date 19990230 is not a calendar date",
            id="feb-30",
        ),
        pytest.param(
            "110105199913010021",
            None,
            "birth date",
            "birth date 19991301 is not a calendar date",
            id="month-13",
        ),
        pytest.param(
            "440524188001010014",
            None,
            "birth date",
            "birth date 18800101 is before 1900",
            id="gb-11643-1880-example",
        ),
        pytest.param(
            "350102202506010018",
            date(2025, 5, 31),
            "birth date",
            "birth date 20250601 is after the as-of date 2025-05-31",
            id="future",
        ),
        pytest.param(
            "110105194912310021",
            None,
            "check character",
            "citizen ID 110105194912310021: check character is '1', expected 'X'",
            id="check-character",
        ),
    ],
)
def test_invalid_citizen_ids_name_the_wrong_part(
    value: str, as_of: date | None, part: str, message: str
) -> None:
    """Goal: each rejection says which part is wrong. Method: match message and part name."""
    with pytest.raises(IdentifierError) as info:
        validate_citizen_id(value, as_of=as_of)
    assert message in str(info.value)
    assert info.value.part == part


def test_make_citizen_id_builds_known_values() -> None:
    """Goal: make_citizen_id computes the MOD 11-2 check. Method: rebuild the GB 11643 example."""
    assert make_citizen_id("110105", date(1949, 12, 31), "002") == "11010519491231002X"
    assert make_citizen_id("350102", date(1985, 3, 12), "123") == "35010219850312123X"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(("35010", date(1985, 3, 12), "123"), "address code must be 6", id="addr"),
        pytest.param(("350102", date(1985, 3, 12), "12a"), "sequence must be 3 digits", id="seq"),
        pytest.param(("350102", date(1899, 12, 31), "123"), "before 1900", id="pre-1900"),
    ],
)
def test_make_citizen_id_rejects_bad_parts(args: tuple[str, date, str], message: str) -> None:
    """Goal: bad parts are reported. Method: match the message."""
    with pytest.raises(IdentifierError, match=re.escape(message)):
        make_citizen_id(*args)


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        pytest.param("50010119800119123X", "5001**********123X", id="spec-example"),
        pytest.param(" 50010119800119123x ", "5001**********123X", id="normalised"),
        pytest.param("110105491231002", "1101*******1002", id="fifteen-digits"),
        pytest.param("12345678", "********", id="fragment-all-stars"),
        pytest.param("", "", id="empty"),
    ],
)
def test_mask_citizen_id(value: str, masked: str) -> None:
    """Goal: display masking keeps only the ends of a full number. Method: exact strings."""
    assert mask_citizen_id(value) == masked


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        pytest.param("张三丰", "张**", id="three-chars"),
        pytest.param("张三", "张*", id="two-chars"),
        pytest.param("欧阳娜娜", "欧***", id="compound-surname"),
        pytest.param("张", "*", id="one-char-hidden"),
        pytest.param("", "", id="empty"),
        pytest.param("买买提·艾力", "买**·**", id="middle-dot-kept"),
        pytest.param("John  Smith ", "J*** *****", id="latin-spaces-collapsed"),
        pytest.param("Mary-Jane O'Neil", "M***-**** *'****", id="latin-separators"),
        pytest.param("Jose\u0301", "J***", id="nfc-accent-one-star"),
    ],
)
def test_mask_name(name: str, masked: str) -> None:
    """Goal: names are masked to their first character. Method: exact strings."""
    assert mask_name(name) == masked


# --- E-certificate identifier -----------------------------------------------------------


@pytest.mark.parametrize("value", REAL_CERT_IDS, ids=["hunan-001", "zhejiang-002"])
def test_real_cert_ids_parse_and_round_trip(value: str) -> None:
    """Goal: identifiers of real certificates pass, so our MOD 37,36 is the one in use.

    Method: parse, check the parts, format back to the same string.
    """
    cert_id = parse_cert_id(value)
    assert str(cert_id) == value
    assert (
        format_cert_id(cert_id.type_code, cert_id.issuer_uscc, cert_id.serial, cert_id.version)
        == value
    )


def test_parse_cert_id_parts() -> None:
    """Goal: the parts land in the right fields. Method: parse a real identifier."""
    assert parse_cert_id(REAL_CERT_IDS[0]) == CertId(TYPE_CODE, ISSUER, "20230000403", 1)
    assert parse_cert_id(REAL_CERT_IDS[0]).check_char == "U"


def test_iso_7064_mod_37_36_example() -> None:
    """Goal: MOD 37,36 matches the ISO 7064 example. Method: A12425GABC1234002 → M."""
    assert mod37_36_check_char("A12425GABC1234002") == "M"


def test_format_cert_id_normalises_parts() -> None:
    """Goal: format accepts lower case and padding. Method: compare with the canonical id."""
    value = format_cert_id(" 11100000000013338w011", ISSUER.lower(), "20230000403 ", 1)
    assert value == REAL_CERT_IDS[0]
    assert parse_cert_id(value.lower()) == parse_cert_id(value)


def _cert_id_with(**parts: str) -> str:
    """REAL_CERT_IDS[0] with some dotted parts replaced (check character kept)."""
    fields = dict(
        zip(
            ("type", "issuer", "serial", "version", "check"),
            REAL_CERT_IDS[0].removeprefix(CERT_ID_ROOT + ".").split("."),
            strict=True,
        )
    )
    fields.update(parts)
    return ".".join([CERT_ID_ROOT, *fields.values()])


@pytest.mark.parametrize(
    ("value", "part", "message"),
    [
        pytest.param("", "prefix", "does not start with the e-certificate root code", id="empty"),
        pytest.param(
            REAL_CERT_IDS[0].replace("1.2.156.3005.2", "1.2.156.3005.3"),
            "prefix",
            "does not start with the e-certificate root code 1.2.156.3005.2",
            id="wrong-root",
        ),
        pytest.param(
            REAL_CERT_IDS[0].removesuffix(".U"),
            "layout",
            "expected 5 dot-separated parts after 1.2.156.3005.2"
            " (type code, issuer USCC, serial, version, check character), found 4",
            id="missing-check",
        ),
        pytest.param(_cert_id_with(serial="2023.0000403"), "layout", "found 6", id="dot-in-serial"),
        pytest.param(
            _cert_id_with(type="11100000000013338W01"),
            "type code",
            "type code 11100000000013338W01: length is 20, expected 21",
            id="type-code-length",
        ),
        pytest.param(
            _cert_id_with(type="11100000000013338X011"),
            "type code",
            "type code 11100000000013338X011: defining department's USCC 11100000000013338X:"
            " check character is 'X', expected 'W'",
            id="type-code-definer-uscc",
        ),
        pytest.param(
            _cert_id_with(type="11100000000013338W0A1"),
            "type code",
            "type number '0A1' after the definer's USCC is not 3 digits",
            id="type-code-number",
        ),
        pytest.param(
            _cert_id_with(issuer="11430000006122244X"),
            "issuer USCC",
            "issuer USCC 11430000006122244X: check character is 'X', expected 'L'",
            id="issuer-check",
        ),
        pytest.param(
            _cert_id_with(issuer="114300000061222"),
            "issuer USCC",
            "issuer USCC 114300000061222: length is 15, expected 18",
            id="issuer-length",
        ),
        pytest.param(_cert_id_with(serial=""), "serial", "length is 0, expected 1 to 32", id="e"),
        pytest.param(
            _cert_id_with(serial="1" * 33), "serial", "length is 33, expected 1 to 32", id="long"
        ),
        pytest.param(
            _cert_id_with(serial="2023-0403"),
            "serial",
            "serial 2023-0403: character '-' at position 5 is not allowed (0-9, A-Z)",
            id="serial-char",
        ),
        pytest.param(
            _cert_id_with(version="000"), "version", "version '000' is not 3 digits", id="v000"
        ),
        pytest.param(_cert_id_with(version="01"), "version", "version '01'", id="v-short"),
        pytest.param(_cert_id_with(version="1000"), "version", "version '1000'", id="v-long"),
        pytest.param(_cert_id_with(version="0A1"), "version", "version '0A1'", id="v-letter"),
        pytest.param(
            _cert_id_with(check="V"),
            "check character",
            "check character is 'V', expected 'U'",
            id="check-character",
        ),
        pytest.param(
            _cert_id_with(check=""), "check character", "is '', expected 'U'", id="check-empty"
        ),
        pytest.param(
            _cert_id_with(check="UU"), "check character", "is 'UU', expected 'U'", id="check-two"
        ),
    ],
)
def test_invalid_cert_ids_name_the_wrong_part(value: str, part: str, message: str) -> None:
    """Goal: each rejection says which part is wrong. Method: match message and part name."""
    with pytest.raises(IdentifierError) as info:
        parse_cert_id(value)
    assert message in str(info.value)
    assert str(info.value).startswith("certificate identifier ")
    assert info.value.part == part


@pytest.mark.parametrize(
    ("version", "message"),
    [
        pytest.param(0, "version 0 is out of range, expected 1 to 999", id="zero"),
        pytest.param(1000, "version 1000 is out of range", id="too-big"),
        pytest.param(True, "version True is out of range", id="bool"),
        pytest.param("1", "version '1' is out of range", id="str"),
    ],
)
def test_cert_id_rejects_bad_versions(version: object, message: str) -> None:
    """Goal: a CertId always formats to a valid identifier. Method: bad versions raise."""
    with pytest.raises(IdentifierError, match=re.escape(message)):
        CertId(TYPE_CODE, ISSUER, "1", version)  # type: ignore[arg-type]


def test_cert_id_requires_canonical_parts() -> None:
    """Goal: CertId does not normalise, format_cert_id does. Method: lower case raises."""
    with pytest.raises(IdentifierError, match="certificate identifier parts: serial abc"):
        CertId(TYPE_CODE, ISSUER, "abc", 1)
    with pytest.raises(TypeError, match="serial must be str"):
        CertId(TYPE_CODE, ISSUER, 1, 1)  # type: ignore[arg-type]


def test_mod_37_36_misses_some_transpositions() -> None:
    """Goal: document the one error class MOD 37,36 does not always catch.

    Method: a transposition of adjacent characters worth 0 and 1 (version 001
    ↔ 010) that yields another valid identifier, so no one relies on it.
    """
    original = format_cert_id(TYPE_CODE, ISSUER, "2025000289", 1)
    swapped = format_cert_id(TYPE_CODE, ISSUER, "2025000289", 10)
    assert original.removesuffix(".001.Z") == swapped.removesuffix(".010.Z")
    assert parse_cert_id(swapped).version == 10


# --- Errors ------------------------------------------------------------------------------


def test_identifier_error_is_an_input_error_and_pickles() -> None:
    """Goal: callers can catch InputError and ship errors across processes.

    Method: isinstance, then a pickle round trip keeps message and part.
    """
    with pytest.raises(IdentifierError) as info:
        validate_uscc("91350100M000100Y4X")
    assert isinstance(info.value, InputError)
    copy = pickle.loads(pickle.dumps(info.value))
    assert (str(copy), copy.part) == (str(info.value), "check character")


def test_long_or_odd_input_is_clipped_in_messages() -> None:
    """Goal: a huge or control-character input cannot bloat or garble an error message.

    Method: a 10,000-character identifier and a USCC with a newline.
    """
    with pytest.raises(IdentifierError) as info:
        parse_cert_id("1" * 10_000)
    assert len(str(info.value)) < 300
    with pytest.raises(IdentifierError, match=r"USCC '9135\\n0100M000100Y43'"):
        validate_uscc("9135\n0100M000100Y43")


def test_non_str_input_is_a_type_error() -> None:
    """Goal: passing a non-str is our bug, not bad input. Method: TypeError, not IdentifierError."""
    with pytest.raises(TypeError):
        validate_uscc(91350100)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        mask_name(None)  # type: ignore[arg-type]
