"""What the ledger holds about certificates: records, state keys and the rules read from them.

Theory of operation
-------------------
Everything a verifier needs to judge a certificate lives in the
authenticated state (so a node's answer is provable against a certified
``state_root``), as canonical msgpack of the dataclasses below:

==========================================  =========================================
``certs/type/<type code>``                  :class:`CertType`: name, allowed holder
                                            code types, schema of type-specific fields
``certs/issuer/<type code>/<issuer USCC>``  :class:`IssuerAuth`: the height periods in
                                            which that organisation may issue the type
``certs/recognition/<type>/<agency USCC>``  :class:`Recognition`: "agency accepts type
                                            from issuers S" (mutual recognition)
``certs/recognition-next``                  the next agreement number
``certs/cert/<identifier>``                 :class:`CertRecord`: one version of one
                                            certificate with its status history
``certs/held/<holder>/<type code>``         the latest version of each certificate of
                                            that type the holder has (list of identifiers)
==========================================  =========================================

A record holds SPEC §5 fields only: identifier, type, issuer, validity,
version, supersedes / superseded_by, status history, the SM3 digest of the
canonical document and the holder code — a legal person's USCC in clear, a
natural person's ID number only as ``holder_hash`` (HMAC-SM3 under the
consortium key, :mod:`ledger.privacy`), hex. ``signer`` is the issuer key that
sent the issuing transaction; the document's signature must verify under it.

Authorisation changes take effect from the block *after* the one in which
the committee decides them, so "authorised at height h" has one meaning even
for transactions in the deciding block: a period ``[from_height,
until_height)`` covers the heights at which the issuer may act. Periods are
never deleted, so one state proof of the current record answers "was this
issuer authorised when it issued the certificate?".

Statuses are VALID, SUSPENDED, REVOKED and SUPERSEDED (renewed); EXPIRED is
never stored — it is computed from the validity dates, which are calendar
dates in China Standard Time (UTC+8, no daylight saving).

``certs/held`` makes "which certificates does this holder have?" a question
of the authenticated state, answerable inside execution (the fiscal red-flag
rule on payees' business licences) and provable. One derived index (not
authenticated, rebuilt by re-execution) lists recent issues:
``certs/recent/<height 8 bytes BE><identifier>``.
"""

from __future__ import annotations

import re
import struct
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final, TypeVar, cast

from ledger.codec import decode, decode_value, encode, encode_value
from ledger.errors import CorruptionError, DecodeError
from ledger.execution import StateGet

T = TypeVar("T")

TYPE_PREFIX: Final = b"certs/type/"
ISSUER_PREFIX: Final = b"certs/issuer/"
RECOGNITION_PREFIX: Final = b"certs/recognition/"
RECOGNITION_NEXT_KEY: Final = b"certs/recognition-next"
CERT_PREFIX: Final = b"certs/cert/"
HELD_PREFIX: Final = b"certs/held/"
RECENT_INDEX: Final = b"certs/recent/"

VALID, SUSPENDED, REVOKED, SUPERSEDED = "VALID", "SUSPENDED", "REVOKED", "SUPERSEDED"
STATUSES: Final = (VALID, SUSPENDED, REVOKED, SUPERSEDED)
EXPIRED, NOT_YET_VALID = "EXPIRED", "NOT_YET_VALID"  # computed from dates, never stored
LEGAL_PERSON, NATURAL_PERSON = "001", "111"  # holder code types (USCC, citizen ID)
HOLDER_CODE_TYPES: Final = (LEGAL_PERSON, NATURAL_PERSON)
LONG_TERM: Final = "长期"  # valid_until of a certificate without an end date
FIELD_NAME_RE: Final = r"[a-z][a-z0-9_]{0,31}"  # type-specific field names
HISTORY_MAX: Final = 64  # suspensions and reinstatements stop here; revoke or renew always fit
HELD_MAX: Final = 100  # certificates of one type one holder may have at a time
CST_OFFSET_MS: Final = 8 * 3600 * 1000
DAY_MS: Final = 24 * 3600 * 1000
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_EPOCH: Final = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One type-specific field of a certificate type (values are strings)."""

    name: str
    label: str
    required: bool


@dataclass(frozen=True, slots=True)
class CertType:
    code: str
    name: str
    holder_code_types: list[str]
    fields: list[FieldSpec]
    registered_height: int


@dataclass(frozen=True, slots=True)
class AuthPeriod:
    from_height: int
    until_height: int | None  # exclusive; None while the authorisation lasts


@dataclass(frozen=True, slots=True)
class IssuerAuth:
    type: str
    issuer: str
    periods: list[AuthPeriod]

    def authorised_at(self, height: int) -> bool:
        return any(p.from_height <= height and (p.until_height is None or height < p.until_height)
                   for p in self.periods)

    @property
    def current(self) -> bool:
        return bool(self.periods) and self.periods[-1].until_height is None


@dataclass(frozen=True, slots=True)
class Recognition:
    """Agreement number ``number``: ``agency`` accepts certificates of ``type`` from ``issuers``."""

    number: int
    agency: str
    type: str
    issuers: list[str]
    note: str
    recorded_height: int
    withdrawn_height: int | None

    @property
    def label(self) -> str:
        return f"R{self.number}"


@dataclass(frozen=True, slots=True)
class StatusEvent:
    event: str  # issue | renew | suspend | reinstate | revoke | supersede
    status: str  # the status from this event on
    height: int
    time: int  # block time, ms UTC
    reason: str
    by: bytes  # the issuer key that sent the transaction


@dataclass(frozen=True, slots=True)
class CertRecord:
    id: str
    type: str
    issuer: str
    version: int
    valid_from: str
    valid_until: str  # a date or LONG_TERM
    holder: str  # USCC (001) or hex HMAC-SM3 of the citizen ID number (111)
    holder_code_type: str
    digest: bytes  # suite hash of the canonical document bytes
    signer: bytes  # issuer key whose signature the document carries
    issued_height: int
    issued_time: int
    supersedes: str
    superseded_by: str
    status: str
    history: list[StatusEvent]

    def validate(self) -> None:
        if self.status not in STATUSES or not self.history:
            raise DecodeError("certificate record has an unknown status or no history")

    def status_at(self, time_ms: int) -> str | None:
        """The stored status at block time ``time_ms`` (None: not yet issued then)."""
        status = None
        for event in self.history:
            if event.time > time_ms:
                break
            status = event.status
        return status


# -- keys ---------------------------------------------------------------------------------


def type_key(code: str) -> bytes:
    return TYPE_PREFIX + code.encode()


def issuer_key(type_code: str, issuer: str) -> bytes:
    return ISSUER_PREFIX + f"{type_code}/{issuer}".encode()


def recognition_prefix(type_code: str) -> bytes:
    return RECOGNITION_PREFIX + f"{type_code}/".encode()


def recognition_key(type_code: str, agency: str) -> bytes:
    return recognition_prefix(type_code) + agency.encode()


def cert_key(cert_id: str) -> bytes:
    return CERT_PREFIX + cert_id.encode()


def held_prefix(holder: str) -> bytes:
    return HELD_PREFIX + holder.encode() + b"/"


def held_key(holder: str, type_code: str) -> bytes:
    return held_prefix(holder) + type_code.encode()


def recent_index_key(height: int, cert_id: str) -> bytes:
    return RECENT_INDEX + struct.pack(">Q", height) + cert_id.encode()


# -- reading ------------------------------------------------------------------------------


def decode_record(raw: bytes, cls: type[T]) -> T:
    """Decode a stored value (DecodeError for bytes that are not a ``cls``)."""
    return decode(raw, cls)


# Decoded registry records (types, authorisations, agreements) by their exact bytes: every
# issue reads the same few, and decoding them was a tenth of a node's CPU under load. The
# records are frozen and never changed in place (updates write new bytes), so sharing one
# decoded object between readers is safe; the key is the stored bytes, so a change is
# never served stale.
_CACHED = (CertType, IssuerAuth, Recognition)
_decoded: OrderedDict[tuple[type, bytes], object] = OrderedDict()
_DECODED_MAX = 4096


def _read(state_get: StateGet, key: bytes, cls: type[T]) -> T | None:
    raw = state_get(key)
    if raw is None:
        return None
    cached = cls in _CACHED
    if cached:
        hit = _decoded.get((cls, raw))
        if hit is not None:
            _decoded.move_to_end((cls, raw))
            return cast(T, hit)
    try:
        value = decode(raw, cls)
    except DecodeError as exc:
        raise CorruptionError(f"{key!r} in state is unreadable: {exc}") from None
    if cached:
        _decoded[(cls, raw)] = value
        if len(_decoded) > _DECODED_MAX:
            _decoded.popitem(last=False)
    return value


def get_type(state_get: StateGet, code: str) -> CertType | None:
    return _read(state_get, type_key(code), CertType)


def get_issuer_auth(state_get: StateGet, type_code: str, issuer: str) -> IssuerAuth | None:
    return _read(state_get, issuer_key(type_code, issuer), IssuerAuth)


def get_recognition(state_get: StateGet, type_code: str, agency: str) -> Recognition | None:
    return _read(state_get, recognition_key(type_code, agency), Recognition)


def get_cert(state_get: StateGet, cert_id: str) -> CertRecord | None:
    return _read(state_get, cert_key(cert_id), CertRecord)


def get_held(state_get: StateGet, holder: str, type_code: str) -> list[str]:
    """Identifiers of the latest versions of ``holder``'s certificates of ``type_code``."""
    raw = state_get(held_key(holder, type_code))
    if raw is None:
        return []
    value = decode_value(raw)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CorruptionError(f"held certificates of {holder} are unreadable")
    return [v for v in value if isinstance(v, str)]


def encode_held(ids: list[str]) -> bytes:
    return encode_value(list(ids))


def encode_record(record: object) -> bytes:
    return encode(record)


# -- dates ----------------------------------------------------------------------------------


def parse_date(text: object, what: str) -> date:
    """A ``YYYY-MM-DD`` calendar date; DecodeError naming ``what`` otherwise."""
    if not isinstance(text, str) or not _DATE_RE.fullmatch(text):
        raise DecodeError(f"{what} must be a date YYYY-MM-DD, got {text!r}")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise DecodeError(f"{what} {text!r} is not a calendar date") from None


def check_validity_dates(valid_from: object, valid_until: object) -> None:
    """DecodeError unless from is a date and until is LONG_TERM or a date not before it."""
    start = parse_date(valid_from, "valid_from")
    if valid_until == LONG_TERM:
        return
    end = parse_date(valid_until, f"valid_until (or {LONG_TERM!r} for long-term)")
    if end < start:
        raise DecodeError(f"valid_until {valid_until} is before valid_from {valid_from}")


def cst_date(time_ms: int) -> date:
    """The calendar date in China Standard Time (UTC+8) at ``time_ms``."""
    return _EPOCH + timedelta(days=(time_ms + CST_OFFSET_MS) // DAY_MS)


def cst_midnight_ms(day: date) -> int:
    """00:00 China Standard Time of ``day``, in ms UTC."""
    return (day - _EPOCH).days * DAY_MS - CST_OFFSET_MS


def date_status(valid_from: str, valid_until: str, time_ms: int) -> str:
    """VALID if ``time_ms`` falls in the validity window (inclusive dates), else why not."""
    today = cst_date(time_ms)
    if today < date.fromisoformat(valid_from):
        return NOT_YET_VALID
    if valid_until != LONG_TERM and today > date.fromisoformat(valid_until):
        return EXPIRED
    return VALID


def effective_status(record: CertRecord, time_ms: int) -> str:
    """What to show at ``time_ms``: the stored status, or EXPIRED / NOT_YET_VALID by date."""
    stored = record.status_at(time_ms) or NOT_YET_VALID
    if stored != VALID:
        return stored
    return date_status(record.valid_from, record.valid_until, time_ms)
