"""The issuer's side: building and signing documents and the transactions that anchor them.

Theory of operation
-------------------
An issuing department fills in the GB/T 36903 fields, signs the document
with its issuer key (:func:`certs.document.sign_document`) and sends a
transaction that carries only the document's digest, validity and holder
code (:mod:`certs.handlers`). For a natural person the holder code sent is
the HMAC of the ID number under the consortium key, which departments hold
(``keys/consortium.key``); the ID number itself stays in the document, with
the holder. Used by ``govledger cert issue|renew`` and the demo samples;
pure functions (the caller chooses the serial and the dates).
"""

from __future__ import annotations

from dataclasses import dataclass

from certs.document import Document, DocumentError, schema_problem, sign_document
from certs.ids import format_cert_id, parse_cert_id, validate_citizen_id, validate_uscc
from certs.records import HOLDER_CODE_TYPES, NATURAL_PERSON, CertType, FieldSpec
from ledger.codec import Value
from ledger.crypto import PrivateKey, Suite
from ledger.privacy import holder_hash


@dataclass(frozen=True, slots=True)
class Issuer:
    uscc: str
    name: str
    area_code: str  # the organisation's 6-digit region


def cert_type_from_view(view: dict[str, object]) -> CertType:
    """A :class:`CertType` from the JSON of ``GET /v1/certs/types/{code}``."""
    fields = view.get("fields")
    kinds = view.get("holder_code_types")
    assert isinstance(fields, list) and isinstance(kinds, list)
    return CertType(code=str(view["code"]), name=str(view["name"]),
                    holder_code_types=[str(k) for k in kinds],
                    fields=[FieldSpec(str(f["name"]), str(f.get("label", "")),
                                      bool(f.get("required", False))) for f in fields],
                    registered_height=int(str(view.get("registered_height", 0))))


def validate_holder_code(code: str, code_type: str) -> str:
    """The holder code normalised: a USCC (001) or a citizen ID number (111);
    IdentifierError says what is wrong with it."""
    assert code_type in HOLDER_CODE_TYPES, code_type
    return validate_citizen_id(code) if code_type == NATURAL_PERSON else validate_uscc(code)


def new_document(key: PrivateKey, cert_type: CertType, issuer: Issuer, *, serial: str,
                 holder_name: str, holder_code: str, holder_code_type: str, valid_from: str,
                 valid_until: str, issue_date: str, extra: dict[str, str],
                 number: str | None = None, version: int = 1, supersedes: str = ""
                 ) -> Document:
    """Sign version ``version`` of a certificate; DocumentError says what does not fit."""
    cert_id = format_cert_id(cert_type.code, issuer.uscc, serial, version)
    certificate = {
        "name": cert_type.name, "type_code": cert_type.code, "number": number or serial,
        "identifier": cert_id, "issuer_name": issuer.name, "issuer_uscc": issuer.uscc,
        "area_code": issuer.area_code, "issue_date": issue_date, "valid_from": valid_from,
        "valid_until": valid_until, "holder_name": holder_name, "holder_code": holder_code,
        "holder_code_type": holder_code_type, "version": f"{version:03d}",
        "supersedes": supersedes,
    }
    doc = sign_document(key, certificate, extra)
    problem = schema_problem(doc, cert_type)
    if problem:
        raise DocumentError(problem)
    return doc


def renewed_document(key: PrivateKey, old: Document, cert_type: CertType, issuer: Issuer, *,
                     valid_from: str, valid_until: str, issue_date: str,
                     extra: dict[str, str] | None = None) -> Document:
    """The next version of ``old`` for the same holder (new dates, updated fields)."""
    c = old.certificate
    serial = parse_cert_id(c["identifier"]).serial
    return new_document(
        key, cert_type, issuer, serial=serial, holder_name=c["holder_name"],
        holder_code=c["holder_code"], holder_code_type=c["holder_code_type"],
        valid_from=valid_from, valid_until=valid_until, issue_date=issue_date,
        extra={**old.extra, **(extra or {})}, number=c["number"],
        version=int(c["version"]) + 1, supersedes=c["identifier"])


def holder_value(suite: Suite, doc: Document, consortium_key: bytes | None) -> str:
    """What the ledger stores for the holder: the USCC, or the HMAC of the ID number."""
    c = doc.certificate
    if c["holder_code_type"] != NATURAL_PERSON:
        return c["holder_code"]
    if consortium_key is None:
        raise DocumentError("a natural person's certificate needs the consortium key "
                            "(keys/consortium.key) to compute the holder HMAC")
    return holder_hash(suite, consortium_key, c["holder_code"]).hex()


def issue_payload(suite: Suite, doc: Document, consortium_key: bytes | None
                  ) -> dict[str, Value]:
    c = doc.certificate
    return {"id": c["identifier"], "digest": doc.digest(suite), "valid_from": c["valid_from"],
            "valid_until": c["valid_until"], "holder": holder_value(suite, doc, consortium_key),
            "holder_code_type": c["holder_code_type"]}


def renew_payload(suite: Suite, doc: Document) -> dict[str, Value]:
    c = doc.certificate
    return {"id": c["identifier"], "supersedes": c["supersedes"], "digest": doc.digest(suite),
            "valid_from": c["valid_from"], "valid_until": c["valid_until"]}
