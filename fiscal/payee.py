"""Personal data of payees: what reaches the ledger instead of a citizen's identifiers.

A payment to a person carries, in place of the ID number, its
``holder_hash`` (HMAC-SM3 under the consortium key, :mod:`ledger.privacy`)
so that all payments to one person can be found by whoever holds the key
and the number; the name only masked (``张**``); the ID masked
(``3501**********0016``); a bank account only as its HMAC; and, for the
audit office, the clear values sealed (SM4-GCM, ECIES style with SM2 ECDH;
:mod:`ledger.crypto.sealing`) to each auditor key. Only an auditor's private
key opens them; no node ever can.

The client builds these fields (:func:`person_payee`) before signing, so the
clear values never leave the finance officer's machine. Execution and
admission both refuse a payload whose free text looks like an ID number or a
bank account (a run of 15 or more digits) or whose name is not masked, since
whatever is in a transaction is in every node's block store for good.
"""

from __future__ import annotations

import re

from ledger import privacy
from ledger.codec import Value, decode_value, encode_value
from ledger.crypto import PrivateKey, Suite
from ledger.crypto.sealing import open_sealed, seal
from ledger.errors import CryptoError, DecodeError
from ledger.ids import mask_citizen_id, mask_name, validate_citizen_id
from ledger.privacy import holder_hash

SEAL_CONTEXT = b"govledger/fiscal/payee/v1"
SEALED_MAX = 8
BOX_BYTES_MAX = 1024
ACCOUNT_TAG = "bank-account:"
MASKED_ID_RE = re.compile(r"[0-9]{4}\*{7,10}[0-9]{3}[0-9X]")


def identifier_problem(value: Value, path: str = "payload", exempt: frozenset[str] = frozenset()
                       ) -> str | None:
    """:func:`ledger.privacy.identifier_problem`, naming what a payment carries instead."""
    return privacy.identifier_problem(
        value, path, exempt, hint="personal identifiers go on the ledger only as HMAC "
                                  "(payee_hash, account_hash) or sealed to the audit office")


def is_masked_name(name: str) -> bool:
    return bool(name) and "*" in name and mask_name(name) == name


def person_payee(suite: Suite, consortium_key: bytes, id_number: str, name: str,
                 auditor_keys: list[bytes], account: str | None = None) -> dict[str, Value]:
    """Payment payload fields for a person (see the module docstring).

    ``id_number`` is validated (GB 11643; IdentifierError says what is wrong);
    the clear values are sealed to every key in ``auditor_keys``.
    """
    normalised = validate_citizen_id(id_number)
    clear: dict[str, Value] = {"id_number": normalised, "name": name.strip()}
    fields: dict[str, Value] = {
        "payee_hash": holder_hash(suite, consortium_key, normalised),
        "payee_name": mask_name(name),
        "payee_id_masked": mask_citizen_id(normalised),
    }
    if account:
        digits = "".join(account.split())
        fields["account_hash"] = holder_hash(suite, consortium_key, ACCOUNT_TAG + digits)
        clear["bank_account"] = digits
    plaintext = encode_value(clear)
    fields["sealed"] = [{"to": key, "box": seal(suite, key, plaintext, SEAL_CONTEXT)}
                        for key in auditor_keys[:SEALED_MAX]]
    return fields


def open_payee(key: PrivateKey, sealed: list[dict[str, Value]]) -> dict[str, Value]:
    """The clear payee values from the box sealed to ``key``; CryptoError if there is none."""
    mine = key.public_key().raw
    for entry in sealed:
        box = entry.get("box")
        if entry.get("to") == mine and isinstance(box, bytes):
            plaintext = open_sealed(key, box, SEAL_CONTEXT)
            try:
                value = decode_value(plaintext)
            except DecodeError as exc:
                raise CryptoError(f"sealed payee data does not decode: {exc}") from None
            if not isinstance(value, dict):
                raise CryptoError("sealed payee data is not a map")
            return value
    raise CryptoError("this payment has no box sealed to this key")
