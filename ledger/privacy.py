"""Personal data: what may reach the ledger in place of a citizen's identifiers.

Citizen ID numbers, bank accounts and similar never appear on the ledger in
clear. For lookups the ledger stores ``holder_hash`` — HMAC with the suite
hash (HMAC-SM3 for ``sm``) under the *consortium key*, over a domain tag and
the normalised identifier. The consortium key is a 32-byte secret shared by
the member departments and their nodes (``consortium.key``, hex, mode 0600,
written by ``node.py init``) and never by the public: ID numbers come from a
small space, so an unkeyed hash would be reversed by trying them all. A
verifier never needs it — a certificate's holder is bound by the anchored
digest of the document, which contains the clear identifier.

Free text that a transaction carries (a payment's purpose, a suspension's reason) is
screened by :func:`identifier_problem`: whatever is in a transaction is in every node's
block store for good, so a run of digits as long as an ID number or a bank account is
refused at admission and again at execution.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from ledger.codec import Value
from ledger.crypto import Suite
from ledger.crypto.base import write_file_atomic
from ledger.errors import InputError

CONSORTIUM_KEY_FILE = "consortium.key"
KEY_BYTES = 32
_TAG = b"govledger/holder/v1\x00"
# ID numbers have 15 or 18 characters (the last may be X), bank cards 16 - 19 digits.
_DIGIT_RUN = re.compile(r"[0-9]{15,}[0-9Xx]?")


def new_consortium_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def save_consortium_key(path: str | os.PathLike[str], key: bytes) -> None:
    write_file_atomic(path, key.hex().encode() + b"\n", 0o600)


def load_consortium_key(path: str | os.PathLike[str]) -> bytes:
    """Read a consortium key file; InputError says what is wrong."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the consortium key {path}: {exc}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise InputError(f"{path}: the consortium key must be {2 * KEY_BYTES} hex digits") from None
    if len(key) != KEY_BYTES:
        raise InputError(f"{path}: the consortium key must be {KEY_BYTES} bytes")
    return key


def holder_hash(suite: Suite, consortium_key: bytes, identifier: str) -> bytes:
    """The lookup value stored instead of a personal identifier (normalise it first)."""
    if len(consortium_key) != KEY_BYTES:
        raise ValueError("the consortium key must be 32 bytes")
    return suite.hmac(consortium_key, _TAG + identifier.encode("utf-8"))


def identifier_problem(value: Value, path: str = "payload", exempt: frozenset[str] = frozenset(),
                       hint: str = "personal identifiers never go on the ledger in clear"
                       ) -> str | None:
    """Why ``value`` (a payload, or one field of it) may hold a clear personal identifier,
    or None. Every string is searched for a run of 15+ digits; the map fields named in
    ``exempt`` (already validated USCCs, identifiers) are skipped. ``hint`` ends the
    message: what the sender should put there instead."""
    if isinstance(value, str):
        match = _DIGIT_RUN.search(value)
        if match:
            return (f"{path} contains a run of {len(match.group())} digits, which looks like "
                    f"an ID number or bank account; {hint}")
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if key in exempt:
                continue
            problem = identifier_problem(item, f"{path}.{key}", exempt, hint)
            if problem:
                return problem
    if isinstance(value, list):
        for i, item in enumerate(value):
            problem = identifier_problem(item, f"{path}[{i}]", exempt, hint)
            if problem:
                return problem
    return None
