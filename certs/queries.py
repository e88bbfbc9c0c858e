"""Read-only certificate queries over a node's chain (no IO of their own).

Theory of operation
-------------------
Routes (:mod:`certs.routes`) answer from the latest committed state and the
certificate indexes written by :mod:`certs.handlers`. A view is the stored
record (:class:`certs.records.CertRecord`) plus what a reader wants computed:
the effective status now (EXPIRED / NOT_YET_VALID from the dates), the type
name and the issuer's name. Lookups by holder use the index
``certs/holder/<holder>/<id>``: a legal person by its USCC, a natural person
only by the HMAC of the ID number (:func:`citizen_holder`), which the node
computes from a number given in a request and never stores or logs.

Every listing has a bound (:data:`LIST_MAX`); the cost of a lookup grows
with its answer, not with the ledger.
"""

from __future__ import annotations

from typing import Any, Final

from certs.ids import validate_citizen_id
from certs.records import (
    DAY_MS,
    EXPIRED,
    ISSUER_PREFIX,
    NOT_YET_VALID,
    RECENT_INDEX,
    RECOGNITION_PREFIX,
    REVOKED,
    SUSPENDED,
    TYPE_PREFIX,
    VALID,
    CertRecord,
    CertType,
    IssuerAuth,
    Recognition,
    cst_midnight_ms,
    decode_record,
    effective_status,
    get_cert,
    get_held,
    get_type,
    held_prefix,
    parse_date,
)
from ledger import acl
from ledger.chain import Chain
from ledger.codec import decode_value
from ledger.crypto import Suite
from ledger.errors import DecodeError
from ledger.execution import StateGet
from ledger.network import BUSINESS_LICENCE
from ledger.privacy import holder_hash

LIST_MAX: Final = 500


def cert_view(chain: Chain, record: CertRecord, now_ms: int) -> dict[str, Any]:
    """The record with its effective status and names, for humans and scripts."""
    state_get = chain.state_get
    cert_type = get_type(state_get, record.type)
    org = acl.get_org(state_get, record.issuer)
    return {
        "cert_id": record.id, "status": effective_status(record, now_ms),
        "stored_status": record.status, "type": record.type,
        "type_name": cert_type.name if cert_type else "", "issuer": record.issuer,
        "issuer_name": org.name if org else "", "version": record.version,
        "valid_from": record.valid_from, "valid_until": record.valid_until,
        "holder_code_type": record.holder_code_type, "holder": record.holder,
        "digest": record.digest, "signer": record.signer,
        "issued_height": record.issued_height, "issued_time": record.issued_time,
        "supersedes": record.supersedes, "superseded_by": record.superseded_by,
        "history": [{"event": e.event, "status": e.status, "height": e.height, "time": e.time,
                     "reason": e.reason, "by": e.by} for e in record.history],
        "head_height": chain.height,
    }


def find(chain: Chain, cert_id: str) -> CertRecord | None:
    return get_cert(chain.state_get, cert_id)


def by_holder(chain: Chain, holder: str, now_ms: int, include_superseded: bool = False,
              limit: int = LIST_MAX) -> list[dict[str, Any]]:
    """Certificates of one holder (a USCC, or the hex HMAC of an ID number): the latest
    version of each, and with ``include_superseded`` the earlier versions too."""
    out: list[dict[str, Any]] = []
    for _, raw in _bounded(chain.store.iter_state(held_prefix(holder))):
        for cert_id in decode_value(raw) or []:  # type: ignore[union-attr]
            record = get_cert(chain.state_get, str(cert_id))
            while record is not None and len(out) < limit:
                out.append(cert_view(chain, record, now_ms))
                if not include_superseded or not record.supersedes:
                    break
                record = get_cert(chain.state_get, record.supersedes)
    return out


def business_licence_status(state_get: StateGet, uscc: str, on_date: str,
                            type_code: str = BUSINESS_LICENCE.code) -> str | None:
    """Status of ``uscc``'s business licence (营业执照) on ``on_date`` (``YYYY-MM-DD``):
    VALID, SUSPENDED, EXPIRED, REVOKED or MISSING; None if the date is malformed.

    A pure function of the authenticated state, for use inside execution (the fiscal
    red-flag rule). The status is the one at the end of that day (China Standard Time),
    of the version that was current then; with several licences the best one counts.
    """
    try:
        moment = cst_midnight_ms(parse_date(on_date, "date")) + DAY_MS - 1
    except DecodeError:
        return None
    found: list[str] = []
    for cert_id in get_held(state_get, uscc, type_code):
        record = get_cert(state_get, cert_id)
        while record is not None and record.issued_time > moment and record.supersedes:
            record = get_cert(state_get, record.supersedes)
        if record is not None and record.issued_time <= moment:
            status = effective_status(record, moment)
            found.append("MISSING" if status == NOT_YET_VALID else status)
    for status in (VALID, SUSPENDED, EXPIRED, REVOKED):
        if status in found:
            return status
    return "MISSING"


def citizen_holder(suite: Suite, consortium_key: bytes, id_number: str) -> str:
    """The holder value stored for a natural person (IdentifierError for a bad number)."""
    return holder_hash(suite, consortium_key, validate_citizen_id(id_number)).hex()


def recent(chain: Chain, now_ms: int, limit: int = 50) -> list[dict[str, Any]]:
    """The most recently issued certificate versions, newest first."""
    out: list[dict[str, Any]] = []
    for key, _ in chain.store.iter_index(RECENT_INDEX, reverse=True):
        record = get_cert(chain.state_get, key[len(RECENT_INDEX) + 8:].decode())
        if record is not None:
            out.append(cert_view(chain, record, now_ms))
        if len(out) >= limit:
            break
    return out


def cert_types(chain: Chain) -> list[dict[str, Any]]:
    """Registered types with their schema, current issuers and recognition agreements."""
    out = []
    for _, raw in _bounded(chain.store.iter_state(TYPE_PREFIX)):
        out.append(type_view(chain, decode_record(raw, CertType)))
    return out


def type_view(chain: Chain, cert_type: CertType) -> dict[str, Any]:
    issuers = []
    prefix = ISSUER_PREFIX + cert_type.code.encode() + b"/"
    for _, raw in _bounded(chain.store.iter_state(prefix)):
        auth = decode_record(raw, IssuerAuth)
        org = acl.get_org(chain.state_get, auth.issuer)
        issuers.append({"uscc": auth.issuer, "name": org.name if org else "",
                        "current": auth.current,
                        "periods": [{"from_height": p.from_height,
                                     "until_height": p.until_height} for p in auth.periods]})
    return {"code": cert_type.code, "name": cert_type.name,
            "holder_code_types": cert_type.holder_code_types,
            "fields": [{"name": f.name, "label": f.label, "required": f.required}
                       for f in cert_type.fields],
            "registered_height": cert_type.registered_height, "issuers": issuers}


def find_type(chain: Chain, code: str) -> CertType | None:
    return get_type(chain.state_get, code)


def recognitions(chain: Chain, type_code: str | None = None) -> list[dict[str, Any]]:
    prefix = RECOGNITION_PREFIX + (type_code.encode() + b"/" if type_code else b"")
    out = []
    for _, raw in _bounded(chain.store.iter_state(prefix)):
        rec = decode_record(raw, Recognition)
        org = acl.get_org(chain.state_get, rec.agency)
        out.append({"agreement": rec.label, "number": rec.number, "agency": rec.agency,
                    "agency_name": org.name if org else "", "type": rec.type,
                    "issuers": rec.issuers, "note": rec.note,
                    "recorded_height": rec.recorded_height,
                    "withdrawn_height": rec.withdrawn_height})
    return out


def _bounded(items: Any) -> Any:
    for i, item in enumerate(items):
        if i >= LIST_MAX:
            return
        yield item

