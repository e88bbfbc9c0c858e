"""govledger e-certificates (电子证照): identifiers, lifecycle, mutual recognition, proofs.

Layout (each module opens with its theory of operation):

- :mod:`certs.ids` — GB/T 36904 identifiers (and the USCC / citizen-ID validators);
- :mod:`certs.records` — what the ledger holds: state keys, records, status rules;
- :mod:`certs.document` — the holder's document (GB/T 36903 fields), canonical bytes,
  issuer signature;
- :mod:`certs.handlers` — lifecycle transactions (issue, suspend, reinstate, revoke, renew);
- :mod:`certs.kinds` — committee decisions (types, issuers, recognition) and genesis data;
- :mod:`certs.bundle` — offline proof bundles;
- :mod:`certs.verify` — the one verification function (node API, SDK, CLI);
- :mod:`certs.issuing` — the issuer's side: documents and transaction payloads;
- :mod:`certs.queries`, :mod:`certs.routes`, :mod:`certs.app`, :mod:`certs.samples` — the
  node's read side, HTTP routes, plug-in and demo data (the last three do IO).

This package's public surface below needs no network and no aiohttp.
"""

from certs.bundle import CertBundle, build_bundle, check_bundle, decode_bundle, encode_bundle
from certs.document import Document, DocumentError, parse_document, sign_document
from certs.ids import CertId, format_cert_id, parse_cert_id
from certs.records import CertRecord, CertType, IssuerAuth, Recognition
from certs.verify import Check, Verdict, parse_as_of, verify_certificate

__all__ = [
    "CertBundle",
    "CertId",
    "CertRecord",
    "CertType",
    "Check",
    "Document",
    "DocumentError",
    "IssuerAuth",
    "Recognition",
    "Verdict",
    "build_bundle",
    "check_bundle",
    "decode_bundle",
    "encode_bundle",
    "format_cert_id",
    "parse_as_of",
    "parse_cert_id",
    "parse_document",
    "sign_document",
    "verify_certificate",
]
