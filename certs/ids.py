"""E-certificate identifiers (电子证照标识, GB/T 36904-2018, as profiled in SPEC §5).

The USCC and citizen-ID validators this builds on live in :mod:`ledger.ids` (the
organisation registry and the fiscal application use them too) and are re-exported
here for convenience.

E-certificate identifier, 电子证照标识 (GB/T 36904-2018, as profiled in SPEC §5)
--------------------------------------------------------------------------------

::

    1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U
    `- root OID    `- type code (21)     `- issuer USCC     `- serial   |   `- check
                                                                        `- version

- type code: 21 characters = the USCC of the department that defines the
  certificate type in the national 电子证照 directory, plus a 3-digit number.
  Every identifier we found in public code has this shape (``11100000000013338W``
  is the Ministry of Housing and Urban-Rural Development, defining types 001,
  009, 011, 050, ...), so our profile requires it: the first 18 characters
  must be a valid USCC and the last 3 digits.
- issuer USCC: a valid USCC (18 characters).
- serial: our profile, 1-32 characters from ``0-9A-Z`` (real ones are
  numbers and 32-character hex UUIDs).
- version: 3 digits, ``001``..``999``.
- check character: ISO/IEC 7064 MOD 37,36 (hybrid system, M = 36, alphabet
  ``0-9A-Z`` worth 0-35) over type code + issuer + serial + version joined
  without dots: ``P = 36``; per character ``S = (P + value) mod 36`` (0 read
  as 36), ``P = 2S mod 37``; check value ``(37 - P) mod 36``. Checked against
  the ISO 7064 example ``A12425GABC1234002`` → ``M`` and against two
  identifiers of real certificates (the one above and
  ``...11100000000013338W009.11330105002500287C.2025052201.002.0``).
  It detects every single substitution. It does *not* detect every adjacent
  transposition: swapping two characters whose values differ by 1 (mod 36)
  goes unnoticed for one running state in 36, so a transposition is only
  guaranteed to be caught when the values differ by anything else.

"""

from __future__ import annotations

import functools
import re
import string
from dataclasses import dataclass
from typing import Final

from ledger.ids import (  # re-exported: identifiers are shared across the apps
    _DIGITS,
    CITIZEN_ID_WEIGHTS,
    USCC_ALPHABET,
    USCC_CATEGORIES,
    USCC_LENGTH,
    USCC_PATTERN,
    USCC_WEIGHTS,
    IdentifierError,
    _check_uscc,
    _fail,
    _first_bad,
    _normalise,
    _show,
    _uscc_ok,
    citizen_id_check_char,
    make_citizen_id,
    make_uscc,
    mask_citizen_id,
    mask_name,
    org_code_check_char,
    uscc_check_char,
    validate_citizen_id,
    validate_uscc,
)

__all__ = [
    "CERT_ID_ALPHABET",
    "CERT_ID_ROOT",
    "CITIZEN_ID_WEIGHTS",
    "SERIAL_LENGTH_MAX",
    "USCC_ALPHABET",
    "USCC_CATEGORIES",
    "USCC_WEIGHTS",
    "CertId",
    "IdentifierError",
    "citizen_id_check_char",
    "format_cert_id",
    "make_citizen_id",
    "make_uscc",
    "mask_citizen_id",
    "mask_name",
    "mod37_36_check_char",
    "org_code_check_char",
    "parse_cert_id",
    "uscc_check_char",
    "validate_citizen_id",
    "validate_type_code",
    "validate_uscc",
]

# --- E-certificate identifier (GB/T 36904-2018, SPEC §5) ---------------------------

CERT_ID_ROOT: Final = "1.2.156.3005.2"
CERT_ID_ALPHABET: Final = string.digits + string.ascii_uppercase
TYPE_CODE_LENGTH: Final = 21
SERIAL_LENGTH_MAX: Final = 32
VERSION_MAX: Final = 999
_VALUE36: Final = {char: i for i, char in enumerate(CERT_ID_ALPHABET)}
_CERT_ID_PARTS: Final = ("type code", "issuer USCC", "serial", "version", "check character")


@functools.lru_cache(maxsize=4096)
def mod37_36_check_char(data: str) -> str:
    """The ISO/IEC 7064 MOD 37,36 check character of ``data`` (characters 0-9A-Z).

    Memoised (pure; errors are raised afresh): executing an issue parses its identifier
    and then formats it again to check it is canonical — the second computation was a
    quarter of the ``cert.issue`` handler's time."""
    p = 36
    step = _MOD37_STEP
    try:
        for char in data:
            p = step[p][char]
    except KeyError:
        bad = _first_bad(data, _VALUE36)
        assert bad is not None
        _fail(
            f"MOD 37,36 input {_show(data)}",
            f"character {data[bad]!r} at position {bad + 1} is not allowed (0-9, A-Z)",
            "character",
        )
    return CERT_ID_ALPHABET[(37 - p) % 36]


# ISO/IEC 7064 MOD 37,36 as a transition table: from the running value p (1..36) and the
# next character's value v, the next p is 2 × ((p + v) mod 36, 0 written 36) mod 37.
_MOD37_STEP: Final[list[dict[str, int]]] = [{}] + [
    {char: 2 * ((p + v) % 36 or 36) % 37 for char, v in _VALUE36.items()} for p in range(1, 37)
]


def _check_type_code(subject: str, type_code: str) -> None:
    subject = f"{subject}: type code {_show(type_code)}"
    if len(type_code) != TYPE_CODE_LENGTH:
        _fail(
            subject,
            f"length is {len(type_code)}, expected 21 (definer's USCC + 3 digits)",
            "type code",
        )
    try:
        _check_uscc(type_code[:USCC_LENGTH])
    except IdentifierError as exc:
        _fail(subject, f"defining department's {exc}", "type code")
    number = type_code[USCC_LENGTH:]
    if _first_bad(number, _DIGITS) is not None:
        _fail(
            subject, f"type number {number!r} after the definer's USCC is not 3 digits", "type code"
        )


def validate_type_code(value: str) -> str:
    """A certificate type code (definer's USCC + 3 digits), normalised; or IdentifierError."""
    if not isinstance(value, str):
        raise TypeError(f"type code must be str, got {type(value).__name__}")
    normalised = _normalise(value)
    _check_type_code("certificate type", normalised)
    return normalised


def _check_serial(subject: str, serial: str) -> None:
    subject = f"{subject}: serial {_show(serial)}"
    if not 1 <= len(serial) <= SERIAL_LENGTH_MAX:
        _fail(subject, f"length is {len(serial)}, expected 1 to {SERIAL_LENGTH_MAX}", "serial")
    bad = _first_bad(serial, _VALUE36)
    if bad is not None:
        _fail(
            subject,
            f"character {serial[bad]!r} at position {bad + 1} is not allowed (0-9, A-Z)",
            "serial",
        )


def _check_parts(subject: str, type_code: str, issuer_uscc: str, serial: str, version: int) -> None:
    for name, part in (("type code", type_code), ("issuer USCC", issuer_uscc), ("serial", serial)):
        if not isinstance(part, str):
            raise TypeError(f"{name} must be str, got {type(part).__name__}")
    _check_type_code(subject, type_code)
    try:
        _check_uscc(issuer_uscc)
    except IdentifierError as exc:
        _fail(subject, f"issuer {exc}", "issuer USCC")
    _check_serial(subject, serial)
    if type(version) is not int or not 1 <= version <= VERSION_MAX:
        _fail(
            subject, f"version {version!r} is out of range, expected 1 to {VERSION_MAX}", "version"
        )


@dataclass(frozen=True, slots=True)
class CertId:
    """A valid e-certificate identifier, split into its parts; ``str()`` gives the dotted form.

    Construction validates every part (raising :class:`IdentifierError`), so a
    ``CertId`` always formats to an identifier that :func:`parse_cert_id`
    accepts. Parts must already be canonical (upper case, no whitespace);
    :func:`format_cert_id` normalises them first.
    """

    type_code: str
    issuer_uscc: str
    serial: str
    version: int

    def __post_init__(self) -> None:
        _check_parts(
            "certificate identifier parts",
            self.type_code,
            self.issuer_uscc,
            self.serial,
            self.version,
        )

    @property
    def check_char(self) -> str:
        """The MOD 37,36 check character over type code + issuer + serial + version."""
        return mod37_36_check_char(
            f"{self.type_code}{self.issuer_uscc}{self.serial}{self.version:03d}"
        )

    def __str__(self) -> str:
        return (
            f"{CERT_ID_ROOT}.{self.type_code}.{self.issuer_uscc}.{self.serial}"
            f".{self.version:03d}.{self.check_char}"
        )


def _checked_cert_id(type_code: str, issuer_uscc: str, serial: str, version: int) -> CertId:
    """A CertId from parts the caller has just checked with :func:`_check_parts` (which
    ``CertId()`` would run a second time, a third of parsing an identifier)."""
    cert_id = object.__new__(CertId)
    for name, part in (("type_code", type_code), ("issuer_uscc", issuer_uscc),
                       ("serial", serial), ("version", version)):
        object.__setattr__(cert_id, name, part)
    return cert_id


def format_cert_id(type_code: str, issuer_uscc: str, serial: str, version: int) -> str:
    """The identifier for these parts, with its check character; raises :class:`IdentifierError`."""
    return str(CertId(_normalise(type_code), _normalise(issuer_uscc), _normalise(serial), version))


_CERT_ID_SHAPE: Final = re.compile(
    re.escape(CERT_ID_ROOT)
    + rf"\.({USCC_PATTERN}[0-9]{{3}})\.({USCC_PATTERN})\.([0-9A-Z]{{1,{SERIAL_LENGTH_MAX}}})"
    r"\.([0-9]{3})\.([0-9A-Z])"
)


@functools.lru_cache(maxsize=4096)
def parse_cert_id(value: str) -> CertId:
    """Parse and validate an e-certificate identifier, or raise :class:`IdentifierError`.

    Memoised (a pure function returning a frozen value): a transaction's identifier is
    parsed by admission and by the handler on every node. A canonical, valid identifier
    takes a fast path (one regular expression, the USCCs' and the MOD 37,36 check
    characters); anything else is parsed part by part, which names what is wrong.
    Errors are raised afresh each time.
    """
    match = _CERT_ID_SHAPE.fullmatch(value) if type(value) is str else None
    if match is not None:
        type_code, issuer_uscc, serial, version_text, check = match.groups()
        data = f"{type_code}{issuer_uscc}{serial}{version_text}"
        if (version_text != "000" and _uscc_ok(type_code[:USCC_LENGTH]) and _uscc_ok(issuer_uscc)
                and check == mod37_36_check_char(data)):
            return _checked_cert_id(type_code, issuer_uscc, serial, int(version_text))
    return _parse_cert_id_detail(value)


def _parse_cert_id_detail(value: str) -> CertId:
    normalised = _normalise(value)
    subject = f"certificate identifier {_show(normalised)}"
    root = CERT_ID_ROOT + "."
    if not normalised.startswith(root):
        _fail(subject, f"does not start with the e-certificate root code {CERT_ID_ROOT}", "prefix")
    parts = normalised[len(root) :].split(".")
    if len(parts) != len(_CERT_ID_PARTS):
        _fail(
            subject,
            f"expected 5 dot-separated parts after {CERT_ID_ROOT} ({', '.join(_CERT_ID_PARTS)}),"
            f" found {len(parts)}",
            "layout",
        )
    type_code, issuer_uscc, serial, version_text, check = parts
    if (
        len(version_text) != 3
        or _first_bad(version_text, _DIGITS) is not None
        or version_text == "000"
    ):
        _fail(subject, f"version {version_text!r} is not 3 digits from 001 to 999", "version")
    _check_parts(subject, type_code, issuer_uscc, serial, int(version_text))
    cert_id = _checked_cert_id(type_code, issuer_uscc, serial, int(version_text))
    expected = cert_id.check_char
    if check != expected:
        _fail(subject, f"check character is {check!r}, expected {expected!r}", "check character")
    return cert_id
