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
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ledger.crypto import Suite
from ledger.crypto.base import write_file_atomic
from ledger.errors import InputError

CONSORTIUM_KEY_FILE = "consortium.key"
KEY_BYTES = 32
_TAG = b"govledger/holder/v1\x00"


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
