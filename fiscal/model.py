"""Fund flows: the records, their keys in state and index, and input validation.

Theory of operation
-------------------
Public money enters the ledger as an APPROPRIATION that creates a *fund*
named by a fund tag (资金标识, e.g. ``FJ2026-ZD-0001``), held by the
appropriating organisation. An ALLOCATION moves money from a fund to a
*child fund* held by a sub-unit (USCC + 9-digit fiscal region code); the
child's tag is the parent's plus ``.<n>`` (``FJ2026-ZD-0001.2.1``), so a tag
shows its lineage and the children of a fund are enumerable from its
``children`` count without any scan. A second allocation to the same
sub-unit tops up the same child fund. A PAYMENT moves money out of the tree
to a final payee (an enterprise by USCC, or a person by the HMAC of the ID
number); a RETURN sends money from a child fund back to its parent.

Every fund keeps five running sums in fen (integers; no floats anywhere):
``received`` (from its parent, or the appropriation), ``allocated`` (to its
children), ``paid`` (to payees), ``returned_in`` (from its children) and
``returned_out`` (to its parent). Its balance is
``received + returned_in - allocated - paid - returned_out`` and is never
negative; money leaves a tree only by payment, so over any tree
``sum(balance) + sum(paid) == appropriation``.

Authenticated state (canonical msgpack; provable against ``state_root``):

- ``fiscal/fund/<tag>``                  :class:`Fund`
- ``fiscal/child/<parent tag>\\0<USCC>``  tag of that sub-unit's child fund
- ``fiscal/seq``                         next flow sequence number
- ``fiscal/pp/<payer USCC>\\0<payee key>`` recent small payments (split rule)
- ``fiscal/voucher/<org USCC>\\0<voucher>`` flow id of the flow that recorded that
  accounting voucher (凭证号) of the organisation: a voucher is recorded once
- ``fiscal/alert…``, ``fiscal/idle…``, ``fiscal/prohibited``  see :mod:`fiscal.rules`

Index (derived lookup tables, written with the block; see
:mod:`ledger.execution`). ``<seq>`` is 8 bytes big-endian, so a prefix scan
returns flows in ledger order and costs the size of its answer:

- ``fiscal/x/flow/<flow id>``            the flow record (flow id = tx id)
- ``fiscal/x/out/<tag>\\0<seq>``          flows out of a fund (full record)
- ``fiscal/x/in/<tag>\\0<seq>``           flow ids into a fund
- ``fiscal/x/payee/<payee key>\\0<seq>``  flow ids of payments to one payee
- ``fiscal/x/root/<seq>``                root fund tags, in creation order
- ``fiscal/x/tot/fn/<function code>``    ``{count, amount}`` of payments
- ``fiscal/x/tot/rg/<region code>``      ``{count, amount}`` of payments

A payee key is ``U<USCC>`` for an organisation and ``H<hmac hex>`` for a
person. Dates are ``YYYY-MM-DD`` in China Standard Time (UTC+8); a block's
date is derived from its header time, never from a clock.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from datetime import date, timedelta

from ledger.codec import Value, decode, encode
from ledger.errors import CorruptionError, DecodeError, InputError, TxRejected
from ledger.execution import StateGet
from ledger.ids import IdentifierError, validate_uscc

APPROPRIATE_TX = "fiscal.appropriate"
ALLOCATE_TX = "fiscal.allocate"
PAY_TX = "fiscal.pay"
RETURN_TX = "fiscal.return"
TX_TYPES = (APPROPRIATE_TX, ALLOCATE_TX, PAY_TX, RETURN_TX)
KINDS = {APPROPRIATE_TX: "APPROPRIATION", ALLOCATE_TX: "ALLOCATION", PAY_TX: "PAYMENT",
         RETURN_TX: "RETURN"}

AMOUNT_MAX = 10**16  # fen: one hundred trillion yuan, far below 2**63
DEPTH_MAX = 12  # province → city → district → … ; bounds every walk up a tree
TEXT_MAX = 200
ROOT_TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,47}")
TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,47}(\.[1-9][0-9]{0,5}){0,12}")
REGION_RE = re.compile(r"[1-9][0-9]{8}")
FLOW_ID_RE = re.compile(r"[0-9a-fA-F]{64}")
TAG_RULE = "letters, digits, '-' and '_', with '.<n>' per level, e.g. FJ2026-ZD-0001.2"
# 政府收支分类科目, functional classification: 类 (3 digits), 款 (5), 项 (7); spending is 2xx.
FUNCTION_CODE_RE = re.compile(r"2[0-9]{2}(?:[0-9]{2}){0,2}")
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# An accounting voucher number (凭证号) as the organisation's books write it: letters,
# digits and CJK characters, with - _ / . # ( ) inside (记-2026-0012, 付字第0031号). One
# spelling only — no spaces, no full-width forms (clients fold those) — so a voucher
# cannot be recorded twice under two spellings. A fixed character set, not a Unicode
# normalisation, so every node judges it alike whatever its Python's Unicode tables.
VOUCHER_MAX = 64
VOUCHER_RE = re.compile(r"[0-9A-Za-z\u4e00-\u9fff](?:[0-9A-Za-z\u4e00-\u9fff_/.#()-]{0,62}"
                        r"[0-9A-Za-z\u4e00-\u9fff)])?")
VOUCHER_RULE = (f"an accounting voucher number of at most {VOUCHER_MAX} characters: letters, "
                "digits and Chinese characters, with - _ / . # ( ) between them "
                "(e.g. 记-2026-0012)")

CST_OFFSET_MS = 8 * 3600 * 1000
DAY_MS = 86_400_000
_EPOCH = date(1970, 1, 1)

FUND_PREFIX = b"fiscal/fund/"
CHILD_PREFIX = b"fiscal/child/"
SEQ_KEY = b"fiscal/seq"
PAIR_PREFIX = b"fiscal/pp/"
VOUCHER_PREFIX = b"fiscal/voucher/"
IX_FLOW = b"fiscal/x/flow/"
IX_OUT = b"fiscal/x/out/"
IX_IN = b"fiscal/x/in/"
IX_PAYEE = b"fiscal/x/payee/"
IX_ROOT = b"fiscal/x/root/"
IX_TOTAL_FN = b"fiscal/x/tot/fn/"
IX_TOTAL_REGION = b"fiscal/x/tot/rg/"


# -- keys -----------------------------------------------------------------------------------


def seq_bytes(seq: int) -> bytes:
    return struct.pack(">Q", seq)


def fund_key(tag: str) -> bytes:
    return FUND_PREFIX + tag.encode()


def child_key(parent: str, uscc: str) -> bytes:
    return CHILD_PREFIX + parent.encode() + b"\0" + uscc.encode()


def pair_key(payer: str, payee: str) -> bytes:
    return PAIR_PREFIX + payer.encode() + b"\0" + payee.encode()


def voucher_key(org: str, voucher: str) -> bytes:
    return VOUCHER_PREFIX + org.encode() + b"\0" + voucher.encode()


def out_prefix(tag: str) -> bytes:
    return IX_OUT + tag.encode() + b"\0"


def in_prefix(tag: str) -> bytes:
    return IX_IN + tag.encode() + b"\0"


def payee_prefix(payee: str) -> bytes:
    return IX_PAYEE + payee.encode() + b"\0"


def payee_key_for_uscc(uscc: str) -> str:
    return "U" + uscc


def payee_key_for_hash(holder_hash: bytes) -> str:
    return "H" + holder_hash.hex()


def child_tag(parent: str, n: int) -> str:
    return f"{parent}.{n}"


def parent_of(tag: str) -> str | None:
    return tag.rsplit(".", 1)[0] if "." in tag else None


# -- the fund record ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fund:
    """One node of a fund tree (see the module docstring for the sums)."""

    tag: str
    root: str
    parent: str | None
    depth: int
    holder: str  # USCC of the holding organisation
    holder_name: str
    region: str  # 9-digit fiscal region code
    year: int
    doc_no: str
    function_code: str
    project: str
    project_end: str
    direct: bool  # 直达资金: direct funds, with prohibited uses
    approved_day: int  # CST day of the appropriation's block
    received: int
    allocated: int
    paid: int
    returned_in: int
    returned_out: int
    children: int
    created_height: int
    created_time: int
    last_move_day: int  # CST day of the last flow in or out (idle rule)

    @property
    def balance(self) -> int:
        return (self.received + self.returned_in - self.allocated - self.paid
                - self.returned_out)


def get_fund(state_get: StateGet, tag: str) -> Fund | None:
    raw = state_get(fund_key(tag))
    return None if raw is None else decode_fund(tag, raw)


def decode_fund(tag: str, raw: bytes) -> Fund:
    """The fund record stored under ``fund_key(tag)``; CorruptionError if unreadable."""
    try:
        return decode(raw, Fund)
    except DecodeError as exc:
        raise CorruptionError(f"fund record {tag} is unreadable: {exc}") from None


def encode_fund(fund: Fund) -> bytes:
    assert fund.balance >= 0, f"fund {fund.tag} would go negative"
    return encode(fund)


def fund_view(fund: Fund) -> dict[str, Value]:
    """The fund as an API value, with its balance."""
    return {
        "tag": fund.tag, "root": fund.root, "parent": fund.parent, "depth": fund.depth,
        "holder": fund.holder, "holder_name": fund.holder_name, "region": fund.region,
        "year": fund.year, "doc_no": fund.doc_no, "function_code": fund.function_code,
        "project": fund.project, "project_end": fund.project_end, "direct": fund.direct,
        "approved_date": date_of_day(fund.approved_day), "received": fund.received,
        "allocated": fund.allocated, "paid": fund.paid, "returned_in": fund.returned_in,
        "returned_out": fund.returned_out, "balance": fund.balance, "children": fund.children,
        "created_height": fund.created_height, "created_time": fund.created_time,
        "last_move_date": date_of_day(fund.last_move_day),
    }


def ancestors(state_get: StateGet, fund: Fund) -> list[Fund]:
    """The fund and every fund above it, nearest first (at most DEPTH_MAX + 1)."""
    path = [fund]
    while path[-1].parent is not None and len(path) <= DEPTH_MAX:
        parent = get_fund(state_get, path[-1].parent)
        if parent is None:
            raise CorruptionError(f"fund {path[-1].tag} names a missing parent")
        path.append(parent)
    return path


# -- dates --------------------------------------------------------------------------------


def block_day(time_ms: int) -> int:
    """The China Standard Time calendar day (days since 1970-01-01) of a block time."""
    return (time_ms + CST_OFFSET_MS) // DAY_MS


def day_of(text: str) -> int:
    return (date.fromisoformat(text) - _EPOCH).days


def date_of_day(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).isoformat()


# -- money ----------------------------------------------------------------------------------


def yuan(fen: int) -> str:
    """``123456789`` → ``¥1,234,567.89`` (integer arithmetic only)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


def money(fen: int) -> str:
    """How reasons state an amount: ``1234567 fen (¥12,345.67)``."""
    return f"{fen} fen ({yuan(fen)})"


# -- payload validation (raise TxRejected naming the field) -----------------------------------


def check_fields(payload: dict[str, Value], required: set[str], optional: set[str]) -> None:
    missing = sorted(required - set(payload))
    if missing:
        raise TxRejected(f"payload is missing {', '.join(missing)}")
    unknown = sorted(set(payload) - required - optional)
    if unknown:
        raise TxRejected(f"unknown payload field(s): {', '.join(unknown)}")


def amount_field(payload: dict[str, Value], name: str = "amount") -> int:
    value = payload.get(name)
    if type(value) is not int or not 0 < value <= AMOUNT_MAX:
        raise TxRejected(f"payload.{name} must be an integer number of fen in 1..{AMOUNT_MAX}")
    return value


def text_field(payload: dict[str, Value], name: str, max_len: int = TEXT_MAX,
               required: bool = True) -> str:
    value = payload.get(name, None if required else "")
    if not isinstance(value, str) or len(value) > max_len or (required and not value.strip()):
        need = "a non-empty string" if required else "a string"
        raise TxRejected(f"payload.{name} must be {need} of at most {max_len} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise TxRejected(f"payload.{name} must not contain control characters")
    return value.strip()


def voucher_field(payload: dict[str, Value]) -> str | None:
    """The optional ``voucher`` (凭证号), checked against :data:`VOUCHER_RE`; None if absent."""
    if "voucher" not in payload:
        return None
    value = payload["voucher"]
    if not isinstance(value, str) or not VOUCHER_RE.fullmatch(value):
        raise TxRejected(f"payload.voucher must be {VOUCHER_RULE}")
    return value


def date_field(payload: dict[str, Value], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not DATE_RE.fullmatch(value):
        raise TxRejected(f"payload.{name} must be a date YYYY-MM-DD")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise TxRejected(f"payload.{name} {value!r} is not a calendar date") from None
    return value


def check_tag(text: str) -> str:
    """``text`` if it is a fund tag, else InputError saying what one is (for queries: the
    node's routes, the SDK and the CLI check it before a tag goes into a URL path)."""
    if not TAG_RE.fullmatch(text):
        raise InputError(f"{text!r} is not a fund tag ({TAG_RULE})")
    return text


def check_flow_id(text: str, what: str = "a payment id") -> str:
    """``text`` if it is a flow's id (the 64 hex digits of its transaction id), else
    InputError."""
    if not FLOW_ID_RE.fullmatch(text):
        raise InputError(f"{what} is 64 hex digits (the transaction id), got {text!r}")
    return text


def tag_field(payload: dict[str, Value], name: str, root: bool = False) -> str:
    value = payload.get(name)
    pattern = ROOT_TAG_RE if root else TAG_RE
    if not isinstance(value, str) or not pattern.fullmatch(value):
        what = ("a fund tag of 1-48 letters, digits, '-' or '_'" if root else
                "a fund tag (e.g. FJ2026-ZD-0001 or FJ2026-ZD-0001.2)")
        raise TxRejected(f"payload.{name} must be {what}")
    return value


def uscc_field(payload: dict[str, Value], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str):
        raise TxRejected(f"payload.{name} must be a USCC (18 characters)")
    try:
        return validate_uscc(value)
    except IdentifierError as exc:
        raise TxRejected(f"payload.{name}: {exc}") from None


def region_field(payload: dict[str, Value], name: str = "region") -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not REGION_RE.fullmatch(value):
        raise TxRejected(f"payload.{name} must be a 9-digit fiscal region code "
                         "(e.g. 350102000)")
    return value


def function_code_field(payload: dict[str, Value], name: str = "function_code") -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not FUNCTION_CODE_RE.fullmatch(value):
        raise TxRejected(f"payload.{name} must be a functional classification code of 3, 5 "
                         "or 7 digits starting with 2 (e.g. 2050202)")
    return value


def digest_field(payload: dict[str, Value], name: str) -> bytes | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, bytes) or not 16 <= len(value) <= 64:
        raise TxRejected(f"payload.{name} must be a 16..64-byte digest")
    return value


def normalise_region(text: str) -> str:
    """A 6-digit administrative division code is widened to the 9-digit fiscal code."""
    text = text.strip()
    return text + "000" if len(text) == 6 and text.isascii() and text.isdigit() else text
