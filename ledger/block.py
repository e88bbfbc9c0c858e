"""Blocks, execution results, validator sets and commit certificates.

A block is a header plus the ordered transactions of one committed PBFT
batch. The header (SPEC §4) commits to everything about the block:

- ``tx_root``: RFC 9162 Merkle root over the canonical encodings of the
  transactions, in block order;
- ``result_root``: RFC 9162 root over the canonical encodings of the
  per-transaction :class:`TxResult` records, same order;
- ``state_root``: the sparse-Merkle root of the whole state after the block;
- ``validator_set_hash``: hash of the validator set that must certify it.

The block hash is the suite hash of the header's canonical encoding.

A :class:`CommitCertificate` holds the COMMIT signatures of a quorum of the
block's validator set over ``(chain_id, view, height, block_hash)`` under the
tag ``govledger/commit/v1`` — the same bytes a replica signs in its PBFT COMMIT
vote, so the votes that decided the block are its proof. All the signatures
of one certificate are from one view, the certificate's ``view``. That is
PBFT's committed-local rule (2f+1 COMMITs *matching in view*), and it is what
makes a certificate unforgeable by a faulty validator: without the view, the
COMMITs an honest replica sends in different views for a block that never
committed (it prepared the block in view 1, the block was re-proposed and
prepared by another replica in view 3, and meanwhile another block committed
at that height in view 4) could be collected into a second "certificate" for
the same height. SPEC §4 names ``(chain_id, height, block_hash)``; the view is
added for this reason.

Quorum: with n validators the replica set tolerates f = (n-1) // 3 faulty
members, and a quorum is ceil((n + f + 1) / 2) — which is 2f + 1 when
n = 3f + 1 and is still large enough for any two quorums to share an honest
member when n is not of that form (e.g. 4 of 5).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ledger.codec import Value, encode, encode_value, encoded_once, spliced_array, spliced_map
from ledger.crypto import Suite
from ledger.errors import DecodeError, SignatureError
from ledger.merkle import root
from ledger.tx import Transaction

COMMIT_PURPOSE = "commit"
HASH_LEN = 32
ZERO_HASH = bytes(HASH_LEN)


def max_faulty(n: int) -> int:
    """f: the number of Byzantine members a set of n tolerates."""
    assert n >= 1
    return (n - 1) // 3


def quorum_size(n: int) -> int:
    """Smallest vote count such that any two quorums intersect in >= f+1 members."""
    f = max_faulty(n)
    return (n + f + 2) // 2


@dataclass(frozen=True, slots=True)
class Validator:
    name: str
    public_key: bytes
    address: str  # host:port of the node's peer endpoint; not part of the set hash


@dataclass(frozen=True, slots=True)
class ValidatorSet:
    validators: list[Validator]

    def validate(self) -> None:
        keys = [v.public_key for v in self.validators]
        if not keys:
            raise DecodeError("a validator set needs at least one validator")
        if len(set(keys)) != len(keys):
            raise DecodeError("a validator set lists the same public key twice")

    @property
    def size(self) -> int:
        return len(self.validators)

    @property
    def f(self) -> int:
        return max_faulty(len(self.validators))

    @property
    def quorum(self) -> int:
        return quorum_size(len(self.validators))

    def public_keys(self) -> list[bytes]:
        return [v.public_key for v in self.validators]

    def index_of(self, public_key: bytes) -> int | None:
        for i, v in enumerate(self.validators):
            if v.public_key == public_key:
                return i
        return None

    def set_hash(self, suite: Suite) -> bytes:
        """Hash of the ordered public keys (order fixes who is primary of which view)."""
        return _set_hash(suite, tuple(self.public_keys()))


@functools.lru_cache(maxsize=64)
def _set_hash(suite: Suite, keys: tuple[bytes, ...]) -> bytes:
    return suite.hash(encode_value({"validators": list(keys)}))


@dataclass(frozen=True, slots=True)
class BlockHeader:
    height: int
    prev_hash: bytes
    tx_root: bytes
    result_root: bytes
    state_root: bytes
    time: int
    view: int
    proposer: bytes
    validator_set_hash: bytes

    def validate(self) -> None:
        for name in ("prev_hash", "tx_root", "result_root", "state_root", "validator_set_hash"):
            if len(getattr(self, name)) != HASH_LEN:
                raise DecodeError(f"header.{name} must be {HASH_LEN} bytes")
        if self.height < 0 or self.time < 0 or self.view < 0:
            raise DecodeError("header height, time and view must not be negative")

    def block_hash(self, suite: Suite) -> bytes:
        return suite.hash(encode(self))


@dataclass(frozen=True, slots=True)
class Block:
    header: BlockHeader
    txs: list[Transaction]

    def encoded(self) -> bytes:
        """``encode(self)``, with each transaction's memoised bytes spliced in: a
        canonical map is its header then its sorted keys and values, and an array its
        header then its items, so the block needs no second walk over its transactions."""
        return spliced_map({"header": encode(self.header),
                            "txs": spliced_array([tx.encoded() for tx in self.txs])})


@dataclass(frozen=True, slots=True)
class TxResult:
    """What executing one transaction did. ``code`` is "ok" or a short error code."""

    tx_id: bytes
    ok: bool
    code: str
    reason: str
    data: dict[str, Value]
    # Memoised encoding: the result root hashes it and the store writes it.
    _encoded: bytes | None = field(default=None, init=False, repr=False, compare=False,
                                   metadata={"codec": False})

    def encoded(self) -> bytes:
        return encoded_once(self)


@dataclass(frozen=True, slots=True)
class CommitSignature:
    validator: bytes  # the validator's public key
    sig: bytes


@dataclass(frozen=True, slots=True)
class CommitCertificate:
    height: int
    view: int  # the PBFT view all the signatures were made in
    block_hash: bytes
    signatures: list[CommitSignature]


def older_certificate_hint(problem: object) -> str:
    """A hint to add to a decoding error that is a commit certificate without its view —
    a proof made by a govledger from before certificates named one, which is refused."""
    text = str(problem)
    if "certificate" in text and "missing field 'view'" in text:
        return (" (made by an older govledger, whose commit certificates did not name their "
                "view and are no longer accepted: get a new proof from any node)")
    return ""


def tx_root(suite: Suite, txs: Sequence[Transaction]) -> bytes:
    return root(suite.hash, [tx.encoded() for tx in txs])


def result_root(suite: Suite, results: Sequence[TxResult]) -> bytes:
    return root(suite.hash, [r.encoded() for r in results])


def commit_message(chain_id: str, view: int, height: int, block_hash: bytes) -> bytes:
    """The bytes a COMMIT vote signs (before the domain tag)."""
    return encode_value({"chain_id": chain_id, "view": view, "height": height,
                         "block_hash": block_hash})


def certificate_signatures(
    suite: Suite, chain_id: str, header: BlockHeader, cert: CommitCertificate
) -> list[tuple[bytes, str, bytes, bytes]]:
    """The (key, purpose, message, sig) checks :func:`verify_certificate` will make for
    ``cert`` on ``header``, so a caller can run them ahead, elsewhere (a worker process)."""
    message = commit_message(chain_id, cert.view, header.height, header.block_hash(suite))
    return [(s.validator, COMMIT_PURPOSE, message, s.sig) for s in cert.signatures]


def verify_certificate(
    suite: Suite,
    chain_id: str,
    header: BlockHeader,
    cert: CommitCertificate,
    validators: ValidatorSet,
    sig_ok: Callable[[bytes, str, bytes, bytes], bool] | None = None,
) -> None:
    """Check that ``cert`` proves ``header`` was committed by ``validators``.

    ``sig_ok(key, purpose, message, sig)`` checks one signature; by default
    ``suite.verify`` (a caller with a cache of signatures checked elsewhere — a
    worker process — passes its own).

    Raises SignatureError naming the first problem: wrong height or hash,
    a signer outside the set, a repeated signer, a bad signature, or fewer
    than a quorum of valid distinct signers.
    """
    if header.validator_set_hash != validators.set_hash(suite):
        raise SignatureError(
            f"height {header.height}: header names a different validator set than expected"
        )
    block_hash = header.block_hash(suite)
    if cert.height != header.height or cert.block_hash != block_hash:
        raise SignatureError(f"height {header.height}: certificate is for a different block")
    message = commit_message(chain_id, cert.view, header.height, block_hash)
    members = set(validators.public_keys())
    seen: set[bytes] = set()
    for s in cert.signatures:
        if s.validator not in members:
            raise SignatureError(f"height {header.height}: signer is not a validator of the set")
        if s.validator in seen:
            raise SignatureError(f"height {header.height}: a validator signed twice")
        if not (sig_ok or suite.verify)(s.validator, COMMIT_PURPOSE, message, s.sig):
            raise SignatureError(f"height {header.height}: a commit signature does not verify")
        seen.add(s.validator)
    if len(seen) < validators.quorum:
        raise SignatureError(
            f"height {header.height}: {len(seen)} valid commit signatures, "
            f"{validators.quorum} needed"
        )
