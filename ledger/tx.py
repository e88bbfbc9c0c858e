"""Transactions: the signed envelope every change to the ledger arrives in.

A transaction is ``chain_id, type, payload, sender, nonce, valid_until`` (the
*body*) plus ``sig``, the sender's signature over the body's canonical bytes
under the domain tag ``govledger/tx/v1``.

The transaction id is the suite hash of the body's canonical encoding — the
canonical encoding of the transaction without its signature. Leaving the
signature out is deliberate: SM2 signatures are randomised and a DER
signature could in principle be re-encoded, so an id that covered the
signature would let the same signed intent appear under two ids. With the id
over the body, "the same id is never executed twice" means the same intent is
never executed twice; a client that really wants to repeat an action picks a
new ``nonce``.

``valid_until`` is a block-time bound (ms since the epoch, UTC): a block with
``time > valid_until`` cannot include the transaction. Together with the
duplicate-id rule it bounds replays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from ledger.codec import Value, encode_value, encoded_once, repack
from ledger.crypto import PrivateKey, Suite
from ledger.errors import DecodeError

TX_PURPOSE = "tx"
TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
CHAIN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PAYLOAD_BYTES_MAX = 64 * 1024
TX_BYTES_MAX = PAYLOAD_BYTES_MAX + 1024
SIG_BYTES_MAX = 128
SENDER_BYTES_MAX = 128


@dataclass(frozen=True, slots=True)
class Transaction:
    chain_id: str
    type: str
    payload: dict[str, Value]
    sender: bytes
    nonce: int
    valid_until: int
    sig: bytes = field(default=b"")
    # Memoised body bytes and id: every node hashes and checks each transaction several
    # times (admission, gossip, proposal, execution). Not part of the encoding; safe
    # because a transaction is never changed after it is built (``replace`` makes a
    # new one, with an empty memo).
    _body: bytes | None = field(default=None, init=False, repr=False, compare=False,
                                metadata={"codec": False})
    _id: tuple[Suite, bytes] | None = field(default=None, init=False, repr=False,
                                            compare=False, metadata={"codec": False})
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False,
                                   metadata={"codec": False})

    # The codec hands back the instance it decoded before from an equal value (see
    # ledger.codec._dataclass_converter): keyed by the signature, compared in full.
    __codec_intern__ = "sig"

    def __codec_decoded__(self, value: dict[str, Value]) -> None:
        """Memoise the bytes of a transaction decoded from canonical bytes (the codec calls
        this with the plain value, before :meth:`validate`): its encoding and its body's are
        that value re-packed, with and without ``sig`` — no walk over the payload."""
        object.__setattr__(self, "_encoded", repack(value))
        object.__setattr__(self, "_body", repack({k: v for k, v in value.items() if k != "sig"}))

    def validate(self) -> None:
        """Shape checks that need no state (called by the codec on decode)."""
        if not CHAIN_ID_RE.fullmatch(self.chain_id):
            raise DecodeError(f"tx.chain_id {self.chain_id!r} is not a valid chain id")
        if not TYPE_RE.fullmatch(self.type) or len(self.type) > 64:
            raise DecodeError(
                f"tx.type {self.type!r} must look like 'app.action' (lowercase, dotted)"
            )
        if not 0 < len(self.sender) <= SENDER_BYTES_MAX:
            raise DecodeError("tx.sender must be the sender's public key")
        if not 0 <= self.nonce < 2**64:
            raise DecodeError("tx.nonce must be an unsigned 64-bit integer")
        if not 0 <= self.valid_until < 2**63:
            raise DecodeError("tx.valid_until must be a time in ms since the epoch")
        if len(self.sig) > SIG_BYTES_MAX:
            raise DecodeError("tx.sig is too long")
        # The payload's encoding is part of the body's, so a small body needs no second look.
        if (len(self.body_bytes()) > PAYLOAD_BYTES_MAX
                and len(encode_value(self.payload)) > PAYLOAD_BYTES_MAX):
            raise DecodeError(f"tx.payload exceeds {PAYLOAD_BYTES_MAX} bytes")

    def body(self) -> dict[str, Value]:
        return {
            "chain_id": self.chain_id,
            "type": self.type,
            "payload": self.payload,
            "sender": self.sender,
            "nonce": self.nonce,
            "valid_until": self.valid_until,
        }

    def body_bytes(self) -> bytes:
        """The exact bytes the signature covers (before the domain tag) and the id hashes."""
        body = self._body
        if body is None:
            body = encode_value(self.body())
            object.__setattr__(self, "_body", body)
        return body

    def tx_id(self, suite: Suite) -> bytes:
        memo = self._id
        if memo is not None and memo[0] is suite:
            return memo[1]
        tx_id = suite.hash(self.body_bytes())
        object.__setattr__(self, "_id", (suite, tx_id))
        return tx_id

    def signature_ok(self, suite: Suite) -> bool:
        return suite.verify(self.sender, TX_PURPOSE, self.body_bytes(), self.sig)

    def encoded(self) -> bytes:
        """The canonical bytes of the whole transaction (memoised: blocks splice them)."""
        return encoded_once(self)


def make_tx(
    key: PrivateKey,
    chain_id: str,
    tx_type: str,
    payload: dict[str, Value],
    nonce: int,
    valid_until: int,
) -> Transaction:
    """Build and sign a transaction (used by clients, tests and the demo)."""
    unsigned = Transaction(
        chain_id=chain_id,
        type=tx_type,
        payload=payload,
        sender=key.public_key().raw,
        nonce=nonce,
        valid_until=valid_until,
    )
    unsigned.validate()
    return replace(unsigned, sig=key.sign(TX_PURPOSE, unsigned.body_bytes()))
