"""Certificate lifecycle transactions: issue, suspend, reinstate, revoke, renew.

Theory of operation
-------------------
Each handler runs inside deterministic execution (:mod:`ledger.execution`):
it reads the state of the block being executed, raises
:class:`~ledger.errors.TxRejected` with a reason for anything not allowed,
and otherwise writes the certificate record (:mod:`certs.records`) and the
lookup indexes. No clock, no randomness, no IO; time is the block's.

Who may act: the sender must be an active account with the ``issuer`` role
belonging to the organisation named as issuer in the identifier, and that
organisation must be authorised for the certificate type *at the height of
this block* (:class:`certs.records.IssuerAuth`). The same rules, read from
the latest committed state, are the admission pre-check (HTTP 403); before it,
admission checks the payload's form without any state (:func:`payload_problem`,
HTTP 400), with the handlers' own validators and words.

Payloads (canonical msgpack maps; no other keys are accepted):

- ``cert.issue``: ``{"id", "digest", "valid_from", "valid_until", "holder",
  "holder_code_type"}`` — version 001 of a new identifier; ``holder`` is the
  USCC (``001``) or the hex HMAC-SM3 of the citizen ID number (``111``),
  never the number itself;
- ``cert.renew``: ``{"id", "supersedes", "digest", "valid_from",
  "valid_until"}`` — the next version of a VALID or SUSPENDED certificate,
  for the same holder; the old one becomes SUPERSEDED;
- ``cert.suspend`` / ``cert.reinstate`` / ``cert.revoke``: ``{"id", "reason"}``; a
  reason with a run of 15+ digits (an ID number, a bank account) is refused, at
  admission too, since it would stay in the record's history and every bundle.

Transitions: VALID → SUSPENDED (suspend), SUSPENDED → VALID (reinstate),
VALID or SUSPENDED → REVOKED (revoke), VALID or SUSPENDED → SUPERSEDED
(renew). REVOKED and SUPERSEDED are final. After HISTORY_MAX status events only
a revocation or a renewal still fits.
"""

from __future__ import annotations

import functools
import re
from dataclasses import replace
from typing import Final

from certs.ids import CertId, IdentifierError, parse_cert_id, validate_uscc
from certs.records import (
    HELD_MAX,
    HISTORY_MAX,
    HOLDER_CODE_TYPES,
    LEGAL_PERSON,
    REVOKED,
    SUPERSEDED,
    SUSPENDED,
    VALID,
    CertRecord,
    StatusEvent,
    cert_key,
    check_validity_dates,
    encode_held,
    encode_record,
    get_cert,
    get_held,
    get_issuer_auth,
    get_type,
    held_key,
    recent_index_key,
)
from ledger import acl, privacy
from ledger.codec import Value
from ledger.errors import DecodeError, TxRejected
from ledger.execution import ExecContext, Registry, StateGet
from ledger.tx import Transaction

ISSUE_TX: Final = "cert.issue"
RENEW_TX: Final = "cert.renew"
SUSPEND_TX: Final = "cert.suspend"
REINSTATE_TX: Final = "cert.reinstate"
REVOKE_TX: Final = "cert.revoke"
TX_TYPES: Final = (ISSUE_TX, RENEW_TX, SUSPEND_TX, REINSTATE_TX, REVOKE_TX)
REASON_CHARS_MAX: Final = 200
DIGEST_BYTES: Final = 32
_HMAC_RE: Final = re.compile(r"[0-9a-f]{64}")

# event -> (statuses it may start from, status it leads to)
_TRANSITIONS: Final = {
    "suspend": ((VALID,), SUSPENDED),
    "reinstate": ((SUSPENDED,), VALID),
    "revoke": ((VALID, SUSPENDED), REVOKED),
}
# Events that end a record's story (revoke; renew's "supersede" on the old version) always
# fit: with the cap on them too, a certificate suspended and reinstated until its history
# was full could be neither revoked nor renewed. So a history holds at most HISTORY_MAX + 1.
_FINAL_EVENTS: Final = frozenset({"revoke"})


def register(registry: Registry) -> None:
    registry.register(ISSUE_TX, issue, precheck=issue_precheck,
                      payload_check=functools.partial(payload_problem, ISSUE_TX))
    for tx_type, handler in ((RENEW_TX, renew), (SUSPEND_TX, suspend),
                             (REINSTATE_TX, reinstate), (REVOKE_TX, revoke)):
        registry.register(tx_type, handler, precheck=precheck,
                          payload_check=functools.partial(payload_problem, tx_type))


# -- who may act ---------------------------------------------------------------------------


def issuer_problem(state_get: StateGet, sender: bytes, cert_id: object, height: int | None
                   ) -> str | None:
    """Why ``sender`` may not act on ``cert_id`` in block ``height`` (None: it may).

    ``height`` None means the next block after the state read (admission).
    """
    if not isinstance(cert_id, str):
        return "payload.id must be a certificate identifier"
    try:
        cid = parse_cert_id(cert_id)
    except IdentifierError as exc:
        return str(exc)
    problem = acl.role_problem(state_get, sender, "issuer", height)
    if problem:
        return problem
    account = acl.active_account(state_get, sender, height)
    assert account is not None
    if account.org != cid.issuer_uscc:
        return (f"sender ({account.name}) belongs to {account.org or 'no organisation'}, "
                f"not to the certificate's issuer {cid.issuer_uscc}")
    cert_type = get_type(state_get, cid.type_code)
    if cert_type is None:
        return f"certificate type {cid.type_code} is not registered"
    auth = get_issuer_auth(state_get, cid.type_code, cid.issuer_uscc)
    authorised = auth is not None and (auth.current if height is None
                                       else auth.authorised_at(height))
    if not authorised:
        at = "now" if height is None else f"at height {height}"
        return (f"{account.name} ({cid.issuer_uscc}) is not authorised to issue "
                f"{cert_type.name} ({cid.type_code}) {at}")
    return None


def precheck(state_get: StateGet, tx: Transaction) -> str | None:
    """Admission: the same rule against the latest committed state, for the next block."""
    return issuer_problem(state_get, tx.sender, tx.payload.get("id"), None)


PAYLOAD_FIELDS: Final = {
    ISSUE_TX: {"id", "digest", "valid_from", "valid_until", "holder", "holder_code_type"},
    RENEW_TX: {"id", "supersedes", "digest", "valid_from", "valid_until"},
    SUSPEND_TX: {"id", "reason"}, REINSTATE_TX: {"id", "reason"}, REVOKE_TX: {"id", "reason"},
}


def payload_problem(tx_type: str, payload: dict[str, Value]) -> str | None:
    """What the handler of ``tx_type`` refuses in ``payload`` whatever the state, in its
    words, or None: admission's stateless check (HTTP 400), so a malformed certificate
    transaction never reaches a block (where a refused one would still stay for good)."""
    try:
        _fields(payload, PAYLOAD_FIELDS[tx_type])
        cert_id = payload["id"]
        if not isinstance(cert_id, str):
            return "payload.id must be a certificate identifier"
        _canonical_id(cert_id)
        if tx_type == ISSUE_TX:
            _holder(payload)
            _first_version(cert_id)
        if tx_type in (ISSUE_TX, RENEW_TX):
            _digest(payload)
            _validity(payload)
        if tx_type == RENEW_TX:
            _supersedes(payload)
        if tx_type in (SUSPEND_TX, REINSTATE_TX, REVOKE_TX):
            _reason(payload)
    except (TxRejected, IdentifierError) as exc:
        return str(exc)
    return None


def issue_precheck(state_get: StateGet, tx: Transaction) -> str | None:
    """Admission of ``cert.issue``: the issuer rule, and an identifier not yet issued (a
    re-run import or a retried command learns at once that its certificate is there)."""
    problem = precheck(state_get, tx)
    cert_id = tx.payload.get("id")
    if problem is None and isinstance(cert_id, str) and get_cert(state_get, cert_id):
        return f"certificate {cert_id} was already issued"
    return problem


def _require_issuer(ctx: ExecContext) -> None:
    problem = issuer_problem(ctx.state.get, ctx.sender, ctx.tx.payload.get("id"), ctx.height)
    if problem:
        raise TxRejected(problem)


# -- payload helpers ---------------------------------------------------------------------------


def _fields(payload: dict[str, Value], wanted: set[str]) -> None:
    unknown = sorted(set(payload) - wanted)
    if unknown:
        raise TxRejected(f"unknown payload field(s): {', '.join(unknown)}")
    missing = sorted(wanted - set(payload))
    if missing:
        raise TxRejected(f"payload lacks {', '.join(missing)}")


def _digest(payload: dict[str, Value]) -> bytes:
    digest = payload["digest"]
    if not isinstance(digest, bytes) or len(digest) != DIGEST_BYTES:
        raise TxRejected(f"payload.digest must be the {DIGEST_BYTES}-byte hash of the document")
    return digest


def _validity(payload: dict[str, Value]) -> tuple[str, str]:
    valid_from, valid_until = payload["valid_from"], payload["valid_until"]
    try:
        check_validity_dates(valid_from, valid_until)
    except DecodeError as exc:
        raise TxRejected(f"payload: {exc}") from None
    assert isinstance(valid_from, str) and isinstance(valid_until, str)
    return valid_from, valid_until


def _reason(payload: dict[str, Value]) -> str:
    reason = payload["reason"]
    if not isinstance(reason, str) or not reason.strip() or len(reason) > REASON_CHARS_MAX:
        raise TxRejected(f"payload.reason must be a non-empty string of at most "
                         f"{REASON_CHARS_MAX} characters")
    if any(ord(c) < 0x20 for c in reason):
        raise TxRejected("payload.reason must not contain control characters")
    problem = privacy.identifier_problem(
        reason, "payload.reason",
        hint="a reason says what happened, never whose ID number or account it was")
    if problem:
        raise TxRejected(problem)
    return reason.strip()


def _holder(payload: dict[str, Value]) -> tuple[str, str]:
    code_type, holder = payload["holder_code_type"], payload["holder"]
    if code_type not in HOLDER_CODE_TYPES:
        raise TxRejected("payload.holder_code_type must be 001 (USCC) or 111 (citizen ID)")
    if not isinstance(holder, str):
        raise TxRejected("payload.holder must be a string")
    if code_type == LEGAL_PERSON:
        try:
            if validate_uscc(holder) != holder:
                raise TxRejected("payload.holder must be a USCC in canonical (upper case) form")
        except IdentifierError as exc:
            raise TxRejected(f"payload.holder: {exc}") from None
    elif not _HMAC_RE.fullmatch(holder):
        raise TxRejected("payload.holder of a natural person must be the HMAC of the ID "
                         "number (64 lowercase hex digits); the number itself never goes on "
                         "the ledger")
    assert isinstance(code_type, str)
    return holder, code_type


def _event(ctx: ExecContext, event: str, status: str, reason: str = "") -> StatusEvent:
    return StatusEvent(event=event, status=status, height=ctx.height, time=ctx.time_ms,
                       reason=reason, by=ctx.sender)


def _write(ctx: ExecContext, record: CertRecord, new: bool, replaces: str = "") -> None:
    ctx.state.put(cert_key(record.id), encode_record(record))
    if new:
        held = [i for i in get_held(ctx.state.get, record.holder, record.type) if i != replaces]
        if len(held) >= HELD_MAX:
            raise TxRejected(f"the holder already has {HELD_MAX} certificates of this type")
        ctx.state.put(held_key(record.holder, record.type), encode_held([*held, record.id]))
        ctx.index.put(recent_index_key(ctx.height, record.id), b"1")
    ctx.data = {"cert_id": record.id, "status": record.status}


def _supersedes(payload: dict[str, Value]) -> str:
    old_id = payload["supersedes"]
    if not isinstance(old_id, str):
        raise TxRejected("payload.supersedes must be the identifier of the version renewed")
    return old_id


def _first_version(cert_id: str) -> CertId:
    cid = parse_cert_id(cert_id)
    if cid.version != 1:
        raise TxRejected(f"a new certificate has version 001, not {cid.version:03d}; "
                         "later versions come from cert.renew")
    return cid


def _canonical_id(value: Value) -> str:
    assert isinstance(value, str)
    cid = parse_cert_id(value)
    if str(cid) != value:
        raise TxRejected("payload.id must be in canonical form (upper case, no spaces)")
    return value


# -- handlers -----------------------------------------------------------------------------------


def issue(ctx: ExecContext) -> None:
    payload = ctx.tx.payload
    _fields(payload, PAYLOAD_FIELDS[ISSUE_TX])
    _require_issuer(ctx)
    cert_id = _canonical_id(payload["id"])
    cid = _first_version(cert_id)
    if get_cert(ctx.state.get, cert_id) is not None:
        raise TxRejected(f"certificate {cert_id} was already issued")
    holder, code_type = _holder(payload)
    cert_type = get_type(ctx.state.get, cid.type_code)
    assert cert_type is not None
    if code_type not in cert_type.holder_code_types:
        raise TxRejected(f"{cert_type.name} is not issued to holders of code type {code_type}")
    valid_from, valid_until = _validity(payload)
    record = CertRecord(
        id=cert_id, type=cid.type_code, issuer=cid.issuer_uscc, version=1,
        valid_from=valid_from, valid_until=valid_until, holder=holder,
        holder_code_type=code_type, digest=_digest(payload), signer=ctx.sender,
        issued_height=ctx.height, issued_time=ctx.time_ms, supersedes="", superseded_by="",
        status=VALID, history=[_event(ctx, "issue", VALID)],
    )
    _write(ctx, record, new=True)


def renew(ctx: ExecContext) -> None:
    payload = ctx.tx.payload
    _fields(payload, PAYLOAD_FIELDS[RENEW_TX])
    _require_issuer(ctx)
    cert_id = _canonical_id(payload["id"])
    old_id = _supersedes(payload)
    old = get_cert(ctx.state.get, old_id)
    if old is None:
        raise TxRejected(f"no certificate {old_id} to renew")
    cid, old_cid = parse_cert_id(cert_id), parse_cert_id(old_id)
    if (cid.type_code, cid.issuer_uscc, cid.serial, cid.version) != (
            old_cid.type_code, old_cid.issuer_uscc, old_cid.serial, old_cid.version + 1):
        raise TxRejected(f"the renewal of {old_id} must be its next version "
                         f"(same type, issuer and serial, version {old_cid.version + 1:03d})")
    if old.status not in (VALID, SUSPENDED):
        raise TxRejected(f"certificate {old_id} is {old.status} and cannot be renewed")
    if get_cert(ctx.state.get, cert_id) is not None:
        raise TxRejected(f"certificate {cert_id} was already issued")
    valid_from, valid_until = _validity(payload)
    new = CertRecord(
        id=cert_id, type=old.type, issuer=old.issuer, version=cid.version,
        valid_from=valid_from, valid_until=valid_until, holder=old.holder,
        holder_code_type=old.holder_code_type, digest=_digest(payload), signer=ctx.sender,
        issued_height=ctx.height, issued_time=ctx.time_ms, supersedes=old_id,
        superseded_by="", status=VALID, history=[_event(ctx, "renew", VALID)],
    )
    superseded = replace(old, status=SUPERSEDED, superseded_by=cert_id, history=[
        *old.history, _event(ctx, "supersede", SUPERSEDED, f"renewed as {cert_id}")])
    ctx.state.put(cert_key(old_id), encode_record(superseded))
    _write(ctx, new, new=True, replaces=old_id)
    ctx.data["supersedes"] = old_id


def _transition(ctx: ExecContext, event: str) -> None:
    payload = ctx.tx.payload
    _fields(payload, PAYLOAD_FIELDS[SUSPEND_TX])
    _require_issuer(ctx)
    cert_id = _canonical_id(payload["id"])
    reason = _reason(payload)
    record = get_cert(ctx.state.get, cert_id)
    if record is None:
        raise TxRejected(f"no certificate {cert_id}")
    allowed_from, to = _TRANSITIONS[event]
    if record.status not in allowed_from:
        raise TxRejected(f"cannot {event} certificate {cert_id}: it is {record.status} "
                         f"({event} applies to {' or '.join(allowed_from)})")
    if event not in _FINAL_EVENTS and len(record.history) >= HISTORY_MAX:
        raise TxRejected(f"certificate {cert_id} has {HISTORY_MAX} status events, the most "
                         f"before its end; revoke it, or renew it to continue its story")
    updated = replace(record, status=to, history=[*record.history,
                                                  _event(ctx, event, to, reason)])
    _write(ctx, updated, new=False)


def suspend(ctx: ExecContext) -> None:
    _transition(ctx, "suspend")


def reinstate(ctx: ExecContext) -> None:
    _transition(ctx, "reinstate")


def revoke(ctx: ExecContext) -> None:
    _transition(ctx, "revoke")
