"""PBFT protocol messages and their canonical, signed wire form.

Every message is a frozen dataclass whose last two fields are ``sender`` (the
validator's raw public key) and ``sig``. The signature covers
``encode_value({"kind": <kind>, **fields except sig})`` under the domain tag
``govledger/pbft/v1``, so a message of one kind can never pass as another.

A COMMIT is the exception: its one signature is over exactly
``ledger.block.commit_message(chain_id, view, height, digest)`` under
``govledger/commit/v1`` (:func:`sign_commit`, :func:`signed_bytes`), because
the commit certificate stored with a block is the list of these. It covers
everything the replica counts COMMITs by — view, height, digest — so a second,
message-level signature would add nothing but an SM2 signing and two checks
per block at every replica.

On the wire a message is ``encode_value({"kind": kind, "msg": fields})``;
:func:`decode_message` rejects unknown kinds, non-canonical bytes and any
field of the wrong type (``DecodeError``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from ledger.block import COMMIT_PURPOSE, Block, CommitCertificate, commit_message
from ledger.codec import (
    decode_value,
    encode,
    encode_value,
    from_value,
    spliced_array,
    spliced_map,
    to_value,
)
from ledger.crypto import PrivateKey
from ledger.errors import DecodeError
from ledger.tx import Transaction

PURPOSE = "pbft"
MESSAGE_BYTES_MAX = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PrePrepare:
    view: int
    height: int
    block: Block
    sender: bytes
    sig: bytes = b""


@dataclass(frozen=True, slots=True)
class Prepare:
    view: int
    height: int
    digest: bytes
    sender: bytes
    sig: bytes = b""


@dataclass(frozen=True, slots=True)
class Commit:
    """COMMIT(v, n, d); ``sig`` is the commit-certificate signature (module docstring)."""

    view: int
    height: int
    digest: bytes
    sender: bytes
    sig: bytes = b""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    height: int
    state_root: bytes
    digest: bytes
    sender: bytes
    sig: bytes = b""


@dataclass(frozen=True, slots=True)
class PreparedCert:
    """A pre-prepare and a quorum-minus-one of matching prepares from other replicas."""

    pre_prepare: PrePrepare
    prepares: list[Prepare]


@dataclass(frozen=True, slots=True)
class ViewChange:
    """VIEW-CHANGE(v+1, s, C, P) adapted to a few blocks in flight.

    ``stable_height``/``checkpoint_proof`` are PBFT's s and C. Instead of a
    prepared certificate for every height above s, a replica sends the commit
    certificate of the highest block it executed (``last_cert``) — which
    proves that block final — plus its prepared certificates for the heights
    right above it (``prepared``: consecutive from ``last_cert``'s height + 1,
    as many as the replica has in flight; empty when it is prepared at none).
    """

    new_view: int
    stable_height: int
    checkpoint_proof: list[Checkpoint]
    last_cert: CommitCertificate | None
    prepared: list[PreparedCert]
    sender: bytes
    sig: bytes = b""


@dataclass(frozen=True, slots=True)
class NewView:
    """NEW-VIEW(v, V, O): ``pre_prepares`` re-propose, in the new view, the prepared
    blocks that :func:`consensus.newview.select` picks from ``view_changes`` (consecutive
    heights above the highest committed one; none when no VIEW-CHANGE carries one)."""

    view: int
    view_changes: list[ViewChange]
    pre_prepares: list[PrePrepare]
    sender: bytes
    sig: bytes = b""


@dataclass(frozen=True, slots=True)
class Status:
    """Gossip of a replica's head, so a restarted or lagging replica learns it is behind."""

    height: int
    view: int
    stable: int
    sender: bytes
    sig: bytes = b""


@dataclass(frozen=True, slots=True)
class FetchBlocks:
    from_height: int
    to_height: int
    sender: bytes
    sig: bytes = b""


@dataclass(frozen=True, slots=True)
class CertifiedBlock:
    block: Block
    certificate: CommitCertificate


@dataclass(frozen=True, slots=True)
class Blocks:
    blocks: list[CertifiedBlock]
    sender: bytes
    sig: bytes = b""


@dataclass(frozen=True, slots=True)
class TxGossip:
    """Transactions relayed to the other validators. Unsigned: each transaction carries its
    own signature, and who relayed it does not matter."""

    txs: list[Transaction]
    sender: bytes
    sig: bytes = b""


Message = (
    PrePrepare | Prepare | Commit | Checkpoint | ViewChange | NewView | Status | FetchBlocks
    | Blocks | TxGossip
)

KINDS: dict[str, type] = {
    "pre_prepare": PrePrepare,
    "prepare": Prepare,
    "commit": Commit,
    "checkpoint": Checkpoint,
    "view_change": ViewChange,
    "new_view": NewView,
    "status": Status,
    "fetch_blocks": FetchBlocks,
    "blocks": Blocks,
    "tx_gossip": TxGossip,
}
_KIND_OF = {cls: kind for kind, cls in KINDS.items()}


def kind_of(msg: Message) -> str:
    return _KIND_OF[type(msg)]


def signing_bytes(msg: Message) -> bytes:
    """The bytes ``msg.sig`` covers (before the domain tag) under ``pbft``; not for a
    COMMIT, whose signature covers its commit-certificate bytes (:func:`signed_bytes`).

    A PRE-PREPARE's signature covers the block *header* only: the header
    commits to the transactions through ``tx_root``, which every receiver
    checks before using the block, and re-encoding a 4 MiB block on every
    signature check would cost more than the check itself. A BLOCKS answer's
    covers its headers, for the same reason (its certificates prove themselves).
    """
    if isinstance(msg, PrePrepare):
        return encode_value({"kind": "pre_prepare", "view": msg.view, "height": msg.height,
                             "header": to_value(msg.block.header), "sender": msg.sender})
    if isinstance(msg, Blocks):
        # State transfer: each block proves itself (its commit certificate; its header
        # commits to the transactions), so the signature only says who answered — and
        # covering the headers spares both ends a walk over up to 64 blocks.
        return encode_value({"kind": "blocks", "sender": msg.sender,
                             "headers": [to_value(cb.block.header) for cb in msg.blocks]})
    if isinstance(msg, Commit):
        raise ValueError("a COMMIT is signed over its certificate bytes: use signed_bytes")
    fields = to_value(msg)
    assert isinstance(fields, dict)
    del fields["sig"]
    return encode_value({"kind": kind_of(msg), **fields})


def signed_bytes(msg: Message, chain_id: str) -> tuple[str, bytes]:
    """(purpose, message) that ``msg.sig`` signs: a COMMIT's commit-certificate bytes, any
    other message's :func:`signing_bytes` under ``pbft``."""
    if isinstance(msg, Commit):
        return COMMIT_PURPOSE, commit_message(chain_id, msg.view, msg.height, msg.digest)
    return PURPOSE, signing_bytes(msg)


def sign(msg: Message, key: PrivateKey, chain_id: str | None = None) -> Message:
    """``msg`` with ``sender`` set to ``key``'s public key and a fresh signature (a COMMIT
    needs the ``chain_id`` its signature names)."""
    unsigned = replace(msg, sender=key.public_key().raw, sig=b"")
    if isinstance(unsigned, Commit):
        if chain_id is None:
            raise ValueError("a COMMIT's signature names the chain: pass chain_id")
        return sign_commit(unsigned, key, chain_id)
    return replace(unsigned, sig=key.sign(PURPOSE, signing_bytes(unsigned)))


def sign_commit(commit: Commit, key: PrivateKey, chain_id: str) -> Commit:
    """``commit`` from ``key``, signed over its certificate bytes (module docstring)."""
    unsigned = replace(commit, sender=key.public_key().raw, sig=b"")
    purpose, message = signed_bytes(unsigned, chain_id)
    return replace(unsigned, sig=key.sign(purpose, message))


def encode_message(msg: Message) -> bytes:
    """The canonical bytes of ``{"kind": ..., "msg": ...}``.

    The kinds that carry blocks or transactions are put together from their memoised
    bytes (:func:`encode_spliced`).
    """
    if type(msg) in _CARRIERS:
        return spliced_map({"kind": encode_value(kind_of(msg)), "msg": encode_spliced(msg)})
    return encode_value({"kind": kind_of(msg), "msg": to_value(msg)})


def encode_spliced(value: object) -> bytes:
    """``encode(value)`` for a message or a part of one (a prepared certificate is
    persisted at every height), with blocks and transactions spliced in from their
    memoised bytes (:func:`spliced_map`) — the same bytes as a walk of the whole value,
    without walking thousands of transactions again on every proposal, vote and answer."""
    if isinstance(value, (Block, Transaction)):
        return value.encoded()
    if type(value) is list:
        return spliced_array([encode_spliced(v) for v in value])
    if type(value) in _CARRIERS:
        return spliced_map({f.name: encode_spliced(getattr(value, f.name))
                            for f in fields(value)})  # type: ignore[arg-type]
    return encode(value)


# The dataclasses that may hold a block or transactions (none has a non-codec field).
_CARRIERS: frozenset[type] = frozenset(
    {PrePrepare, PreparedCert, ViewChange, NewView, CertifiedBlock, Blocks, TxGossip})


def decode_message(data: bytes) -> Message:
    """Parse a wire message; DecodeError says what is wrong."""
    value = decode_value(data, max_size=MESSAGE_BYTES_MAX)
    if not isinstance(value, dict) or set(value) != {"kind", "msg"}:
        raise DecodeError("a consensus message is a map of 'kind' and 'msg'")
    kind = value["kind"]
    if not isinstance(kind, str) or kind not in KINDS:
        raise DecodeError(f"unknown consensus message kind {kind!r}")
    msg: Message = from_value(KINDS[kind], value["msg"], path=kind, canonical=True)
    return msg
