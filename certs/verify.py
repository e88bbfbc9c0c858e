"""The one verification of a certificate, shared by the node API, the SDK and the CLI.

Theory of operation
-------------------
Input: a document (or only an identifier), a proof bundle
(:mod:`certs.bundle`), the trust root (the genesis file), optionally the
verifying agency's USCC, and the as-of time (ms UTC; the caller supplies
"now" — nothing here reads a clock). Output: a :class:`Verdict` with one
:class:`Check` per line, in this order:

``document``
    the document is well formed (:func:`certs.document.parse_document`) and
    fits its type's schema as proven on the ledger;
``signature``
    the issuer's signature over the canonical bytes verifies under the key
    the ledger recorded as the signer when the certificate was issued;
``anchored``
    the document's digest is the one on the ledger, and the ledger record's
    identifier, type, issuer, version, validity, supersedes and holder
    agree with the document;
``status``
    the stored status at the as-of time, from the proven status history
    (VALID passes; SUSPENDED, REVOKED, SUPERSEDED and "not yet issued" fail);
``validity``
    the as-of date (China Standard Time) lies within valid_from..valid_until
    (EXPIRED is computed here, never stored);
``issuer_authorised``
    the issuer was authorised for the type at the height it issued;
``recognised``
    the verifying agency accepts this type from this issuer, under which
    agreement (passes trivially when no agency is given, or when the agency
    is the issuer itself);
``proofs``
    the bundle is certified from the genesis file: the header's commit
    certificate (through any validator-set changes) and every state proof.

The verdict is VALID only if every line passes; a line whose facts are
unavailable (e.g. the proofs failed, so nothing on the ledger is known)
fails with "cannot check". With only an identifier, ``signature`` and
``anchored`` are reported as not applicable: the question is then what the
ledger says about that identifier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Final

from certs.bundle import CertBundle, Proven, check_bundle, decode_bundle
from certs.document import Document, DocumentError, parse_document, schema_problem
from certs.ids import IdentifierError, parse_cert_id, validate_uscc
from certs.records import (
    LEGAL_PERSON,
    VALID,
    CertRecord,
    cst_date,
    cst_midnight_ms,
    date_status,
    parse_date,
)
from ledger.block import older_certificate_hint
from ledger.codec import to_json_value
from ledger.errors import DecodeError, InputError, ProofError
from ledger.genesis import Genesis

CHECKS: Final = ("document", "signature", "anchored", "status", "validity",
                 "issuer_authorised", "recognised", "proofs")
CST: Final = timezone(timedelta(hours=8), "CST")
_CANNOT: Final = "cannot check: the ledger facts are unavailable (see proofs)"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Verdict:
    verdict: str  # "VALID" | "INVALID"
    cert_id: str
    as_of: int
    status: str  # effective status at as-of (EXPIRED etc.), "UNKNOWN" without proofs
    height: int | None  # the block the bundle is a snapshot of
    agency: str
    agreement: str  # e.g. "R3" when the agency recognises the certificate
    checks: list[Check] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return self.verdict == "VALID"

    def failed(self) -> list[str]:
        return [c.name for c in self.checks if not c.ok]

    def to_json_value(self) -> dict[str, Any]:
        value: dict[str, Any] = to_json_value(self)
        return value


def fmt_time(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, CST).strftime("%Y-%m-%d %H:%M:%S CST")


# The as-of times a verdict can name: from 1970 (ms 0) to the end of 9999-12-31 in China
# Standard Time (dates and times outside cannot be shown; they were a 500).
AS_OF_MAX_MS = cst_midnight_ms(date(9999, 12, 31)) + 86_400_000 - 1


def parse_as_of(value: object) -> int:
    """An as-of time in ms UTC from ms, ``YYYY-MM-DD`` (00:00 China Standard Time) or an ISO
    date-time (China Standard Time unless it names its offset), from 1970 to 9999;
    InputError otherwise."""
    moment_ms: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        moment_ms = value
    elif isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            moment_ms = int(text) if len(text) <= 18 else AS_OF_MAX_MS + 1
        else:
            try:
                moment_ms = cst_midnight_ms(parse_date(text, "as-of date"))
            except DecodeError:
                try:
                    moment = datetime.fromisoformat(text)
                except ValueError:
                    pass
                else:
                    if moment.tzinfo is None:
                        moment = moment.replace(tzinfo=CST)
                    moment_ms = int(moment.timestamp() * 1000)
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    if moment_ms is None:
        raise InputError(f"as-of time {shown}: give YYYY-MM-DD, an ISO date-time or ms "
                         "since 1970")
    if not 0 <= moment_ms <= AS_OF_MAX_MS:
        raise InputError(f"as-of time {shown} is out of range (1970 to 9999)")
    return moment_ms


def verify_certificate(
    genesis: Genesis,
    bundle: CertBundle | bytes | None,
    *,
    as_of_ms: int,
    document: Document | str | bytes | dict[str, Any] | None = None,
    cert_id: str | None = None,
    agency: str | None = None,
) -> Verdict:
    """Judge a certificate; see the module docstring. Never raises on bad input."""
    doc, doc_problem = _document(document)
    target, id_problem = _target(doc, cert_id)
    if doc_problem is None and id_problem is not None:
        doc_problem = id_problem
    proven, proofs_problem = _proofs(genesis, bundle, target)
    checks = [
        _check_document(doc, document is not None, doc_problem, target, proven),
        _check_signature(genesis, doc, document is not None, proven),
        _check_anchored(genesis, doc, document is not None, proven),
        _check_status(proven, as_of_ms),
        _check_validity(proven, as_of_ms),
        _check_issuer(proven),
    ]
    recognised, agreement = _check_recognised(proven, agency)
    checks.append(recognised)
    checks.append(Check("proofs", proven is not None, proofs_problem or _proofs_detail(proven)))
    ok = all(c.ok for c in checks)
    status = "UNKNOWN"
    if proven is not None:
        stored = proven.record.status_at(as_of_ms)
        status = "NOT_ISSUED" if stored is None else stored
        if stored == VALID:
            status = date_status(proven.record.valid_from, proven.record.valid_until, as_of_ms)
    return Verdict(
        verdict="VALID" if ok else "INVALID", cert_id=target or "", as_of=as_of_ms,
        status=status, height=proven.header.height if proven else None, agency=agency or "",
        agreement=agreement, checks=checks,
    )


# -- inputs ------------------------------------------------------------------------------------


def _document(document: Document | str | bytes | dict[str, Any] | None
              ) -> tuple[Document | None, str | None]:
    if document is None or isinstance(document, Document):
        return document, None
    try:
        return parse_document(document), None
    except DocumentError as exc:
        return None, str(exc)


def _target(doc: Document | None, cert_id: str | None) -> tuple[str | None, str | None]:
    if cert_id is not None:
        try:
            canonical = str(parse_cert_id(cert_id))
        except IdentifierError as exc:
            return None, str(exc)
        if doc is not None and doc.cert_id != canonical:
            return doc.cert_id, f"the document is {doc.cert_id}, not {canonical}"
        return canonical, None
    return (doc.cert_id, None) if doc is not None else (None, None)


def _proofs(genesis: Genesis, bundle: CertBundle | bytes | None, target: str | None
            ) -> tuple[Proven | None, str | None]:
    if bundle is None:
        return None, "no proof bundle: nothing on the ledger can be confirmed"
    if isinstance(bundle, bytes):
        try:
            bundle = decode_bundle(bundle)
        except DecodeError as exc:
            return None, f"the bundle does not decode: {exc}{older_certificate_hint(exc)}"
    if target is None:
        return None, "no valid certificate identifier to look for in the bundle"
    try:
        return check_bundle(genesis, bundle, target), None
    except ProofError as exc:
        return None, str(exc)


# -- the checks --------------------------------------------------------------------------------


def _check_document(doc: Document | None, given: bool, problem: str | None, target: str | None,
                    proven: Proven | None) -> Check:
    if problem is not None:
        return Check("document", False, problem)
    if not given:
        if target is None:
            return Check("document", False, "neither a document nor an identifier was given")
        return Check("document", True, f"no document given: checking the ledger record of "
                                       f"{target}")
    assert doc is not None
    if proven is None or proven.cert_type is None:
        return Check("document", False, "cannot check the type schema: the certificate type "
                                        "is not proven (see proofs)")
    schema = schema_problem(doc, proven.cert_type)
    if schema:
        return Check("document", False, schema)
    return Check("document", True, f"well-formed {proven.cert_type.name} "
                                   f"({proven.cert_type.code})")


def _check_signature(genesis: Genesis, doc: Document | None, given: bool,
                     proven: Proven | None) -> Check:
    if not given:
        return Check("signature", True, "not applicable: no document given")
    if doc is None:
        return Check("signature", False, "cannot check: the document is malformed")
    if proven is None:
        return Check("signature", False, "cannot check: the issuer key is known only from "
                                         "the proven ledger record (see proofs)")
    if doc.suite != genesis.suite:
        return Check("signature", False, f"signed with suite {doc.suite!r}; this network "
                                         f"uses {genesis.suite!r}")
    if doc.signer != proven.record.signer:
        return Check("signature", False, "signed by a key other than the one that issued the "
                                         "certificate on the ledger")
    if not doc.signature_ok(genesis.crypto):
        return Check("signature", False, "the issuer signature does not verify over the "
                                         "document's canonical bytes")
    algorithm = "SM2 with SM3" if genesis.suite == "sm" else "Ed25519"
    return Check("signature", True, f"{algorithm} signature of the issuing key "
                                    f"{doc.signer.hex()[:16]}… verifies")


def _check_anchored(genesis: Genesis, doc: Document | None, given: bool,
                    proven: Proven | None) -> Check:
    if not given:
        return Check("anchored", True, "not applicable: no document given")
    if doc is None:
        return Check("anchored", False, "cannot check: the document is malformed")
    if proven is None:
        return Check("anchored", False, _CANNOT)
    record = proven.record
    digest = doc.digest(genesis.crypto)
    if digest != record.digest:
        return Check("anchored", False, f"document digest {digest.hex()[:16]}… differs from "
                                        f"the ledger's {record.digest.hex()[:16]}…")
    mismatch = _record_mismatch(doc, record)
    if mismatch:
        return Check("anchored", False, f"the ledger record disagrees with the document: "
                                        f"{mismatch}")
    return Check("anchored", True, f"digest {digest.hex()[:16]}… recorded at height "
                                   f"{record.issued_height}")


def _record_mismatch(doc: Document, record: CertRecord) -> str:
    c = doc.certificate
    pairs = [("identifier", c["identifier"], record.id), ("type", c["type_code"], record.type),
             ("issuer", c["issuer_uscc"], record.issuer),
             ("version", c["version"], f"{record.version:03d}"),
             ("valid_from", c["valid_from"], record.valid_from),
             ("valid_until", c["valid_until"], record.valid_until),
             ("supersedes", c["supersedes"], record.supersedes),
             ("holder_code_type", c["holder_code_type"], record.holder_code_type)]
    if record.holder_code_type == LEGAL_PERSON:
        pairs.append(("holder", c["holder_code"], record.holder))
    return ", ".join(name for name, a, b in pairs if a != b)


def _check_status(proven: Proven | None, as_of_ms: int) -> Check:
    if proven is None:
        return Check("status", False, _CANNOT)
    record, header = proven.record, proven.header
    stored = record.status_at(as_of_ms)
    if stored is None:
        return Check("status", False, f"not yet issued at {fmt_time(as_of_ms)} (issued "
                                      f"{fmt_time(record.issued_time)})")
    last = [e for e in record.history if e.time <= as_of_ms][-1]
    known = (f"as recorded up to block {header.height} ({fmt_time(header.time)})"
             if as_of_ms >= header.time else f"at {fmt_time(as_of_ms)}")
    if stored == VALID:
        return Check("status", True, f"VALID {known}")
    since = f"since height {last.height} ({fmt_time(last.time)})"
    if last.event == "supersede":
        return Check("status", False, f"SUPERSEDED by {record.superseded_by} {since}")
    return Check("status", False, f"{stored} {since}: {last.reason}")


def _check_validity(proven: Proven | None, as_of_ms: int) -> Check:
    if proven is None:
        return Check("validity", False, _CANNOT)
    r = proven.record
    window = f"{r.valid_from} to {r.valid_until}"
    day = cst_date(as_of_ms).isoformat()
    state = date_status(r.valid_from, r.valid_until, as_of_ms)
    if state == VALID:
        return Check("validity", True, f"{day} is within {window}")
    if state == "EXPIRED":
        return Check("validity", False, f"EXPIRED: valid until {r.valid_until}, as-of {day}")
    return Check("validity", False, f"not yet valid: valid from {r.valid_from}, as-of {day}")


def _check_issuer(proven: Proven | None) -> Check:
    if proven is None:
        return Check("issuer_authorised", False, _CANNOT)
    record, auth = proven.record, proven.issuer
    name = proven.cert_type.name if proven.cert_type else record.type
    if auth is None:
        return Check("issuer_authorised", False, f"{record.issuer} has never been authorised "
                                                 f"to issue {name}")
    h = record.issued_height
    if not auth.authorised_at(h):
        return Check("issuer_authorised", False, f"{record.issuer} was not authorised to issue "
                                                 f"{name} at height {h}")
    period = next(p for p in auth.periods if p.from_height <= h and (
        p.until_height is None or h < p.until_height))
    until = ("and still is" if period.until_height is None
             else f"until height {period.until_height}")
    return Check("issuer_authorised", True, f"{record.issuer} authorised for {name} from height "
                                            f"{period.from_height} {until}; issued at height {h}")


def _check_recognised(proven: Proven | None, agency: str | None) -> tuple[Check, str]:
    if not agency:
        return Check("recognised", True, "no verifying agency given"), ""
    try:
        agency = validate_uscc(agency)
    except IdentifierError as exc:
        return Check("recognised", False, f"verifying agency: {exc}"), ""
    if proven is None:
        return Check("recognised", False, _CANNOT), ""
    record = proven.record
    name = proven.cert_type.name if proven.cert_type else record.type
    if agency == record.issuer:
        return Check("recognised", True, "the verifying agency is the issuer"), ""
    if agency not in proven.recognitions:
        return Check("recognised", False, f"cannot check: the bundle carries no proof about "
                                          f"agency {agency}; ask for one with agency={agency}"), ""
    rec = proven.recognitions[agency]
    if rec is None:
        return Check("recognised", False, f"{agency} has no recognition agreement for "
                                          f"{name}"), ""
    if rec.withdrawn_height is not None:
        return Check("recognised", False, f"agreement {rec.label} of {agency} for {name} was "
                                          f"withdrawn at height {rec.withdrawn_height}"), ""
    if record.issuer not in rec.issuers:
        return Check("recognised", False, f"agreement {rec.label}: {agency} accepts {name} "
                                          f"only from {', '.join(rec.issuers)}"), ""
    return Check("recognised", True, f"{agency} accepts {name} from {record.issuer} under "
                                     f"agreement {rec.label} (recorded at height "
                                     f"{rec.recorded_height})"), rec.label


def _proofs_detail(proven: Proven | None) -> str:
    assert proven is not None
    h = proven.header
    links = proven.links
    return (f"block {h.height} ({fmt_time(h.time)}) certified by {proven.signers} of "
            f"{proven.validators} validators from the genesis file"
            f"{f' through {links} validator-set change(s)' if links else ''}; state proofs of "
            f"record, type, issuer authorisation and {len(proven.recognitions)} recognition "
            f"agreement(s) verify")
