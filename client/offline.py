"""Verdicts reached here, with no network, trusting only the genesis file.

These are thin, never-raising fronts to the one implementation of each check —
:func:`certs.verify.verify_certificate` for certificates (over a proof bundle,
:mod:`certs.bundle`) and :func:`ledger.proofs.verify_evidence` for anchored
digests — so the SDK, the CLI and the node reach the same verdict on the same
inputs. A node only ever supplies proof material; whatever it sends, a verdict
is VALID only if the proofs verify from ``genesis.json``.

Example (a verifier's office, offline)::

    from client import verify_bundle
    verdict = verify_bundle("genesis.json", open("cert.bundle", "rb").read(),
                            document=open("licence.json").read(), as_of="2026-03-01")
    print(verdict.verdict, verdict.failed())
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from certs.document import Document
from certs.verify import Verdict, parse_as_of, verify_certificate
from client.results import EvidenceVerdict
from ledger.block import older_certificate_hint
from ledger.codec import decode
from ledger.errors import DecodeError, InputError, ProofError
from ledger.genesis import Genesis, load_genesis
from ledger.proofs import EvidenceProof
from ledger.proofs import verify_evidence as _verify_evidence_proof

GenesisLike = Genesis | str | Path


def trust_root(genesis: GenesisLike) -> Genesis:
    """``genesis`` itself, or the genesis file at that path (InputError if unusable)."""
    return genesis if isinstance(genesis, Genesis) else load_genesis(genesis)


def as_of_ms(as_of: int | str | None) -> int:
    """ms UTC from ms, ``YYYY-MM-DD`` or an ISO date-time (China Standard Time unless it
    names its offset); now when None."""
    return int(time.time() * 1000) if as_of is None else parse_as_of(as_of)


def verify_bundle(genesis: GenesisLike, bundle: bytes | None, *,
                  document: Document | str | bytes | dict[str, Any] | None = None,
                  cert_id: str | None = None, agency: str | None = None,
                  as_of: int | str | None = None) -> Verdict:
    """Judge a certificate from a saved proof bundle (``govledger cert proof`` or
    :meth:`client.sdk.Client.certificate_bundle`) and the genesis file, with no network.

    Give the holder's ``document`` (JSON text, bytes, a parsed dict or a
    :class:`~certs.document.Document`) or only a ``cert_id``; ``agency`` is the
    verifying agency's USCC (mutual recognition); ``as_of`` defaults to now. A
    tampered bundle or document is INVALID (never an exception)::

        verdict = verify_bundle("genesis.json", bundle, cert_id="1110…", agency=uscc)
        for check in verdict.checks:
            print(check.name, check.ok, check.detail)
    """
    return verify_certificate(trust_root(genesis), bundle, as_of_ms=as_of_ms(as_of),
                              document=document, cert_id=cert_id, agency=agency)


def decode_evidence_proof(data: bytes) -> EvidenceProof:
    """An evidence proof from its canonical msgpack (DecodeError if it is not one)."""
    return decode(data, EvidenceProof)


def verify_evidence(genesis: GenesisLike, proof: EvidenceProof | bytes | None,
                    digest: bytes) -> EvidenceVerdict:
    """Was ``digest`` anchored (``evidence.anchor``)? Judged from ``proof`` (an
    :class:`~ledger.proofs.EvidenceProof` or its canonical msgpack, as
    :meth:`client.sdk.Client.evidence_proof` returns) and the genesis file only::

        verdict = verify_evidence("genesis.json", proof_bytes, hashlib.sha256(doc).digest())
        print(verdict.valid, verdict.height, verdict.label)
    """
    if proof is None:
        return EvidenceVerdict(False, digest, "no proof: the digest is not anchored on the "
                                              "ledger the node follows")
    try:
        if isinstance(proof, bytes):
            proof = decode_evidence_proof(proof)
        record = _verify_evidence_proof(trust_root(genesis), proof, digest)
    except DecodeError as exc:
        return EvidenceVerdict(False, digest, f"the proof does not decode: {exc}"
                                              f"{older_certificate_hint(exc)}")
    except ProofError as exc:
        return EvidenceVerdict(False, digest, f"the proof does not verify: {exc}")
    except InputError as exc:  # e.g. a malformed commit certificate inside the proof
        return EvidenceVerdict(False, digest, f"the proof is malformed: {exc}")
    height, when = record.get("height"), record.get("time")
    sender, tx_id = record.get("sender"), record.get("tx_id")
    return EvidenceVerdict(
        True, digest, f"anchored at height {height}, certified from the genesis file",
        label=str(record.get("label", "")), org=str(record.get("org", "")),
        sender=sender if isinstance(sender, bytes) else b"",
        height=height if isinstance(height, int) else None,
        time=when if isinstance(when, int) else None,
        tx_id=tx_id if isinstance(tx_id, bytes) else b"")
