"""Proofs a client checks with nothing but the genesis file.

Theory of operation
-------------------
Trust starts at the genesis validator set. A block header is trusted when a
quorum of the validator set *for its height* signed its commit certificate.
If the set changed since genesis, a :class:`HeaderProof` carries one
:class:`ValidatorLink` per change, oldest first: the certified header of the
block just before the change took effect and a state proof that its state
schedules ``sys/validators/next = {"validators", "effective_height"}`` with
``effective_height = link height + 1``. The verifier walks the links from
genesis, each certified by the set before it, and so learns the set that
must certify the target header. (The walk trusts that retired validators'
keys are not later used to forge history — the usual assumption of a
permissioned chain.)

A trusted header then anchors two Merkle proofs:

- an RFC 9162 inclusion proof of a transaction's canonical bytes under
  ``tx_root`` (:class:`TxInclusion`), and
- a sparse-Merkle membership or absence proof of a state key under
  ``state_root`` (:class:`ledger.state.StateProof`).

:class:`EvidenceProof` combines them for ``evidence.anchor``: the record of
the digest in the state of the anchoring block, the anchoring transaction
included in that block, and the header proof. :class:`StateBundle` carries
the values of the state keys a query read at one certified height, each with
its proof, so that a client can run the query itself over the proven values
(a fund tree's balance sheet, :mod:`fiscal.proofs`) and trust no node. All
``verify_*`` functions are pure and raise :class:`~ledger.errors.ProofError`
saying which part failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.block import BlockHeader, CommitCertificate, ValidatorSet, verify_certificate
from ledger.chain import NEXT_VALIDATORS_KEY, Chain, validator_history
from ledger.codec import decode, decode_value, encode
from ledger.errors import DecodeError, InputError, ProofError
from ledger.evidence import evidence_key
from ledger.genesis import Genesis
from ledger.merkle import MerkleTree, leaf_hash, verify_inclusion
from ledger.state import StateProof, verify_state_proof
from ledger.tx import Transaction

LINKS_MAX = 1000
STATE_ENTRIES_MAX = 5000


@dataclass(frozen=True, slots=True)
class ValidatorLink:
    header: BlockHeader
    certificate: CommitCertificate
    record: bytes  # value of sys/validators/next in header.state_root
    proof: StateProof


@dataclass(frozen=True, slots=True)
class HeaderProof:
    header: BlockHeader
    certificate: CommitCertificate
    links: list[ValidatorLink]


@dataclass(frozen=True, slots=True)
class TxInclusion:
    tx: Transaction
    index: int
    size: int
    path: list[bytes]


@dataclass(frozen=True, slots=True)
class EvidenceProof:
    digest: bytes
    record: bytes
    state_proof: StateProof
    inclusion: TxInclusion
    header: HeaderProof


@dataclass(frozen=True, slots=True)
class StateEntry:
    key: bytes
    value: bytes | None  # None: the key is proven absent
    proof: StateProof


@dataclass(frozen=True, slots=True)
class StateBundle:
    """State keys' values in the state of one certified block, each proven."""

    header: HeaderProof
    entries: list[StateEntry]


def verify_header(genesis: Genesis, hp: HeaderProof) -> ValidatorSet:
    """Check that ``hp.header`` is certified, walking validator changes from genesis."""
    suite = genesis.crypto
    current = genesis.validators
    effective_from = 1
    if len(hp.links) > LINKS_MAX:
        raise ProofError(f"too many validator-set links ({len(hp.links)})")
    for i, link in enumerate(hp.links):
        h = link.header.height
        if h < effective_from:
            raise ProofError(f"validator link {i} at height {h} is out of order")
        try:
            verify_certificate(suite, genesis.chain_id, link.header, link.certificate, current)
            verify_state_proof(suite.hash, link.header.state_root, NEXT_VALIDATORS_KEY,
                               link.record, link.proof)
            value = decode_value(link.record)
            if not isinstance(value, dict) or value.get("effective_height") != h + 1:
                raise ProofError(f"validator link {i} does not take effect at height {h + 1}")
            current = decode(encode({"validators": value["validators"]}), ValidatorSet)
        except (InputError, KeyError) as exc:
            raise ProofError(f"validator link {i} (height {h}): {exc}") from None
        effective_from = h + 1
    if hp.header.height < effective_from:
        raise ProofError("the header is older than the validator changes offered with it")
    if hp.header.height < 1:
        raise ProofError("height 0 is the genesis block: check it against the genesis file")
    try:
        verify_certificate(suite, genesis.chain_id, hp.header, hp.certificate, current)
    except InputError as exc:
        raise ProofError(f"commit certificate: {exc}") from None
    return current


def verify_tx_inclusion(genesis: Genesis, header: BlockHeader, inc: TxInclusion) -> bytes:
    """Check ``inc.tx`` is in the block of ``header``; return its id."""
    suite = genesis.crypto
    verify_inclusion(suite.hash, inc.index, inc.size, leaf_hash(suite.hash, encode(inc.tx)),
                     inc.path, header.tx_root)
    return inc.tx.tx_id(suite)


def verify_evidence(genesis: Genesis, proof: EvidenceProof, digest: bytes) -> dict[str, object]:
    """Verify that ``digest`` was anchored; return the anchor record. Raises ProofError."""
    suite = genesis.crypto
    if proof.digest != digest:
        raise ProofError("the proof is for a different digest")
    verify_header(genesis, proof.header)
    header = proof.header.header
    verify_state_proof(suite.hash, header.state_root, evidence_key(digest), proof.record,
                       proof.state_proof)
    try:
        record = decode_value(proof.record)
    except DecodeError as exc:
        raise ProofError(f"anchor record: {exc}") from None
    if not isinstance(record, dict) or record.get("digest") != digest:
        raise ProofError("anchor record does not name this digest")
    if record.get("height") != header.height:
        raise ProofError("anchor record was not written by this block")
    tx_id = verify_tx_inclusion(genesis, header, proof.inclusion)
    tx = proof.inclusion.tx
    if record.get("tx_id") != tx_id or tx.sender != record.get("sender"):
        raise ProofError("the included transaction is not the one that wrote the anchor")
    if not tx.signature_ok(suite):
        raise ProofError("the anchoring transaction's signature does not verify")
    if tx.chain_id != genesis.chain_id:
        raise ProofError("the anchoring transaction is for another chain")
    return dict(record)


def verify_state_bundle(genesis: Genesis, bundle: StateBundle) -> dict[bytes, bytes | None]:
    """The proven values of ``bundle``'s keys (None: proven absent) in the state of its
    certified block. Raises ProofError."""
    if len(bundle.entries) > STATE_ENTRIES_MAX:
        raise ProofError(f"too many state entries ({len(bundle.entries)})")
    verify_header(genesis, bundle.header)
    root = bundle.header.header.state_root
    values: dict[bytes, bytes | None] = {}
    for entry in bundle.entries:
        if entry.key in values:
            raise ProofError(f"state key {entry.key!r} is in the bundle twice")
        verify_state_proof(genesis.crypto.hash, root, entry.key, entry.value, entry.proof)
        values[entry.key] = entry.value
    return values


# -- building proofs from a node's chain --------------------------------------------------


def build_header_proof(chain: Chain, height: int) -> HeaderProof:
    """Header, certificate and validator links for block ``height`` (1..head)."""
    store = chain.store
    header, cert = store.get_header(height), store.get_certificate(height)
    if header is None or cert is None:
        raise InputError(f"no certified block at height {height}")
    tree = chain.tree()
    links = []
    for effective in validator_history(lambda k: tree.get(header.state_root, k, height)):
        link_header = store.get_header(effective - 1)
        link_cert = store.get_certificate(effective - 1)
        assert link_header is not None and link_cert is not None
        record = tree.get(link_header.state_root, NEXT_VALIDATORS_KEY, effective - 1)
        assert record is not None, f"no scheduled validator set in block {effective - 1}"
        links.append(ValidatorLink(link_header, link_cert, record,
                                   tree.prove(link_header.state_root, NEXT_VALIDATORS_KEY,
                                              effective - 1)))
    return HeaderProof(header, cert, links)


def build_tx_inclusion(chain: Chain, height: int, index: int) -> TxInclusion:
    block = chain.store.get_block(height)
    if block is None or not 0 <= index < len(block.txs):
        raise InputError(f"no transaction {index} in block {height}")
    tree = MerkleTree(chain.suite.hash, [leaf_hash(chain.suite.hash, encode(t)) for t in block.txs])
    return TxInclusion(block.txs[index], index, len(block.txs), tree.inclusion_proof(index))


def build_evidence_proof(chain: Chain, digest: bytes) -> EvidenceProof:
    """Proof bundle for an anchored digest; InputError if it was never anchored."""
    raw = chain.state_get(evidence_key(digest))
    if raw is None:
        raise InputError("this digest is not anchored")
    record = decode_value(raw)
    assert isinstance(record, dict)
    height, tx_id = record["height"], record["tx_id"]
    assert isinstance(height, int) and isinstance(tx_id, bytes)
    location = chain.store.get_tx_location(tx_id)
    assert location is not None and location[0] == height
    header = chain.store.get_header(height)
    assert header is not None
    state_proof = chain.tree().prove(header.state_root, evidence_key(digest), height)
    return EvidenceProof(
        digest=digest,
        record=raw,
        state_proof=state_proof,
        inclusion=build_tx_inclusion(chain, height, location[1]),
        header=build_header_proof(chain, height),
    )


def build_state_bundle(chain: Chain, keys: list[bytes]) -> StateBundle:
    """``keys``' values at the head block, each with its proof, and the head's header proof
    (the caller reads the keys in the same turn of the event loop, so at the same head)."""
    if len(keys) > STATE_ENTRIES_MAX:
        raise InputError(f"a state bundle holds at most {STATE_ENTRIES_MAX} keys")
    height = chain.store.head_height()
    header = chain.store.get_header(height)
    if height < 1 or header is None:
        raise InputError("no certified block yet")
    tree = chain.tree()
    entries = [StateEntry(k, tree.get(header.state_root, k, height),
                          tree.prove(header.state_root, k, height)) for k in dict.fromkeys(keys)]
    return StateBundle(build_header_proof(chain, height), entries)
