"""Property tests for certs.ids: builders, error detection, totality, and python-stdnum.

What the check schemes guarantee, and so what is asserted here:

- USCC (MOD 31, weights 3^i mod 31, 31 prime): every single substitution and
  every transposition of adjacent different characters is detected.
- Citizen ID (ISO 7064 MOD 11-2): every single substitution and every adjacent
  transposition is detected.
- Certificate identifier (ISO 7064 MOD 37,36): every single substitution is
  detected; an adjacent transposition is detected whenever the two characters'
  values differ by anything but ±1 (mod 36). The exceptions are real
  (``test_mod_37_36_transposition_misses_are_exactly_the_neighbours``).

python-stdnum, when installed, is an independent implementation of the three
check algorithms; the tests that use it skip when it is missing.
"""

from __future__ import annotations

import contextlib
import importlib.util
import string
from collections.abc import Callable
from datetime import date

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from certs.ids import (
    CERT_ID_ALPHABET,
    CERT_ID_ROOT,
    SERIAL_LENGTH_MAX,
    USCC_ALPHABET,
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
    parse_cert_id,
    uscc_check_char,
    validate_citizen_id,
    validate_uscc,
)

HAVE_STDNUM = importlib.util.find_spec("stdnum") is not None
needs_stdnum = pytest.mark.skipif(
    not HAVE_STDNUM,
    reason="python-stdnum is not installed; it is only an optional independent cross-check",
)

# Replacement characters for substitutions: never a lower-case letter, which
# normalises back to the original.
SUBSTITUTES = string.digits + string.ascii_uppercase + ".-_/ *"

# --- Strategies ------------------------------------------------------------------------

authority_categories = st.sampled_from(
    [(authority, category) for authority, (_, cats) in USCC_CATEGORIES.items() for category in cats]
)


@st.composite
def usccs(draw: st.DrawFn) -> str:
    authority, category = draw(authority_categories)
    division = draw(st.text(string.digits, min_size=6, max_size=6))
    org_code8 = draw(st.text(USCC_ALPHABET, min_size=8, max_size=8))
    return make_uscc(authority, category, division, org_code8)


birth_dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31))


@st.composite
def citizen_ids(draw: st.DrawFn) -> str:
    address = draw(st.sampled_from("123456789")) + draw(
        st.text(string.digits, min_size=5, max_size=5)
    )
    seq = draw(st.text(string.digits, min_size=3, max_size=3))
    return make_citizen_id(address, draw(birth_dates), seq)


serials = st.text(CERT_ID_ALPHABET, min_size=1, max_size=SERIAL_LENGTH_MAX)
versions = st.integers(min_value=1, max_value=999)


@st.composite
def cert_ids(draw: st.DrawFn) -> CertId:
    type_code = draw(usccs()) + draw(st.text(string.digits, min_size=3, max_size=3))
    return CertId(type_code, draw(usccs()), draw(serials), draw(versions))


def _raises_identifier_error(func: Callable[[str], object], value: str) -> bool:
    try:
        func(value)
    except IdentifierError:
        return True
    return False


# --- Builders produce valid values --------------------------------------------------------


@given(authority_categories, st.text(string.digits, min_size=6, max_size=6), st.data())
def test_make_uscc_always_validates(
    pair: tuple[str, str], division: str, data: st.DataObject
) -> None:
    """Goal: make_uscc output is valid and keeps its parts.

    Method: random authority/category pairs, divisions and organisation codes.
    """
    org_code8 = data.draw(st.text(USCC_ALPHABET, min_size=8, max_size=8))
    uscc = make_uscc(pair[0], pair[1], division, org_code8)
    assert validate_uscc(uscc) == uscc
    assert uscc[:16] == pair[0] + pair[1] + division + org_code8


@given(birth_dates, st.text(string.digits, min_size=3, max_size=3))
def test_make_citizen_id_always_validates(birth: date, seq: str) -> None:
    """Goal: make_citizen_id output is valid, also as of the birth date itself.

    Method: random birth dates 1900-2099 and sequences.
    """
    citizen_id = make_citizen_id("350102", birth, seq)
    assert validate_citizen_id(citizen_id, as_of=birth) == citizen_id
    assert citizen_id[6:14] == birth.strftime("%Y%m%d") and citizen_id[14:17] == seq
    assert mask_citizen_id(citizen_id) == citizen_id[:4] + "*" * 10 + citizen_id[-4:]


@given(cert_ids())
def test_cert_id_round_trips(cert_id: CertId) -> None:
    """Goal: format and parse are inverse. Method: random valid parts, str → parse → equal."""
    text = str(cert_id)
    assert parse_cert_id(text) == cert_id
    assert parse_cert_id(text.lower()) == cert_id
    assert (
        format_cert_id(cert_id.type_code, cert_id.issuer_uscc, cert_id.serial, cert_id.version)
        == text
    )


# --- Single substitutions are always detected ----------------------------------------------


@given(usccs(), st.data())
def test_uscc_substitution_detected(uscc: str, data: st.DataObject) -> None:
    """Goal: MOD 31 (plus the format checks) catches any one wrong character.

    Method: replace one character with any other non-lower-case character.
    """
    i = data.draw(st.integers(0, len(uscc) - 1))
    char = data.draw(st.sampled_from(SUBSTITUTES).filter(lambda c: c != uscc[i]))
    assert _raises_identifier_error(validate_uscc, uscc[:i] + char + uscc[i + 1 :])


@given(citizen_ids(), st.data())
def test_citizen_id_substitution_detected(citizen_id: str, data: st.DataObject) -> None:
    """Goal: MOD 11-2 (plus the format checks) catches any one wrong character.

    Method: replace one character with any other non-lower-case character.
    """
    i = data.draw(st.integers(0, len(citizen_id) - 1))
    char = data.draw(st.sampled_from(SUBSTITUTES).filter(lambda c: c != citizen_id[i]))
    changed = citizen_id[:i] + char + citizen_id[i + 1 :]
    assert _raises_identifier_error(validate_citizen_id, changed)


@given(cert_ids(), st.data())
def test_cert_id_substitution_detected(cert_id: CertId, data: st.DataObject) -> None:
    """Goal: MOD 37,36 (plus the layout checks) catches any one wrong character.

    Method: replace one character anywhere, dots and prefix included.
    """
    text = str(cert_id)
    i = data.draw(st.integers(0, len(text) - 1))
    char = data.draw(st.sampled_from(SUBSTITUTES).filter(lambda c: c != text[i]))
    assert _raises_identifier_error(parse_cert_id, text[:i] + char + text[i + 1 :])


# --- Adjacent transpositions, where the scheme guarantees detection ----------------------------


def _swap(value: str, i: int) -> str:
    return value[:i] + value[i + 1] + value[i] + value[i + 2 :]


@given(usccs(), st.data())
def test_uscc_transposition_detected(uscc: str, data: st.DataObject) -> None:
    """Goal: MOD 31 catches every swap of adjacent different characters.

    Method: swap a random adjacent pair (check character included).
    """
    i = data.draw(st.integers(0, len(uscc) - 2).filter(lambda k: uscc[k] != uscc[k + 1]))
    assert _raises_identifier_error(validate_uscc, _swap(uscc, i))


@given(citizen_ids(), st.data())
def test_citizen_id_transposition_detected(citizen_id: str, data: st.DataObject) -> None:
    """Goal: MOD 11-2 catches every swap of adjacent different characters.

    Method: swap a random adjacent pair (check character included).
    """
    pairs = [k for k in range(len(citizen_id) - 1) if citizen_id[k] != citizen_id[k + 1]]
    i = data.draw(st.sampled_from(pairs))
    assert _raises_identifier_error(validate_citizen_id, _swap(citizen_id, i))


def _neighbours(a: str, b: str) -> bool:
    """Both in 0-9A-Z with values 1 apart mod 36: the swaps MOD 37,36 may miss."""
    if a not in CERT_ID_ALPHABET or b not in CERT_ID_ALPHABET:
        return False
    return (CERT_ID_ALPHABET.index(a) - CERT_ID_ALPHABET.index(b)) % 36 in (1, 35)


@given(cert_ids(), st.data())
def test_cert_id_transposition_detected_unless_neighbours(
    cert_id: CertId, data: st.DataObject
) -> None:
    """Goal: every adjacent swap is caught except, possibly, of values 1 apart.

    Method: swap a random adjacent pair anywhere in the identifier; pairs of
    neighbouring values are only counted (event), not asserted.
    """
    text = str(cert_id)
    i = data.draw(st.integers(0, len(text) - 2).filter(lambda k: text[k] != text[k + 1]))
    if _neighbours(text[i], text[i + 1]):
        event("neighbouring values: detection not guaranteed")
        return
    assert _raises_identifier_error(parse_cert_id, _swap(text, i))


def test_mod_37_36_transposition_misses_are_exactly_the_neighbours() -> None:
    """Goal: pin down the claim the transposition property relies on.

    Method: exhaustive. The 36 one-character prefixes reach all 36 running
    states of MOD 37,36, and equal check characters after ``x+a+b`` and
    ``x+b+a`` mean equal states, so any suffix keeps the swap undetected.
    Every such miss must be a pair of values 1 apart, and misses must exist.
    """
    misses = 0
    for prefix in CERT_ID_ALPHABET:
        for a in CERT_ID_ALPHABET:
            for b in CERT_ID_ALPHABET:
                if a != b and mod37_36_check_char(prefix + a + b) == mod37_36_check_char(
                    prefix + b + a
                ):
                    assert _neighbours(a, b), (prefix, a, b)
                    misses += 1
    assert misses == 72


@pytest.mark.parametrize(
    ("func", "value", "spare"),
    [
        pytest.param(validate_uscc, "91350100M000100Y43", lambda a, b: False, id="uscc"),
        pytest.param(validate_citizen_id, "11010519491231002X", lambda a, b: False, id="citizen"),
        pytest.param(
            parse_cert_id,
            "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U",
            _neighbours,
            id="cert-id",
        ),
    ],
)
def test_every_single_error_in_a_real_value_is_detected(
    func: Callable[[str], object], value: str, spare: Callable[[str, str], bool]
) -> None:
    """Goal: the guarantees hold exhaustively, not just on sampled values.

    Method: every single substitution (by every character in SUBSTITUTES) and
    every adjacent transposition of one published value; transpositions that
    the scheme does not guarantee (``spare``) are left out.
    """
    assert func(value)
    for i in range(len(value)):
        for char in SUBSTITUTES.replace(value[i], ""):
            assert _raises_identifier_error(func, value[:i] + char + value[i + 1 :]), (i, char)
    for i in range(len(value) - 1):
        if value[i] != value[i + 1] and not spare(value[i], value[i + 1]):
            assert _raises_identifier_error(func, _swap(value, i)), i


# --- Totality: str in, canonical str or IdentifierError out ---------------------------------


near_usccs = st.text(USCC_ALPHABET + "IOSVZ0-", min_size=16, max_size=19)
near_citizen_ids = st.text(string.digits + "Xx ", min_size=14, max_size=19)
near_cert_ids = st.builds(
    lambda body: f"{CERT_ID_ROOT}.{body}",
    st.text(CERT_ID_ALPHABET + "..-", min_size=0, max_size=100),
)


@given(st.one_of(st.text(), near_usccs))
def test_validate_uscc_is_total(value: str) -> None:
    """Goal: arbitrary text yields a canonical USCC or IdentifierError, nothing else.

    Method: random Unicode and near-miss strings; accepted values are fixed points.
    """
    try:
        result = validate_uscc(value)
    except IdentifierError as exc:
        assert str(exc).startswith("USCC ") and exc.part
    else:
        assert validate_uscc(result) == result and len(result) == 18


@given(st.one_of(st.text(), near_citizen_ids), st.none() | st.dates())
def test_validate_citizen_id_is_total(value: str, as_of: date | None) -> None:
    """Goal: arbitrary text yields a canonical citizen ID or IdentifierError, nothing else.

    Method: random Unicode and near-miss strings, with and without an as-of date.
    """
    try:
        result = validate_citizen_id(value, as_of=as_of)
    except IdentifierError as exc:
        assert str(exc).startswith("citizen ID ") and exc.part
    else:
        assert validate_citizen_id(result) == result and len(result) == 18


@given(st.one_of(st.text(), near_cert_ids))
def test_parse_cert_id_is_total(value: str) -> None:
    """Goal: arbitrary text yields a CertId or IdentifierError, nothing else.

    Method: random Unicode and strings that start with the root code.
    """
    try:
        cert_id = parse_cert_id(value)
    except IdentifierError as exc:
        assert str(exc).startswith("certificate identifier ") and exc.part
    else:
        assert str(cert_id) == value.strip().upper()


@given(st.text(), st.text(), st.text(), st.integers(-5, 1005))
def test_cert_id_constructor_is_total(
    type_code: str, issuer: str, serial: str, version: int
) -> None:
    """Goal: CertId and format_cert_id reject bad parts only with IdentifierError.

    Method: random text parts and versions around the valid range.
    """
    for build in (CertId, format_cert_id):
        with contextlib.suppress(IdentifierError):
            build(type_code, issuer, serial, version)


@given(st.text())
def test_masks_are_total_and_hide(value: str) -> None:
    """Goal: masking never fails and never shows more than it promises.

    Method: random text; count the characters that are not stars or separators.
    """
    masked_id = mask_citizen_id(value)
    assert sum(c != "*" for c in masked_id) <= 8
    masked_name = mask_name(value)
    assert sum(c not in " ·•‧・.-'*" for c in masked_name) <= 1


# --- Cross-check against python-stdnum -----------------------------------------------------


@needs_stdnum
@given(st.text(USCC_ALPHABET, min_size=17, max_size=17))
def test_uscc_check_char_matches_stdnum(body: str) -> None:
    """Goal: our MOD 31 equals python-stdnum's. Method: random 17-character bodies."""
    from stdnum.cn import uscc as stdnum_uscc

    assert uscc_check_char(body) == stdnum_uscc.calc_check_digit(body)


@needs_stdnum
@given(st.one_of(usccs(), near_usccs))
def test_uscc_validity_implies_stdnum_validity(value: str) -> None:
    """Goal: whatever we accept, python-stdnum accepts (we are stricter: category, GB 11714).

    Method: valid USCCs and near-miss strings. python-stdnum (2.2) requires the
    first 8 characters to be digits, so it rejects the GB 32100 registration
    authorities A, N and Y; those values are only counted.
    """
    from stdnum.cn import uscc as stdnum_uscc

    if not _raises_identifier_error(validate_uscc, value):
        if value[0] in "ANY":
            event("authority A/N/Y: python-stdnum rejects these")
            assert not stdnum_uscc.is_valid(value)
        else:
            assert stdnum_uscc.is_valid(value)


@needs_stdnum
@given(st.text(string.digits, min_size=17, max_size=17))
def test_citizen_id_check_char_matches_stdnum(body: str) -> None:
    """Goal: our MOD 11-2 equals python-stdnum's, two ways.

    Method: random 17-digit bodies through stdnum.cn.ric and stdnum.iso7064.mod_11_2.
    """
    from stdnum.cn import ric
    from stdnum.iso7064 import mod_11_2

    ours = citizen_id_check_char(body)
    assert ours == ric.calc_check_digit(body + "0") == mod_11_2.calc_check_digit(body)


@needs_stdnum
@given(st.text(CERT_ID_ALPHABET, max_size=90))
def test_mod_37_36_matches_stdnum(data: str) -> None:
    """Goal: our MOD 37,36 equals python-stdnum's. Method: random 0-9A-Z strings, empty included."""
    from stdnum.iso7064 import mod_37_36

    assert mod37_36_check_char(data) == mod_37_36.calc_check_digit(data)


@needs_stdnum
@given(cert_ids())
def test_cert_ids_pass_stdnum_mod_37_36(cert_id: CertId) -> None:
    """Goal: our identifiers' check characters validate under python-stdnum.

    Method: strip the root and dots; mod_37_36.validate must accept the rest.
    """
    from stdnum.iso7064 import mod_37_36

    body = str(cert_id).removeprefix(CERT_ID_ROOT + ".").replace(".", "")
    assert mod_37_36.is_valid(body)


# --- Fast paths agree with the detailed checks -------------------------------------------


def _outcome(func: Callable[[str], object], value: str) -> object:
    try:
        return func(value)
    except IdentifierError as exc:
        return ("error", str(exc), exc.part)


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[str], alphabet: str) -> str:
    """A valid value, perhaps with one character replaced, inserted or removed, or cased."""
    value = draw(valid)
    i = draw(st.integers(0, len(value) - 1))
    char = draw(st.sampled_from(alphabet))
    return draw(st.sampled_from([
        value,
        value[:i] + char + value[i + 1:],
        value[:i] + char + value[i:],
        value[:i] + value[i + 1:],
        value.lower(),
        f" {value}",
    ]))


@st.composite
def rechecked_usccs(draw: st.DrawFn) -> str:
    """17 characters that may break any inner rule (prefix, division digits, the
    organisation code's own check) followed by a *correct* final check character, so
    that only the inner rules can reject it."""
    prefix = draw(st.one_of(authority_categories.map("".join),
                            st.text(USCC_ALPHABET, min_size=2, max_size=2)))
    division = draw(st.one_of(st.text(string.digits, min_size=6, max_size=6),
                              st.text(USCC_ALPHABET, min_size=6, max_size=6)))
    org = draw(st.text(USCC_ALPHABET, min_size=9, max_size=9))
    body = prefix + division + org
    return body + uscc_check_char(body)


@st.composite
def rechecked_cert_ids(draw: st.DrawFn) -> str:
    """Identifiers whose parts may break their own rules (type code or issuer USCC,
    version 000) but whose MOD 37,36 check character is correct."""
    type_code = draw(st.one_of(usccs(), rechecked_usccs())) + draw(
        st.text(string.digits, min_size=3, max_size=3))
    issuer = draw(st.one_of(usccs(), rechecked_usccs()))
    serial = draw(serials)
    version = draw(st.sampled_from(["000", "001", "999"]))
    data = f"{type_code}{issuer}{serial}{version}"
    return f"{CERT_ID_ROOT}.{type_code}.{issuer}.{serial}.{version}.{mod37_36_check_char(data)}"


@given(st.one_of(mutated(usccs(), USCC_ALPHABET + "IOSVZa ."), rechecked_usccs(), near_usccs,
                 st.text()))
def test_uscc_fast_path_agrees_with_the_detailed_check(value: str) -> None:
    """Goal: the messageless fast check of a USCC accepts exactly what the detailed,
    part-by-part check accepts (a fast path that accepted more would let an invalid
    USCC onto the ledger; one that accepted less would only be slow).

    Method: valid USCCs with one edit, values with a correct final check character but
    perhaps a wrong prefix, division or organisation check, near-misses and random text.
    """
    from ledger.ids import _check_uscc_detail, _normalise, _uscc_ok

    normalised = _normalise(value)
    detailed_ok = _outcome(_check_uscc_detail, normalised) is None
    assert _uscc_ok(normalised) == detailed_ok


@given(st.one_of(mutated(cert_ids().map(str), CERT_ID_ALPHABET + "IOSVZa. -"),
                 rechecked_cert_ids(), near_cert_ids, st.text()))
def test_cert_id_fast_path_agrees_with_the_detailed_parse(value: str) -> None:
    """Goal: parsing a certificate identifier gives the same CertId or the same error
    whether or not its fast path applies.

    Method: valid identifiers with one edit, identifiers with a correct check character
    but perhaps an invalid USCC or version 000, near-misses and random text; the public
    parser (fast path first) against the part-by-part parser alone.
    """
    from certs.ids import _parse_cert_id_detail

    assert _outcome(parse_cert_id.__wrapped__, value) == _outcome(_parse_cert_id_detail, value)
