"""The payer's side: flow payloads built from what an officer types, and their stateless checks.

Theory of operation
-------------------
``govledger fund appropriate|allocate|pay|return`` and ``govledger import
flows`` both turn text (command-line arguments, CSV cells) into the payload
of a flow transaction. The text parsers here (:func:`parse_fen`,
:func:`parse_yuan`, :func:`parse_date`, :func:`parse_digest`) raise
``ValueError`` with a message fit for the user; the builders
(:func:`appropriation`, :func:`allocation`, :func:`payment`,
:func:`return_flow`) normalise (regions, USCCs) and leave optional fields out
when empty. :func:`payload_problem` then applies the handlers' own field
validators (:mod:`fiscal.model`) to a payload, so a malformed row is caught
before it is signed, with the same words the ledger would use. What depends
on the state — balances, who holds a fund, roles — only the ledger decides.

Amounts are integers of fen throughout; yuan text is split at the decimal
point and never goes through a float. Pure functions: no IO.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Final

from fiscal.model import (
    ALLOCATE_TX,
    AMOUNT_MAX,
    APPROPRIATE_TX,
    PAY_TX,
    RETURN_TX,
    amount_field,
    check_fields,
    date_field,
    digest_field,
    function_code_field,
    normalise_region,
    region_field,
    tag_field,
    text_field,
    uscc_field,
    voucher_field,
)
from ledger.codec import Value
from ledger.errors import TxRejected

_FEN_RE: Final = re.compile(r"[0-9]{1,17}")
_YUAN_RE: Final = re.compile(r"([0-9]{1,15})(?:\.([0-9]{1,2}))?")
_DATE_RE: Final = re.compile(r"([0-9]{4})[-/]([0-9]{1,2})[-/]([0-9]{1,2})")

# What each flow's handler accepts (required, optional), as in fiscal.handlers.
FIELDS: Final[dict[str, tuple[frozenset[str], frozenset[str]]]] = {
    APPROPRIATE_TX: (frozenset({"tag", "amount", "year", "doc_no", "function_code", "project",
                                "project_end"}),
                     frozenset({"direct", "region", "memo", "voucher"})),
    ALLOCATE_TX: (frozenset({"from", "to_org", "region", "amount"}),
                  frozenset({"memo", "voucher"})),
    PAY_TX: (frozenset({"from", "amount", "purpose", "function_code", "value_date"}),
             frozenset({"payee_uscc", "payee_hash", "payee_name", "payee_id_masked",
                        "account_hash", "sealed", "contract_digest", "invoice_digest",
                        "memo", "voucher"})),
    RETURN_TX: (frozenset({"from", "amount"}), frozenset({"memo", "voucher"})),
}


# -- text → values ------------------------------------------------------------------------------


def parse_fen(text: str) -> int:
    """A positive whole number of fen (¥1.00 = 100)."""
    text = text.strip()
    if not _FEN_RE.fullmatch(text) or not 0 < int(text) <= AMOUNT_MAX:
        raise ValueError(f"amount {text!r} is not a positive whole number of fen "
                         "(¥1.00 = 100)")
    return int(text)


def parse_yuan(text: str) -> int:
    """Yuan with at most two decimals (``1200``, ``1,200.5``, ``¥1,200.50``) → fen."""
    raw = text.strip()
    cleaned = raw.lstrip("¥￥").replace(",", "").strip()
    match = _YUAN_RE.fullmatch(cleaned)
    if match is None:
        raise ValueError(f"amount {raw!r} is not yuan with at most 2 decimals "
                         "(e.g. 1200.50)")
    whole, cents = match.group(1), (match.group(2) or "").ljust(2, "0")
    fen = int(whole) * 100 + int(cents)
    if not 0 < fen <= AMOUNT_MAX:
        raise ValueError(f"amount {raw!r} must be more than 0 and at most "
                         f"{AMOUNT_MAX // 100} yuan")
    return fen


def parse_date(text: str) -> str:
    """A calendar date, ``YYYY-MM-DD`` (``YYYY/M/D`` as spreadsheets write it is accepted)."""
    raw = text.strip()
    match = _DATE_RE.fullmatch(raw)
    if match is None:
        raise ValueError(f"date {raw!r} is not YYYY-MM-DD")
    try:
        return date(*(int(part) for part in match.groups())).isoformat()
    except ValueError:
        raise ValueError(f"date {raw!r} is not a calendar date") from None


def normalise_voucher(text: str) -> str:
    """A voucher number as typed, in the one spelling the ledger accepts: surrounding
    spaces dropped, full-width letters, digits and signs (Ａ１－) folded to ASCII. The
    ledger compares vouchers exactly; this keeps 记－0012 and 记-0012 one voucher."""
    folded = "".join(chr(ord(c) - 0xFEE0) if "\uff01" <= c <= "\uff5e" else c
                     for c in text.replace("\u3000", " "))
    return folded.strip()


def parse_digest(text: str) -> bytes:
    """A document digest in hex, 16 to 64 bytes."""
    try:
        value = bytes.fromhex(text.strip())
    except ValueError:
        raise ValueError(f"digest {text!r} is not hex") from None
    if not 16 <= len(value) <= 64:
        raise ValueError(f"a digest is 16..64 bytes, got {len(value)}")
    return value


# -- payloads -------------------------------------------------------------------------------


def _with_memo(payload: dict[str, Value], memo: str, voucher: str = "") -> dict[str, Value]:
    if memo:
        payload["memo"] = memo
    if voucher:
        payload["voucher"] = normalise_voucher(voucher)
    return payload


def appropriation(*, tag: str, amount: int, year: int, doc_no: str, function_code: str,
                  project: str, project_end: str, direct: bool, region: str | None = None,
                  memo: str = "", voucher: str = "") -> dict[str, Value]:
    payload: dict[str, Value] = {
        "tag": tag, "amount": amount, "year": year, "doc_no": doc_no,
        "function_code": function_code, "project": project, "project_end": project_end,
        "direct": direct}
    if region:
        payload["region"] = normalise_region(region)
    return _with_memo(payload, memo, voucher)


def allocation(*, source: str, to_org: str, region: str, amount: int, memo: str = "",
               voucher: str = "") -> dict[str, Value]:
    return _with_memo({"from": source, "to_org": to_org.strip().upper(),
                       "region": normalise_region(region), "amount": amount}, memo, voucher)


def payment(*, source: str, amount: int, purpose: str, function_code: str, value_date: str,
            payee_uscc: str | None = None, payee_name: str | None = None,
            contract_digest: bytes | None = None, invoice_digest: bytes | None = None,
            memo: str = "", voucher: str = "") -> dict[str, Value]:
    """A payment; to an organisation with ``payee_uscc``. A payment to a person adds the
    fields of :func:`fiscal.payee.person_payee` (HMACs, masked name, sealed boxes)."""
    payload: dict[str, Value] = {"from": source, "amount": amount, "purpose": purpose,
                                 "function_code": function_code, "value_date": value_date}
    if payee_uscc:
        payload["payee_uscc"] = payee_uscc.strip().upper()
        if payee_name:
            payload["payee_name"] = payee_name
    if contract_digest:
        payload["contract_digest"] = contract_digest
    if invoice_digest:
        payload["invoice_digest"] = invoice_digest
    return _with_memo(payload, memo, voucher)


def return_flow(*, source: str, amount: int, memo: str = "", voucher: str = ""
                ) -> dict[str, Value]:
    return _with_memo({"from": source, "amount": amount}, memo, voucher)


# -- stateless checks -----------------------------------------------------------------------


def payload_problem(tx_type: str, payload: dict[str, Value]) -> str | None:
    """What the ledger would reject in this payload before looking at any state, or None.

    A payment to a person is checked without its person fields when they are not yet
    there (they are computed with the consortium key just before signing)."""
    required, optional = FIELDS[tx_type]
    try:
        check_fields(payload, set(required), set(optional))
        amount_field(payload)
        text_field(payload, "memo", required=False)
        voucher_field(payload)
        if tx_type == APPROPRIATE_TX:
            tag_field(payload, "tag", root=True)
            year = payload["year"]
            if type(year) is not int or not 2000 <= year <= 2100:
                return "payload.year must be a fiscal year between 2000 and 2100"
            text_field(payload, "doc_no", 64)
            function_code_field(payload)
            text_field(payload, "project")
            date_field(payload, "project_end")
            if "region" in payload:
                region_field(payload)
            return None
        tag_field(payload, "from")
        if tx_type == ALLOCATE_TX:
            uscc_field(payload, "to_org")
            region_field(payload)
        elif tx_type == PAY_TX:
            text_field(payload, "purpose")
            function_code_field(payload)
            date_field(payload, "value_date")
            digest_field(payload, "contract_digest")
            digest_field(payload, "invoice_digest")
            if "payee_uscc" in payload:
                uscc_field(payload, "payee_uscc")
                text_field(payload, "payee_name", 100, required=False)
    except TxRejected as exc:
        return str(exc)
    return None
