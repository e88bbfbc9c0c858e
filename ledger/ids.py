"""Validators and builders for the identifiers every part of govledger handles (SPEC §5).

Theory of operation
===================

Two identifiers arrive from outside and are checked before anything else
looks at them: the USCC of an organisation and the citizen ID number of a
person (e-certificate identifiers are in :mod:`certs.ids`). Each validator normalises its input
(surrounding whitespace stripped, ASCII letters upper-cased; no other
character is mapped, so a look-alike such as ``'ſ'`` never becomes ``'S'``),
checks it part by part from the outside in, and either returns the canonical
string or raises :class:`IdentifierError`, whose message names the part that
is wrong and what was expected, e.g. ``USCC 91350100M000100Y4X: check
character is 'X', expected '3'``. Nothing else is ever raised for a ``str``
argument. Everything here is a pure function of its arguments: no IO, no clock
(the "not in the future" check on a birth date needs an explicit ``as_of``),
no randomness.

USCC, 统一社会信用代码 (GB 32100-2015)
-------------------------------------

18 characters from ``0-9A-Z`` without I, O, S, V, Z (31 characters)::

    9 1 350100 M000100Y4 3
    | | |      |         `- check character (GB 32100 §5, MOD 31)
    | | |      `- 主体标识码 = organisation code (GB 11714), its 9th character
    | | |         being the GB 11714 check character
    | | `- 登记管理机关行政区划码: administrative division code (GB/T 2260), 6 digits
    | `- 机构类别代码: organisation category, defined per registration authority
    `- 登记管理部门代码: registration authority

Check character: with ``value`` the index in ``0123456789ABCDEFGHJKLMNPQRTUWXY``
and weights ``3**i mod 31`` = 1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8,
24, 10, 30, 28 for positions 1..17, the check value is ``31 - (Σ value×weight
mod 31)`` with 31 written as 0, i.e. ``-Σ mod 31``. Because 31 is prime,
every weight is non-zero and consecutive weights differ by a factor of 3,
every single substitution and every transposition of two adjacent characters
(the check character included) changes the sum mod 31 and is detected.

Inner check (GB 11714-1997): over the first 8 characters of the organisation
code, with digits worth 0-9 and A-Z worth 10-35, and weights 3, 7, 9, 10, 5,
8, 4, 2, the check is ``11 - (Σ mod 11)``, written ``X`` for 10 and ``0`` for
11. GB 32100 takes the 主体标识码 from GB 11714, so every real USCC satisfies
it; we enforce it and name it in the error ("GB 11714 check character"),
because a USCC that passes the outer check but fails this one was made up.

Registration authority / category pairs (GB 32100 table, with the later
additions A and N): see :data:`USCC_CATEGORIES`. The division code is only
checked to be 6 digits: GB/T 2260 renames and retires codes every year, and a
USCC keeps the code it was issued with for life.

Citizen ID number, 公民身份号码 (GB 11643-1999)
-----------------------------------------------

18 characters: address code (6 digits, GB/T 2260), birth date ``YYYYMMDD``
(8 digits), sequence (3 digits; odd for men, even for women), check character
(a digit or ``X``). The check is ISO/IEC 7064 MOD 11-2 (GB/T 17710): weights
``2**(17-i) mod 11`` = 7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2 and
check value ``(12 - (Σ mod 11)) mod 11``, 10 written ``X``. Since consecutive
weights differ by a factor of 2 mod the prime 11 and digit values differ by
at most 10, every single substitution and every adjacent transposition
(jump transpositions too) is detected. We require a real calendar date, year
1900 or later, not after ``as_of`` when given, and an address code that does
not start with 0. We do not look the address code up in GB/T 2260, for the
reason given above and because the residence permits of Hong Kong, Macao and
Taiwan residents (810000, 820000, 830000) and the 2023 foreigners' permanent
residence ID (starting with 9) share this layout and check.

Sources: GB 32100-2015, GB 11714-1997, GB 11643-1999, ISO/IEC 7064:2003
(GB/T 17710-2008), GB/T 36904-2018; the check algorithms agree with
python-stdnum (``stdnum.cn.uscc``, ``stdnum.cn.ric``, ``stdnum.iso7064``),
which the tests use as an independent cross-check when it is installed.
"""

from __future__ import annotations

import functools
import operator
import re
import string
import unicodedata
from collections.abc import Mapping
from datetime import date
from typing import Any, Final, NoReturn

from ledger.errors import InputError

__all__ = [
    "CITIZEN_ID_WEIGHTS",
    "USCC_ALPHABET",
    "USCC_CATEGORIES",
    "USCC_PATTERN",
    "USCC_WEIGHTS",
    "IdentifierError",
    "citizen_id_check_char",
    "make_citizen_id",
    "make_uscc",
    "mask_citizen_id",
    "mask_name",
    "org_code_check_char",
    "uscc_check_char",
    "validate_citizen_id",
    "validate_uscc",
]


class IdentifierError(InputError):
    """An identifier is malformed; ``str(exc)`` names the wrong part and what was expected.

    ``part`` is a short, stable name of that part (``"check character"``,
    ``"birth date"``, ``"issuer USCC"``, ...) for callers that map an error to
    a form field.
    """

    def __init__(self, message: str, *, part: str) -> None:
        super().__init__(message)
        self.part = part

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep ``part`` when the error crosses a process boundary (pickle).
        return (_rebuild_error, (type(self), str(self), self.part))


def _rebuild_error(cls: type[IdentifierError], message: str, part: str) -> IdentifierError:
    return cls(message, part=part)


# --- Shared helpers --------------------------------------------------------------

_DIGITS: Final = frozenset(string.digits)
_ASCII_UPPER: Final = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)
_SHOW_CHARS_MAX: Final = 100


def _normalise(value: str) -> str:
    """Strip surrounding whitespace and upper-case ASCII letters only."""
    if not isinstance(value, str):
        raise TypeError(f"expected str, got {type(value).__name__}")
    return value.strip().translate(_ASCII_UPPER)


def _show(value: str) -> str:
    """``value`` as it should appear in an error message: plain if tame, else repr, clipped."""
    clipped = value[:_SHOW_CHARS_MAX]
    tame = clipped != "" and clipped.isascii() and clipped.isprintable() and " " not in clipped
    shown = clipped if tame else repr(clipped)
    return shown + ("…" if len(value) > _SHOW_CHARS_MAX else "")


def _fail(subject: str, detail: str, part: str) -> NoReturn:
    raise IdentifierError(f"{subject}: {detail}", part=part)


def _first_bad(value: str, allowed: Mapping[str, int] | frozenset[str]) -> int | None:
    """Index of the first character of ``value`` not in ``allowed``, or None."""
    for i, char in enumerate(value):
        if char not in allowed:
            return i
    return None


# --- USCC (GB 32100-2015) -----------------------------------------------------------

USCC_LENGTH: Final = 18
USCC_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS: Final = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
assert tuple(pow(3, i, 31) for i in range(17)) == USCC_WEIGHTS
_USCC_VALUE: Final = {char: i for i, char in enumerate(USCC_ALPHABET)}

#: registration authority code → (authority, {organisation category code → category}).
USCC_CATEGORIES: Final[Mapping[str, tuple[str, Mapping[str, str]]]] = {
    "1": (
        "机构编制",
        {"1": "机关", "2": "事业单位", "3": "中央编办直接管理机构编制的群众团体", "9": "其他"},
    ),
    "2": ("外交", {"1": "外国常驻新闻机构", "9": "其他"}),
    "3": (
        "司法行政",
        {
            "1": "律师执业机构",
            "2": "公证处",
            "3": "基层法律服务所",
            "4": "司法鉴定机构",
            "5": "仲裁委员会",
            "9": "其他",
        },
    ),
    "4": ("文化", {"1": "外国在华文化中心", "9": "其他"}),
    "5": ("民政", {"1": "社会团体", "2": "民办非企业单位", "3": "基金会", "9": "其他"}),
    "6": (
        "旅游",
        {
            "1": "外国旅游部门常驻代表机构",
            "2": "港澳台地区旅游部门常驻内地（大陆）代表机构",
            "9": "其他",
        },
    ),
    "7": ("宗教", {"1": "宗教活动场所", "2": "宗教院校", "9": "其他"}),
    "8": ("工会", {"1": "基层工会", "9": "其他"}),
    "9": ("工商", {"1": "企业", "2": "个体工商户", "3": "农民专业合作社"}),
    "A": ("中央军委改革和编制办公室", {"1": "军队事业单位", "9": "其他"}),
    "N": (
        "农业",
        {"1": "组级集体经济组织", "2": "村级集体经济组织", "3": "乡镇级集体经济组织", "9": "其他"},
    ),
    "Y": ("其他", {"1": "其他"}),
}

ORG_CODE_WEIGHTS: Final = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_VALUE: Final = {char: i for i, char in enumerate(string.digits + string.ascii_uppercase)}
#: GB 11714 check character by ``Σ mod 11``: ``11 - Σ mod 11``, 10 written X and 11 written 0.
_ORG_CHECK: Final = tuple({10: "X", 11: "0"}.get(11 - r, str(11 - r)) for r in range(11))


def uscc_check_char(body17: str) -> str:
    """The GB 32100 check character for the first 17 characters of a USCC."""
    subject = f"USCC body {_show(body17)}"
    if len(body17) != USCC_LENGTH - 1:
        _fail(subject, f"length is {len(body17)}, expected 17", "length")
    bad = _first_bad(body17, _USCC_VALUE)
    if bad is not None:
        _fail(
            subject, f"character {body17[bad]!r} at position {bad + 1} is not allowed", "character"
        )
    total = sum(
        _USCC_VALUE[char] * weight for char, weight in zip(body17, USCC_WEIGHTS, strict=True)
    )
    return USCC_ALPHABET[-total % 31]


def org_code_check_char(body8: str) -> str:
    """The GB 11714 check character for the first 8 characters of an organisation code."""
    subject = f"organisation code body {_show(body8)}"
    if len(body8) != len(ORG_CODE_WEIGHTS):
        _fail(subject, f"length is {len(body8)}, expected 8", "length")
    bad = _first_bad(body8, _ORG_VALUE)
    if bad is not None:
        _fail(
            subject, f"character {body8[bad]!r} at position {bad + 1} is not allowed", "character"
        )
    total = sum(
        _ORG_VALUE[char] * weight for char, weight in zip(body8, ORG_CODE_WEIGHTS, strict=True)
    )
    return _ORG_CHECK[total % 11]


#: A USCC's shape as a regular expression: the alphabet, and the division code's 6 digits.
USCC_PATTERN: Final = "[0-9A-HJ-NP-RTUW-Y]{2}[0-9]{6}[0-9A-HJ-NP-RTUW-Y]{10}"
_USCC_SHAPE: Final = re.compile(USCC_PATTERN)
_USCC_PREFIXES: Final = frozenset(
    authority + category
    for authority, (_, categories) in USCC_CATEGORIES.items()
    for category in categories
)


@functools.lru_cache(maxsize=4096)
def _uscc_ok(value: str) -> bool:
    """Is ``value`` (already normalised) a valid USCC? The fast, messageless twin of
    :func:`_check_uscc_detail`: one regular expression for the alphabet and the digits,
    then both check characters. Never true where the detailed check would raise
    (a property test holds the two together)."""
    if _USCC_SHAPE.fullmatch(value) is None or value[:2] not in _USCC_PREFIXES:
        return False
    org = sum(map(operator.mul, map(_ORG_VALUE.__getitem__, value[8:16]), ORG_CODE_WEIGHTS))
    if value[16] != _ORG_CHECK[org % 11]:
        return False
    total = sum(map(operator.mul, map(_USCC_VALUE.__getitem__, value[:17]), USCC_WEIGHTS))
    return value[17] == USCC_ALPHABET[-total % 31]


def _check_uscc(value: str) -> None:
    """Raise unless ``value`` (already normalised) is a valid USCC.

    Every issue checks two or three (issuer, type definer, holder), so a valid one takes
    the fast path and only an invalid one is walked again to say what is wrong."""
    if type(value) is str and _uscc_ok(value):
        return
    _check_uscc_detail(value)


def _check_uscc_detail(value: str) -> None:
    subject = f"USCC {_show(value)}"
    if len(value) != USCC_LENGTH:
        _fail(subject, f"length is {len(value)}, expected 18", "length")
    bad = _first_bad(value, _USCC_VALUE)
    if bad is not None:
        _fail(
            subject,
            f"character {value[bad]!r} at position {bad + 1} is not allowed"
            " (a USCC uses 0-9 and A-Z without I, O, S, V, Z)",
            "character",
        )
    authority, category = value[0], value[1]
    if authority not in USCC_CATEGORIES:
        known = ", ".join(USCC_CATEGORIES)
        _fail(
            subject,
            f"registration authority code {authority!r} is not defined by GB 32100"
            f" (expected one of {known})",
            "registration authority",
        )
    authority_name, categories = USCC_CATEGORIES[authority]
    if category not in categories:
        _fail(
            subject,
            f"organisation category {category!r} is not defined for registration authority"
            f" {authority!r} ({authority_name}); expected one of {', '.join(categories)}",
            "organisation category",
        )
    division = value[2:8]
    if _first_bad(division, _DIGITS) is not None:
        _fail(
            subject, f"administrative division code {division!r} is not 6 digits", "division code"
        )
    org_code = value[8:17]
    expected = org_code_check_char(org_code[:8])
    if org_code[8] != expected:
        _fail(
            subject,
            f"organisation code {org_code}: GB 11714 check character is {org_code[8]!r},"
            f" expected {expected!r}",
            "organisation code check",
        )
    expected = uscc_check_char(value[:17])
    if value[17] != expected:
        _fail(
            subject, f"check character is {value[17]!r}, expected {expected!r}", "check character"
        )


def validate_uscc(value: str) -> str:
    """Return the canonical form of the USCC ``value``, or raise :class:`IdentifierError`."""
    normalised = _normalise(value)
    _check_uscc(normalised)
    return normalised


def make_uscc(authority: str, category: str, division: str, org_code8: str) -> str:
    """Build a valid USCC from its parts, computing both check characters (for sample data).

    ``org_code8`` is the first 8 characters of the organisation code; its GB
    11714 check character and the USCC check character are appended.
    """
    parts = [_normalise(part) for part in (authority, category, division, org_code8)]
    subject = "USCC parts " + "/".join(_show(part) for part in parts)
    if [len(part) for part in parts] != [1, 1, 6, 8]:
        _fail(subject, "expected 1 + 1 + 6 + 8 characters", "length")
    body16 = "".join(parts)
    bad = _first_bad(body16, _USCC_VALUE)
    if bad is not None:
        _fail(subject, f"character {body16[bad]!r} is not allowed in a USCC", "character")
    body17 = body16 + org_code_check_char(parts[3])
    return validate_uscc(body17 + uscc_check_char(body17))


# --- Citizen ID number (GB 11643-1999) ---------------------------------------------

CITIZEN_ID_LENGTH: Final = 18
CITIZEN_ID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
assert tuple(pow(2, 17 - i, 11) for i in range(17)) == CITIZEN_ID_WEIGHTS
BIRTH_YEAR_MIN: Final = 1900


def citizen_id_check_char(body17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for the first 17 digits of a citizen ID number."""
    subject = f"citizen ID body {_show(body17)}"
    if len(body17) != CITIZEN_ID_LENGTH - 1:
        _fail(subject, f"length is {len(body17)}, expected 17", "length")
    bad = _first_bad(body17, _DIGITS)
    if bad is not None:
        _fail(
            subject, f"character {body17[bad]!r} at position {bad + 1} is not a digit", "character"
        )
    total = sum(int(char) * weight for char, weight in zip(body17, CITIZEN_ID_WEIGHTS, strict=True))
    check = (12 - total % 11) % 11
    return "X" if check == 10 else str(check)


def validate_citizen_id(value: str, as_of: date | None = None) -> str:
    """Return the canonical form of citizen ID number ``value``; raise :class:`IdentifierError`.

    The birth date must be a calendar date in 1900 or later and, when ``as_of``
    is given, not after it. Without ``as_of`` no future check is made: this
    module reads no clock.
    """
    normalised = _normalise(value)
    subject = f"citizen ID {_show(normalised)}"
    if len(normalised) != CITIZEN_ID_LENGTH:
        detail = f"length is {len(normalised)}, expected 18"
        if len(normalised) == 15 and _first_bad(normalised, _DIGITS) is None:
            detail += " (a 15-digit first-generation number must first be converted to 18 digits)"
        _fail(subject, detail, "length")
    bad = _first_bad(normalised[:17], _DIGITS)
    if bad is not None:
        _fail(
            subject,
            f"character {normalised[bad]!r} at position {bad + 1} is not allowed"
            " (positions 1-17 are digits)",
            "character",
        )
    check = normalised[17]
    if check not in _DIGITS and check != "X":
        _fail(
            subject,
            f"check character {check!r} is not allowed (expected a digit or 'X')",
            "character",
        )
    address = normalised[:6]
    if address[0] == "0":
        _fail(
            subject,
            f"address code {address} does not start with a province code (1-9)",
            "address code",
        )
    _check_birth_date(subject, normalised[6:14], as_of)
    expected = citizen_id_check_char(normalised[:17])
    if check != expected:
        _fail(subject, f"check character is {check!r}, expected {expected!r}", "check character")
    return normalised


def _check_birth_date(subject: str, yyyymmdd: str, as_of: date | None) -> None:
    try:
        birth = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    except ValueError:
        _fail(subject, f"birth date {yyyymmdd} is not a calendar date", "birth date")
    if birth.year < BIRTH_YEAR_MIN:
        _fail(subject, f"birth date {yyyymmdd} is before {BIRTH_YEAR_MIN}", "birth date")
    if as_of is not None and birth > as_of:
        _fail(
            subject,
            f"birth date {yyyymmdd} is after the as-of date {as_of.isoformat()}",
            "birth date",
        )


def make_citizen_id(address6: str, birth: date, seq3: str) -> str:
    """Build a valid citizen ID number, computing its check character (for sample data)."""
    address, seq = _normalise(address6), _normalise(seq3)
    subject = f"citizen ID parts {_show(address)}/{birth.isoformat()}/{_show(seq)}"
    if len(address) != 6 or _first_bad(address, _DIGITS) is not None:
        _fail(subject, "address code must be 6 digits", "address code")
    if len(seq) != 3 or _first_bad(seq, _DIGITS) is not None:
        _fail(subject, "sequence must be 3 digits", "sequence")
    body17 = f"{address}{birth.year:04d}{birth.month:02d}{birth.day:02d}{seq}"
    return validate_citizen_id(body17 + citizen_id_check_char(body17))


def mask_citizen_id(value: str) -> str:
    """Mask a citizen ID number for display: ``5001**********123X``.

    The first 4 and last 4 characters stay when at least 15 characters are
    given (the two real lengths, 18 and the old 15); anything shorter is all
    stars, so a fragment is never shown nearly whole. Input is not validated.
    """
    normalised = _normalise(value)
    if len(normalised) < 15:
        return "*" * len(normalised)
    return normalised[:4] + "*" * (len(normalised) - 8) + normalised[-4:]


_NAME_SEPARATORS: Final = frozenset(" ·•‧・.-'")


def mask_name(name: str) -> str:
    """Mask a person's name for display: ``张三丰`` → ``张**``, ``张三`` → ``张*``.

    The first character stays and every later character becomes one ``*``.
    Separators (spaces, the middle dot of transcribed names, ``.``, ``-``,
    ``'``) stay, so ``John Smith`` → ``J*** *****`` and ``买买提·艾力`` →
    ``买**·**``. A one-character name becomes ``*``: showing it would show it
    all. Whitespace is collapsed and the name is NFC-normalised first, so a
    decomposed accent does not earn a star of its own.
    """
    if not isinstance(name, str):
        raise TypeError(f"expected str, got {type(name).__name__}")
    chars = unicodedata.normalize("NFC", " ".join(name.split()))
    if len(chars) <= 1:
        return "*" * len(chars)
    return chars[0] + "".join(c if c in _NAME_SEPARATORS else "*" for c in chars[1:])
