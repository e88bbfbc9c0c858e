"""Certificate lifecycle handlers over an in-process chain (certs.handlers).

Every path of the lifecycle, every refusal with its reason, what the ledger
stores (no personal data in clear), and the holder lookups built on it.
"""

from __future__ import annotations

import pytest

from certs import queries
from certs.handlers import issue_precheck, payload_problem, precheck
from certs.ids import format_cert_id, parse_cert_id
from certs.issuing import issue_payload, renew_payload
from certs.records import (
    HISTORY_MAX,
    LONG_TERM,
    REVOKED,
    SUPERSEDED,
    SUSPENDED,
    VALID,
    effective_status,
    get_cert,
    get_held,
)
from ledger.codec import Value
from ledger.privacy import holder_hash
from tests.unit.certs_harness import (
    CITIZEN,
    CONSORTIUM_KEY,
    DAY,
    LICENCE,
    PERMIT,
    SKILL,
    T0,
    CertNet,
    uscc,
)


@pytest.fixture
def net() -> CertNet:
    return CertNet()


def test_issue_writes_the_spec_fields_only(net: CertNet) -> None:
    """Goal: issuing anchors the document's digest with SPEC §5 fields and nothing personal.
    Method: issue a licence; read the record; compare digest, signer, validity, holder and
    history; check the held list and that no field holds the document's text."""
    doc, result = net.issue()
    assert result.ok, result.reason
    assert result.data == {"cert_id": doc.cert_id, "status": VALID}
    record = get_cert(net.chain.state_get, doc.cert_id)
    assert record is not None
    assert record.digest == doc.digest(net.suite)
    assert record.signer == net.devnet.account_keys["scjgj"].public_key().raw
    assert (record.type, record.issuer, record.version) == (LICENCE, uscc("scjgj"), 1)
    assert (record.valid_from, record.valid_until) == ("2025-01-01", LONG_TERM)
    assert (record.holder, record.holder_code_type) == (uscc("slkj"), "001")
    assert record.status == VALID and [e.event for e in record.history] == ["issue"]
    assert record.issued_height == 1 and record.issued_time == net.time
    assert get_held(net.chain.state_get, uscc("slkj"), LICENCE) == [doc.cert_id]
    raw = net.chain.state_get(b"certs/cert/" + doc.cert_id.encode()) or b""
    assert "林示例".encode() not in raw and doc.certificate["holder_name"].encode() not in raw


def test_citizen_holder_is_only_an_hmac(net: CertNet) -> None:
    """Goal: a natural person's ID number never reaches the ledger; the record holds the
    HMAC-SM3 under the consortium key, and lookups by that HMAC find it. Method: issue a
    citizen certificate, scan every state value for the number, look it up by HMAC."""
    doc, result = net.issue("rsj", type_code=SKILL)
    assert result.ok, result.reason
    record = get_cert(net.chain.state_get, doc.cert_id)
    assert record is not None and record.holder_code_type == "111"
    assert record.holder == holder_hash(net.suite, CONSORTIUM_KEY, CITIZEN).hex()
    for _, value in net.chain.store.iter_state(b""):
        assert CITIZEN.encode() not in value
    holder = queries.citizen_holder(net.suite, CONSORTIUM_KEY, CITIZEN.lower())
    found = queries.by_holder(net.chain, holder, net.time)
    assert [c["cert_id"] for c in found] == [doc.cert_id]


def test_citizen_id_in_clear_is_refused(net: CertNet) -> None:
    """Goal: a transaction that tries to put a citizen ID number on the ledger fails.
    Method: build the issue payload, replace the HMAC by the number itself."""
    doc = net.document("rsj", type_code=SKILL)
    payload = issue_payload(net.suite, doc, CONSORTIUM_KEY)
    payload["holder"] = CITIZEN
    result = net.send("rsj", "cert.issue", payload)
    assert not result.ok and "never goes on the ledger" in result.reason


def test_lifecycle_suspend_reinstate_revoke(net: CertNet) -> None:
    """Goal: the status machine VALID -> SUSPENDED -> VALID -> REVOKED, each event in the
    history with its reason, and REVOKED final. Method: one transaction per block; then
    try every transition from REVOKED."""
    doc, _ = net.issue()
    for event, status in (("suspend", SUSPENDED), ("reinstate", VALID), ("revoke", REVOKED)):
        result = net.act(event, doc.cert_id, reason=f"because {event}")
        assert result.ok, result.reason
        assert result.data["status"] == status
    record = get_cert(net.chain.state_get, doc.cert_id)
    assert record is not None
    assert [(e.event, e.status, e.reason) for e in record.history] == [
        ("issue", VALID, ""), ("suspend", SUSPENDED, "because suspend"),
        ("reinstate", VALID, "because reinstate"), ("revoke", REVOKED, "because revoke")]
    for event in ("suspend", "reinstate", "revoke"):
        result = net.act(event, doc.cert_id)
        assert not result.ok and f"cannot {event}" in result.reason and "REVOKED" in result.reason


@pytest.mark.parametrize(("setup", "event", "expected"), [
    ((), "reinstate", "it is VALID (reinstate applies to SUSPENDED)"),
    (("suspend",), "suspend", "it is SUSPENDED (suspend applies to VALID)"),
    (("suspend",), "revoke", None),
])
def test_transitions_from_each_state(net: CertNet, setup: tuple[str, ...], event: str,
                                     expected: str | None) -> None:
    """Goal: each transition is allowed exactly from the states the rules name. Method:
    bring a certificate to a state, attempt one event, compare the outcome."""
    doc, _ = net.issue()
    for step in setup:
        assert net.act(step, doc.cert_id).ok
    result = net.act(event, doc.cert_id)
    if expected is None:
        assert result.ok, result.reason
    else:
        assert not result.ok and expected in result.reason


def test_renew_supersedes_the_old_version(net: CertNet) -> None:
    """Goal: renew issues version 002 that names 001, 001 becomes SUPERSEDED (final), the
    held list moves to 002 and holder lookups show both with all=True. Method: issue,
    renew, then try to renew and suspend 001 again."""
    old, _ = net.issue()
    new, result = net.renew(old, valid_until="2030-12-31")
    assert result.ok, result.reason
    assert result.data["supersedes"] == old.cert_id
    assert new.certificate["supersedes"] == old.cert_id and new.cert_id.endswith(
        ".002." + new.cert_id[-1])
    old_record = get_cert(net.chain.state_get, old.cert_id)
    new_record = get_cert(net.chain.state_get, new.cert_id)
    assert old_record is not None and new_record is not None
    assert old_record.status == SUPERSEDED and old_record.superseded_by == new.cert_id
    assert new_record.status == VALID and new_record.holder == old_record.holder
    assert get_held(net.chain.state_get, uscc("slkj"), LICENCE) == [new.cert_id]
    assert [c["cert_id"] for c in queries.by_holder(net.chain, uscc("slkj"), net.time)] == [
        new.cert_id]
    assert [c["status"] for c in queries.by_holder(net.chain, uscc("slkj"), net.time,
                                                   include_superseded=True)] == [
        VALID, SUPERSEDED]
    again = net.send("scjgj", "cert.renew", {**renew_payload(net.suite, new),
                                             "supersedes": old.cert_id})
    assert not again.ok
    assert not net.act("suspend", old.cert_id).ok


def test_renew_rules(net: CertNet) -> None:
    """Goal: a renewal must be exactly the next version of a live certificate. Method:
    craft renew payloads that skip a version, change serial, renew a revoked one."""
    old, _ = net.issue()
    base = {"digest": bytes(32), "valid_from": "2026-01-01", "valid_until": LONG_TERM}
    cid = parse_cert_id(old.cert_id)
    v3 = format_cert_id(cid.type_code, cid.issuer_uscc, cid.serial, 3)
    other = format_cert_id(cid.type_code, cid.issuer_uscc, cid.serial + "X", 2)
    for new_id, reason in ((v3, "must be its next version"), (other, "must be its next version")):
        r = net.send("scjgj", "cert.renew", {**base, "id": new_id, "supersedes": old.cert_id})
        assert not r.ok and reason in r.reason, r.reason
    assert net.act("revoke", old.cert_id).ok
    v2 = format_cert_id(cid.type_code, cid.issuer_uscc, cid.serial, 2)
    r = net.send("scjgj", "cert.renew", {**base, "id": v2, "supersedes": old.cert_id})
    assert not r.ok and "is REVOKED and cannot be renewed" in r.reason


@pytest.mark.parametrize("end", ["revoke", "renew"])
def test_a_certificate_with_a_full_history_can_still_be_revoked_or_renewed(
        net: CertNet, end: str) -> None:
    """Goal: however often a certificate was suspended and reinstated, its issuer can still
    end it: the status-event cap stops suspensions and reinstatements, never the revocation
    or renewal (with both capped, a full history could be neither, each refusal pointing at
    the other). Method: suspend and reinstate until the history holds HISTORY_MAX events;
    one more suspension is refused and says what still fits; then revoke or renew, and
    verify the certificate's proof bundle, whose record has HISTORY_MAX + 1 events."""
    doc, _ = net.issue()
    for i in range(HISTORY_MAX - 1):
        result = net.act("suspend" if i % 2 == 0 else "reinstate", doc.cert_id)
        assert result.ok, result.reason
    record = get_cert(net.chain.state_get, doc.cert_id)
    assert record is not None and len(record.history) == HISTORY_MAX
    assert record.status == SUSPENDED
    refused = net.act("reinstate", doc.cert_id)
    assert not refused.ok and "revoke it, or renew it" in refused.reason
    if end == "revoke":
        result = net.act("revoke", doc.cert_id, reason="licence withdrawn")
        assert result.ok, result.reason
        final = get_cert(net.chain.state_get, doc.cert_id)
        assert final is not None and final.status == REVOKED
        verdict = net.verify(doc)
        assert verdict.status == REVOKED, verdict
    else:
        new, result = net.renew(doc)
        assert result.ok, result.reason
        final = get_cert(net.chain.state_get, doc.cert_id)
        assert final is not None and final.status == SUPERSEDED
        assert net.verify(new).valid
    assert len(final.history) == HISTORY_MAX + 1


def test_unauthorised_attempts_are_refused_with_reasons(net: CertNet) -> None:
    """Goal: only an issuer authorised for the type, of the identifier's organisation, may
    act; every other attempt is a failed transaction naming why. Method: a stranger, an
    enterprise, another department's issuer, an issuer with the role but no authorisation,
    an issuer of another type; each issue or act."""
    doc, _ = net.issue()
    cases = [
        ("stranger", "cert.suspend", {"id": doc.cert_id, "reason": "x"},
         "not a registered account"),
        ("slkj", "cert.suspend", {"id": doc.cert_id, "reason": "x"},
         "does not have the issuer role"),
        ("rsj", "cert.revoke", {"id": doc.cert_id, "reason": "x"},
         "not to the certificate's issuer"),
    ]
    for who, tx_type, payload, reason in cases:
        r = net.send(who, tx_type, payload)
        assert not r.ok and reason in r.reason, (who, r.reason)
    district = net.document("district", type_code=LICENCE)
    r = net.send("district", "cert.issue", issue_payload(net.suite, district, None))
    assert not r.ok and "is not authorised to issue 营业执照" in r.reason
    # rsj issues permits, not licences: an identifier of rsj for the licence type.
    wrong_type = net.document("rsj", type_code=LICENCE)
    r = net.send("rsj", "cert.issue", issue_payload(net.suite, wrong_type, None))
    assert not r.ok and "not authorised to issue 营业执照" in r.reason
    # scjgj claiming to be rsj: the identifier names rsj as issuer.
    forged = net.document("scjgj", type_code=PERMIT, issuer_slug="rsj")
    r = net.send("scjgj", "cert.issue", issue_payload(net.suite, forged, None))
    assert not r.ok and "not to the certificate's issuer" in r.reason
    record = get_cert(net.chain.state_get, doc.cert_id)
    assert record is not None and record.status == VALID


def test_admission_precheck_matches_execution(net: CertNet) -> None:
    """Goal: admission refuses early (403) what execution would refuse for the sender, and
    lets an authorised issuer through. Method: call the pre-check on transactions of an
    authorised issuer, a stranger and an unauthorised issuer."""
    doc, _ = net.issue()
    ok_tx = net.tx("scjgj", "cert.suspend", {"id": doc.cert_id, "reason": "x"})
    assert precheck(net.chain.state_get, ok_tx) is None
    for who, reason in (("stranger", "not a registered account"),
                        ("district", "not to the certificate's issuer")):
        tx = net.tx(who, "cert.suspend", {"id": doc.cert_id, "reason": "x"})
        problem = precheck(net.chain.state_get, tx)
        assert problem is not None and reason in problem
    bad = net.tx("scjgj", "cert.suspend", {"id": "1.2.156.nonsense", "reason": "x"})
    assert "identifier" in (precheck(net.chain.state_get, bad) or "")


def test_admission_refuses_an_identifier_already_issued(net: CertNet) -> None:
    """Goal: issuing an identifier that is on the ledger already is refused at admission
    (a re-run import learns at once that its certificate is there), while a new one passes,
    and execution still refuses the duplicate that admission let through before the first
    committed. Method: the issue pre-check before and after the certificate's block."""
    doc = net.document("scjgj")
    payload = issue_payload(net.suite, doc, None)
    assert issue_precheck(net.chain.state_get, net.tx("scjgj", "cert.issue", payload)) is None
    assert net.send("scjgj", "cert.issue", payload).ok
    again = net.tx("scjgj", "cert.issue", payload)
    assert issue_precheck(net.chain.state_get, again) == (
        f"certificate {doc.cert_id} was already issued")
    r = net.send("scjgj", "cert.issue", payload)
    assert not r.ok and "already issued" in r.reason


@pytest.mark.parametrize(("change", "reason"), [
    ({"digest": b"short"}, "payload.digest"),
    ({"valid_from": "2026-13-01"}, "not a calendar date"),
    ({"valid_from": "20260101"}, "must be a date YYYY-MM-DD"),
    ({"valid_until": "2024-01-01"}, "is before valid_from"),
    ({"holder_code_type": "999"}, "holder_code_type"),
    ({"holder": "91350100MA2Y0001X0"}, "payload.holder"),
    ({"extra": 1}, "unknown payload field(s): extra"),
    ({"id": "1.2.156.3005.2.11100000MB1F000067001.11350100MB1F000149.T1.002.X"}, "check"),
    ({"digest": "ab" * 32}, "payload.digest must be the 32-byte hash"),
    ({"valid_until": None}, "valid_until"),
    ({"id": 7}, "payload.id must be a certificate identifier"),
])
def test_issue_payload_validation(net: CertNet, change: dict[str, Value], reason: str) -> None:
    """Goal: every malformed issue payload fails with a reason naming the bad part — at
    admission already (its stateless payload check, HTTP 400), in the very words
    execution uses, so it never reaches a block. Method: a correct payload with one field
    changed; the payload check, then the block."""
    doc = net.document()
    payload = {**issue_payload(net.suite, doc, None), **change}
    problem = payload_problem("cert.issue", payload)
    result = net.send("scjgj", "cert.issue", payload)
    assert not result.ok and reason in result.reason, result.reason
    assert problem == result.reason


@pytest.mark.parametrize(("tx_type", "payload", "reason"), [
    ("cert.suspend", {"id": "x"}, "payload lacks reason"),
    ("cert.revoke", {"id": "x", "reason": "r", "why": "?"}, "unknown payload field(s): why"),
    ("cert.revoke", {"id": "x", "reason": "r"}, "identifier"),
    ("cert.reinstate", {"id": None, "reason": "r"}, "payload.id must be a certificate"),
    ("cert.renew", {"id": None, "supersedes": "", "digest": b"", "valid_from": "",
                    "valid_until": ""}, "payload.id must be a certificate identifier"),
])
def test_admission_names_a_malformed_payload_of_every_type(tx_type: str,
                                                           payload: dict[str, Value],
                                                           reason: str) -> None:
    """Goal: each certificate transaction type has its payload's form checked at
    admission. Method: a missing, an unknown and a wrongly typed field."""
    problem = payload_problem(tx_type, payload)
    assert problem is not None and reason in problem, problem


def test_issue_twice_and_version_two_are_refused(net: CertNet) -> None:
    """Goal: an identifier is issued once, and cert.issue only makes version 001.
    Method: resend the same payload (new nonce); send an issue for a version-2 id."""
    doc, _ = net.issue()
    again = net.send("scjgj", "cert.issue", issue_payload(net.suite, doc, None))
    assert not again.ok and "already issued" in again.reason
    cid = parse_cert_id(doc.cert_id)
    payload = {**issue_payload(net.suite, doc, None),
               "id": format_cert_id(cid.type_code, cid.issuer_uscc, "NEW1", 2)}
    r = net.send("scjgj", "cert.issue", payload)
    assert not r.ok and "version 001" in r.reason


def test_holder_code_type_must_fit_the_type(net: CertNet) -> None:
    """Goal: a type registered for legal persons is not issued to a natural person.
    Method: an issue payload for the licence type with holder code type 111."""
    doc = net.document()
    payload = {**issue_payload(net.suite, doc, None), "holder_code_type": "111",
               "holder": "ab" * 32}
    r = net.send("scjgj", "cert.issue", payload)
    assert not r.ok and "not issued to holders of code type 111" in r.reason


def test_reason_is_required(net: CertNet) -> None:
    """Goal: suspend/revoke need a non-empty reason without control characters.
    Method: empty, blank and control-character reasons."""
    doc, _ = net.issue()
    for reason in ("", "   ", "a\nb"):
        r = net.act("suspend", doc.cert_id, reason=reason)
        assert not r.ok and "reason" in r.reason


def test_a_reason_with_an_id_number_is_refused_before_it_reaches_a_block(net: CertNet
                                                                         ) -> None:
    """Goal: a suspension's reason never carries a citizen's ID number or a bank account
    into the ledger, where it would stay in the certificate's history and every proof
    bundle: admission refuses it (so no block holds it) and so does execution. Method:
    the admission pre-check and a direct submission with an 18-character ID in the
    reason; a reason with a short number (a case file) passes both."""
    doc, _ = net.issue()
    payload: dict[str, Value] = {"id": doc.cert_id, "reason": f"持证人 {CITIZEN} 申请注销"}
    problem = payload_problem("cert.suspend", payload)
    assert problem is not None and "payload.reason contains a run of 18 digits" in problem
    result = net.act("suspend", doc.cert_id, reason=str(payload["reason"]))
    assert not result.ok and "looks like an ID number" in result.reason
    record = get_cert(net.chain.state_get, doc.cert_id)
    assert record is not None and record.status == VALID
    fine: dict[str, Value] = {"id": doc.cert_id, "reason": "依据（2026）闽0102行初123号判决"}
    assert payload_problem("cert.suspend", fine) is None
    assert net.act("suspend", doc.cert_id, reason=str(fine["reason"])).ok


def test_effective_status_expires_by_date(net: CertNet) -> None:
    """Goal: EXPIRED is computed from the dates (China Standard Time), never stored.
    Method: a certificate valid until 2026-01-02; its effective status on the day, at the
    last millisecond of that day in CST and at the next CST midnight."""
    doc, _ = net.issue(valid_from="2025-01-01", valid_until="2026-01-02")
    record = get_cert(net.chain.state_get, doc.cert_id)
    assert record is not None and record.status == VALID
    end_of_day_cst = T0 + 2 * DAY - 8 * 3600 * 1000 - 1  # 2026-01-02 23:59:59.999 CST
    assert effective_status(record, T0 + DAY) == VALID
    assert effective_status(record, end_of_day_cst) == VALID
    assert effective_status(record, end_of_day_cst + 1) == "EXPIRED"


def test_business_licence_status_for_fiscal(net: CertNet) -> None:
    """Goal: the pure state lookup fiscal uses reports a payee's licence status on a date:
    MISSING before issue and for unknown holders, VALID, SUSPENDED, EXPIRED, REVOKED.
    Method: issue a licence valid until 2026-06-30, suspend it, check several dates."""
    state = net.chain.state_get
    assert queries.business_licence_status(state, uscc("slkj"), "2026-01-01", LICENCE) == (
        "MISSING")
    doc, _ = net.issue(valid_until="2026-06-30")
    assert queries.business_licence_status(state, uscc("slkj"), "2026-01-01", LICENCE) == VALID
    assert queries.business_licence_status(state, uscc("slkj"), "2026-07-01", LICENCE) == (
        "EXPIRED")
    assert queries.business_licence_status(state, uscc("slkj"), "2025-12-31", LICENCE) == (
        "MISSING")
    assert queries.business_licence_status(state, uscc("mjjs"), "2026-01-01", LICENCE) == (
        "MISSING")
    assert net.act("suspend", doc.cert_id).ok
    assert queries.business_licence_status(state, uscc("slkj"), "2026-01-01", LICENCE) == (
        SUSPENDED)
    assert net.act("revoke", doc.cert_id).ok
    assert queries.business_licence_status(state, uscc("slkj"), "2026-01-01", LICENCE) == (
        REVOKED)
    assert queries.business_licence_status(state, uscc("slkj"), "not a date", LICENCE) is None


def test_business_licence_status_follows_versions(net: CertNet) -> None:
    """Goal: on a date before a renewal the version current then counts. Method: issue a
    licence valid until 2026-01-01, renew it the next day valid until 2030; ask for
    2026-01-01 (first version, VALID) and for a later date (second version, VALID)."""
    old, _ = net.issue(valid_until="2026-01-01")
    net.time += 2 * DAY
    net.renew(old, valid_until="2030-12-31")
    state = net.chain.state_get
    assert queries.business_licence_status(state, uscc("slkj"), "2026-01-01", LICENCE) == VALID
    assert queries.business_licence_status(state, uscc("slkj"), "2027-01-01", LICENCE) == VALID
