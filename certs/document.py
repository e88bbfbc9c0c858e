"""The certificate document the holder keeps (GB/T 36903 fields), and its issuer signature.

Theory of operation
-------------------
A document is a JSON object::

    {"format": "govledger-ecert/1",
     "certificate": {<GB/T 36903 fields, every value a string>,
                     "extra": {<type-specific field>: <string>, ...}},
     "signature": {"suite": "sm", "purpose": "cert",
                   "signer": "<issuer public key, hex>", "value": "<signature, hex>"}}

Every value inside ``certificate`` is a string, so the JSON and the canonical
msgpack hold exactly the same information and the signed bytes can be rebuilt
from the JSON by anyone:

- *canonical bytes* = ``ledger.codec.encode_value({"format": ..., "certificate": ...})``
  (maps with keys in UTF-8 byte order, shortest msgpack forms);
- *signed bytes* = ``ledger.crypto.tagged("cert", canonical bytes)``, i.e.
  ``b"govledger/cert/v1\\x00"`` followed by the canonical bytes — what SM2
  signs (with Z_A of the default ID ``1234567812345678``), and what
  ``govledger cert export --openssl`` writes as ``doc.bin``;
- *digest* = the suite hash (SM3) of the canonical bytes — what the ledger
  records instead of the document.

Fields of ``certificate`` (GB/T 36903 names in brackets): ``name`` (证照名称),
``type_code`` (证照类型代码), ``number`` (证照编号), ``identifier`` (证照标识,
GB/T 36904), ``issuer_name`` (发证机构), ``issuer_uscc`` (发证机构代码),
``area_code`` (发证机构行政区划代码, 6 digits), ``issue_date`` (发证日期),
``valid_from`` / ``valid_until`` (有效期起始 / 截止, ``YYYY-MM-DD``, or
``长期`` for long-term), ``holder_name`` / ``holder_code`` /
``holder_code_type`` (持证主体, 代码, 代码类型: ``001`` USCC, ``111`` citizen ID),
``version`` (3 digits), ``supersedes`` (previous identifier on renewal, or
""), ``extra`` (type-specific fields, per the type's schema on the ledger).

:func:`parse_document` checks the shape and every field that can be checked
without the ledger; the type schema and everything about the ledger are for
:mod:`certs.verify`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from certs.ids import (
    IdentifierError,
    parse_cert_id,
    validate_citizen_id,
    validate_uscc,
)
from certs.records import (
    HOLDER_CODE_TYPES,
    LEGAL_PERSON,
    CertType,
    check_validity_dates,
    parse_date,
)
from ledger.codec import Value, encode_value
from ledger.crypto import PrivateKey, Suite, tagged
from ledger.errors import DecodeError, InputError

DOC_FORMAT: Final = "govledger-ecert/1"
SIGN_PURPOSE: Final = "cert"
DOC_BYTES_MAX: Final = 64 * 1024
VALUE_CHARS_MAX: Final = 1000
EXTRA_FIELDS_MAX: Final = 32
FIELDS: Final = (
    "name", "type_code", "number", "identifier", "issuer_name", "issuer_uscc", "area_code",
    "issue_date", "valid_from", "valid_until", "holder_name", "holder_code",
    "holder_code_type", "version", "supersedes",
)
_AREA_RE: Final = re.compile(r"[0-9]{6}")
_HEX_RE: Final = re.compile(r"(?:[0-9a-f]{2})+")


class DocumentError(InputError):
    """The document is malformed; the message says which field and why."""


@dataclass(frozen=True, slots=True)
class Document:
    certificate: dict[str, str]  # FIELDS
    extra: dict[str, str]
    suite: str
    signer: bytes
    signature: bytes

    @property
    def cert_id(self) -> str:
        return self.certificate["identifier"]

    def body(self) -> dict[str, Value]:
        cert: dict[str, Value] = dict(self.certificate)
        cert["extra"] = dict(self.extra)
        return {"format": DOC_FORMAT, "certificate": cert}

    def canonical_bytes(self) -> bytes:
        return encode_value(self.body())

    def signed_bytes(self) -> bytes:
        """Exactly what the signature covers (domain tag included)."""
        return tagged(SIGN_PURPOSE, self.canonical_bytes())

    def digest(self, suite: Suite) -> bytes:
        return suite.hash(self.canonical_bytes())

    def signature_ok(self, suite: Suite) -> bool:
        return suite.verify(self.signer, SIGN_PURPOSE, self.canonical_bytes(), self.signature)

    def to_json_value(self) -> dict[str, Any]:
        return {**self.body(), "signature": {"suite": self.suite, "purpose": SIGN_PURPOSE,
                                             "signer": self.signer.hex(),
                                             "value": self.signature.hex()}}

    def to_json(self) -> str:
        return json.dumps(self.to_json_value(), ensure_ascii=False, indent=2, sort_keys=True)


def sign_document(key: PrivateKey, certificate: dict[str, str], extra: dict[str, str]
                  ) -> Document:
    """Check the fields and sign them (the issuer's side)."""
    unsigned = Document(dict(certificate), dict(extra), key.suite.name,
                        key.public_key().raw, b"")
    check_fields(unsigned)
    return Document(unsigned.certificate, unsigned.extra, unsigned.suite, unsigned.signer,
                    key.sign(SIGN_PURPOSE, unsigned.canonical_bytes()))


# -- parsing ---------------------------------------------------------------------------------


def _reject_float(text: str) -> None:
    raise DocumentError(f"numbers with fractions are not allowed in a document ({text})")


def parse_document(data: str | bytes | dict[str, Any]) -> Document:
    """A document from its JSON text (or parsed JSON); DocumentError says what is wrong."""
    if isinstance(data, (str, bytes)):
        if len(data) > DOC_BYTES_MAX:
            raise DocumentError(f"document is larger than {DOC_BYTES_MAX} bytes")
        try:
            value = json.loads(data, parse_float=_reject_float, parse_constant=_reject_float)
        except DocumentError:
            raise
        except (ValueError, RecursionError) as exc:
            raise DocumentError(f"document is not valid JSON: {exc}") from None
    else:
        value = data
    if not isinstance(value, dict):
        raise DocumentError("a document is a JSON object")
    _exact_keys(value, {"format", "certificate", "signature"}, "document")
    if value["format"] != DOC_FORMAT:
        raise DocumentError(f"document.format must be {DOC_FORMAT!r}, got {value['format']!r}")
    cert, sig = value["certificate"], value["signature"]
    if not isinstance(cert, dict):
        raise DocumentError("document.certificate must be an object")
    _exact_keys(cert, {*FIELDS, "extra"}, "document.certificate")
    for name in FIELDS:
        _string(cert[name], f"certificate.{name}")
    extra = cert["extra"]
    if not isinstance(extra, dict) or len(extra) > EXTRA_FIELDS_MAX:
        raise DocumentError(f"certificate.extra must be an object of at most "
                            f"{EXTRA_FIELDS_MAX} string fields")
    for name, v in extra.items():
        _string(v, f"certificate.extra.{name}")
    if not isinstance(sig, dict):
        raise DocumentError("document.signature must be an object")
    _exact_keys(sig, {"suite", "purpose", "signer", "value"}, "document.signature")
    if sig["purpose"] != SIGN_PURPOSE:
        raise DocumentError(f"signature.purpose must be {SIGN_PURPOSE!r}")
    if not isinstance(sig["suite"], str):
        raise DocumentError("signature.suite must be a string")
    document = Document({n: cert[n] for n in FIELDS}, dict(extra), sig["suite"],
                        _hex(sig["signer"], "signature.signer"),
                        _hex(sig["value"], "signature.value"))
    check_fields(document)
    return document


def _exact_keys(value: dict[str, Any], wanted: set[str], where: str) -> None:
    missing, unknown = sorted(wanted - set(value)), sorted(set(value) - wanted)
    if missing:
        raise DocumentError(f"{where} lacks {', '.join(missing)}")
    if unknown:
        raise DocumentError(f"{where} has unknown field(s) {', '.join(map(str, unknown))}")


def _string(value: object, where: str) -> None:
    if not isinstance(value, str) or len(value) > VALUE_CHARS_MAX:
        raise DocumentError(f"{where} must be a string of at most {VALUE_CHARS_MAX} characters")
    if any(ord(c) < 0x20 for c in value):
        raise DocumentError(f"{where} must not contain control characters")


def _hex(value: object, where: str) -> bytes:
    if not isinstance(value, str) or not _HEX_RE.fullmatch(value) or len(value) > 512:
        raise DocumentError(f"{where} must be lowercase hex")
    return bytes.fromhex(value)


def check_fields(doc: Document) -> None:
    """Every check that needs neither the ledger nor the type schema; DocumentError."""
    c = doc.certificate
    for name in FIELDS:
        _string(c.get(name), f"certificate.{name}")
    for name, v in doc.extra.items():
        if not isinstance(name, str) or not name:
            raise DocumentError("certificate.extra keys must be non-empty strings")
        _string(v, f"certificate.extra.{name}")
    try:
        cid = parse_cert_id(c["identifier"])
        if str(cid) != c["identifier"]:
            raise DocumentError("certificate.identifier is not in canonical form (upper case)")
        if cid.type_code != c["type_code"]:
            raise DocumentError("certificate.type_code differs from the identifier's type code")
        if cid.issuer_uscc != c["issuer_uscc"]:
            raise DocumentError("certificate.issuer_uscc differs from the identifier's issuer")
        if c["version"] != f"{cid.version:03d}":
            raise DocumentError("certificate.version differs from the identifier's version")
        _check_holder(c["holder_code_type"], c["holder_code"])
        if c["supersedes"]:
            old = parse_cert_id(c["supersedes"])
            if (old.type_code, old.issuer_uscc, old.serial, old.version + 1) != (
                    cid.type_code, cid.issuer_uscc, cid.serial, cid.version):
                raise DocumentError("certificate.supersedes must be the previous version of "
                                    "the same certificate")
        elif cid.version != 1:
            raise DocumentError("a version after 001 must name the version it supersedes")
        check_validity_dates(c["valid_from"], c["valid_until"])
        parse_date(c["issue_date"], "issue_date")
    except (IdentifierError, DecodeError) as exc:
        if isinstance(exc, DocumentError):
            raise
        raise DocumentError(f"certificate: {exc}") from None
    if not _AREA_RE.fullmatch(c["area_code"]):
        raise DocumentError("certificate.area_code must be a 6-digit division code")
    for name in ("name", "number", "issuer_name", "holder_name"):
        if not c[name].strip():
            raise DocumentError(f"certificate.{name} must not be empty")


def _check_holder(code_type: str, code: str) -> None:
    if code_type not in HOLDER_CODE_TYPES:
        raise DocumentError(f"certificate.holder_code_type must be one of "
                            f"{', '.join(HOLDER_CODE_TYPES)} (001 USCC, 111 citizen ID)")
    if code_type == LEGAL_PERSON:
        if validate_uscc(code) != code:
            raise DocumentError("certificate.holder_code is not in canonical form")
    elif validate_citizen_id(code) != code:
        raise DocumentError("certificate.holder_code is not in canonical form")


def schema_problem(doc: Document, cert_type: CertType) -> str | None:
    """Why the document does not fit its type (name, holder kind, type-specific fields)."""
    c = doc.certificate
    if c["type_code"] != cert_type.code:
        return f"the document is of type {c['type_code']}, not {cert_type.code}"
    if c["name"] != cert_type.name:
        return f"certificate.name is {c['name']!r}; type {cert_type.code} is {cert_type.name!r}"
    if c["holder_code_type"] not in cert_type.holder_code_types:
        return (f"type {cert_type.name} is not issued to holders of code type "
                f"{c['holder_code_type']}")
    known = {f.name for f in cert_type.fields}
    unknown = sorted(set(doc.extra) - known)
    if unknown:
        return f"extra field(s) {', '.join(unknown)} are not in the schema of {cert_type.name}"
    missing = [f.name for f in cert_type.fields if f.required and not doc.extra.get(f.name)]
    if missing:
        return f"required field(s) {', '.join(missing)} of {cert_type.name} are missing"
    return None
