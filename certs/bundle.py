"""Proof bundles: everything needed to judge a certificate offline, from the genesis file alone.

Theory of operation
-------------------
A bundle is a snapshot of one certified block ``H`` (the node's head when
it was built): the block header with its commit certificate and the
validator-set links from genesis (:class:`ledger.proofs.HeaderProof`), and
sparse-Merkle proofs against that header's ``state_root`` of

- the certificate record ``certs/cert/<identifier>`` (status history, digest,
  signer, validity, holder code),
- its type ``certs/type/<code>`` (name and field schema),
- the issuer authorisation ``certs/issuer/<code>/<issuer>`` (its height
  periods: was the issuer authorised at the issuing height?),
- recognition agreements ``certs/recognition/<code>/<agency>``: every
  agreement recorded for the type, plus a membership *or absence* proof for
  the agency named when the bundle was asked for.

Format: ``CertBundle`` in canonical msgpack (``ledger.codec.encode``), the
``format`` string :data:`BUNDLE_FORMAT`. The bundle's own ``key`` fields are
never trusted: the verifier recomputes each key from the identifier and the
proven record and requires equality.

:func:`check_bundle` verifies *every* part — the header proof, every state
proof, every value's decoding — and raises :class:`~ledger.errors.ProofError`
naming the part that fails, so a bundle altered in any byte is rejected. A
bundle built before a validator-set change still verifies after it: its
links lead from genesis to the set that certified ``H``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeVar

from certs.ids import parse_cert_id
from certs.records import (
    CertRecord,
    CertType,
    IssuerAuth,
    Recognition,
    cert_key,
    decode_record,
    issuer_key,
    recognition_key,
    recognition_prefix,
    type_key,
)
from ledger.block import BlockHeader
from ledger.chain import Chain
from ledger.codec import decode, encode
from ledger.errors import DecodeError, InputError, ProofError
from ledger.genesis import Genesis
from ledger.proofs import HeaderProof, build_header_proof, verify_header
from ledger.state import StateProof, verify_state_proof

BUNDLE_FORMAT: Final = "govledger-cert-bundle/1"
BUNDLE_BYTES_MAX: Final = 4 * 1024 * 1024
RECOGNITIONS_MAX: Final = 256
_T = TypeVar("_T")


class CertNotFound(InputError):
    """No certificate with this identifier is on the ledger."""


@dataclass(frozen=True, slots=True)
class StateItem:
    key: bytes
    value: bytes | None  # None: the proof shows the key is absent
    proof: StateProof


@dataclass(frozen=True, slots=True)
class CertBundle:
    format: str
    chain_id: str
    cert_id: str
    header: HeaderProof
    record: StateItem
    cert_type: StateItem
    issuer: StateItem
    recognitions: list[StateItem]


@dataclass(frozen=True, slots=True)
class Proven:
    """What a checked bundle establishes, as of block ``header``."""

    header: BlockHeader
    validators: int  # size of the set that certified the header
    signers: int  # distinct valid commit signatures
    links: int  # validator-set changes walked from genesis
    record: CertRecord
    cert_type: CertType | None
    issuer: IssuerAuth | None
    recognitions: dict[str, Recognition | None]  # by agency USCC; None: proven absent


# -- building (node side) ------------------------------------------------------------------


def build_bundle(chain: Chain, cert_id: str, agency: str | None = None) -> CertBundle:
    """The bundle for ``cert_id`` at the chain's head; CertNotFound if it was never issued
    (IdentifierError if it is not an identifier)."""
    cert_id = str(parse_cert_id(cert_id))
    height = chain.height
    header = chain.store.get_header(height)
    if header is None or height < 1:
        raise CertNotFound("no certified block yet")
    tree = chain.tree()
    root = header.state_root

    def item(key: bytes) -> StateItem:
        return StateItem(key, tree.get(root, key, height), tree.prove(root, key, height))

    record_item = item(cert_key(cert_id))
    if record_item.value is None:
        raise CertNotFound(f"no certificate {cert_id} is on the ledger")
    record = decode_record(record_item.value, CertRecord)
    recognitions: list[StateItem] = []
    agencies: list[str] = []
    prefix = recognition_prefix(record.type)
    for key, _ in chain.store.iter_state(prefix):
        agencies.append(key[len(prefix):].decode())
        if len(agencies) >= RECOGNITIONS_MAX - 1:
            break
    if agency and agency not in agencies:
        agencies.append(agency)
    recognitions = [item(recognition_key(record.type, a)) for a in sorted(agencies)]
    hp = build_header_proof(chain, height)
    return CertBundle(
        format=BUNDLE_FORMAT, chain_id=chain.chain_id, cert_id=cert_id, header=hp,
        record=record_item, cert_type=item(type_key(record.type)),
        issuer=item(issuer_key(record.type, record.issuer)), recognitions=recognitions,
    )


def encode_bundle(bundle: CertBundle) -> bytes:
    return encode(bundle)


def decode_bundle(data: bytes) -> CertBundle:
    """DecodeError if ``data`` is not a canonical bundle."""
    return decode(data, CertBundle, max_size=BUNDLE_BYTES_MAX)


# -- checking (anyone, offline) -------------------------------------------------------------


def check_bundle(genesis: Genesis, bundle: CertBundle, cert_id: str) -> Proven:
    """Verify every part of ``bundle`` for ``cert_id`` against ``genesis``; ProofError if not."""
    if bundle.format != BUNDLE_FORMAT:
        raise ProofError(f"not a certificate bundle (format {bundle.format!r})")
    if bundle.chain_id != genesis.chain_id:
        raise ProofError(f"the bundle is for chain {bundle.chain_id!r}, the genesis file for "
                         f"{genesis.chain_id!r}")
    if bundle.cert_id != cert_id:
        raise ProofError(f"the bundle is for certificate {bundle.cert_id}, not {cert_id}")
    try:
        validators = verify_header(genesis, bundle.header)
    except ProofError as exc:
        raise ProofError(f"block header: {exc}") from None
    header = bundle.header.header
    check = _Checker(genesis, header)
    record = check.member(bundle.record, cert_key(cert_id), CertRecord, "certificate record")
    if record.id != cert_id:
        raise ProofError("the certificate record names another identifier")
    cert_type = check.optional(bundle.cert_type, type_key(record.type), CertType,
                               "certificate type")
    issuer = check.optional(bundle.issuer, issuer_key(record.type, record.issuer), IssuerAuth,
                            "issuer authorisation")
    if len(bundle.recognitions) > RECOGNITIONS_MAX:
        raise ProofError(f"more than {RECOGNITIONS_MAX} recognition proofs")
    recognitions: dict[str, Recognition | None] = {}
    prefix = recognition_prefix(record.type)
    for i, it in enumerate(bundle.recognitions):
        if not it.key.startswith(prefix):
            raise ProofError(f"recognition proof {i} is not about type {record.type}")
        agency = it.key[len(prefix):].decode("utf-8", errors="replace")
        if agency in recognitions or recognition_key(record.type, agency) != it.key:
            raise ProofError(f"recognition proof {i} is repeated or malformed")
        rec = check.optional(it, it.key, Recognition, f"recognition agreement of {agency}")
        if rec is not None and (rec.agency != agency or rec.type != record.type):
            raise ProofError(f"recognition agreement {i} names another agency or type")
        recognitions[agency] = rec
    signers = len({s.validator for s in bundle.header.certificate.signatures})
    return Proven(header, validators.size, signers, len(bundle.header.links), record,
                  cert_type, issuer, recognitions)


class _Checker:
    def __init__(self, genesis: Genesis, header: BlockHeader) -> None:
        self.hash = genesis.crypto.hash
        self.root = header.state_root

    def _verify(self, it: StateItem, key: bytes, what: str) -> None:
        if it.key != key:
            raise ProofError(f"{what}: the proof is for another state key")
        try:
            verify_state_proof(self.hash, self.root, key, it.value, it.proof)
        except ProofError as exc:
            raise ProofError(f"{what}: {exc}") from None

    def member(self, it: StateItem, key: bytes, cls: type[_T], what: str) -> _T:
        value = self.optional(it, key, cls, what)
        if value is None:
            raise ProofError(f"{what}: the state proves it is absent")
        return value

    def optional(self, it: StateItem, key: bytes, cls: type[_T], what: str) -> _T | None:
        self._verify(it, key, what)
        if it.value is None:
            return None
        try:
            return decode_record(it.value, cls)
        except DecodeError as exc:
            raise ProofError(f"{what}: proven value does not decode: {exc}") from None
