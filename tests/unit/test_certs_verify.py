"""certs.verify and certs.bundle: the verdict line by line, and bundles that must not lie.

Bundles are built from an in-process chain and checked with nothing but the genesis
(what `govledger cert verify --offline` does).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from certs.bundle import CertBundle, StateItem, decode_bundle, encode_bundle
from certs.document import Document, parse_document
from certs.records import CertRecord, cst_midnight_ms, decode_record, encode_record
from certs.verify import CHECKS, parse_as_of, verify_certificate
from ledger.chain import effective_height
from ledger.codec import Value, decode_value, encode_value
from ledger.errors import InputError
from tests.unit.certs_harness import (
    DAY,
    PERMIT,
    SKILL,
    T0,
    CertNet,
    check,
    uscc,
)

SWJ = "11350100MB1F00049U"


@pytest.fixture(scope="module")
def issued() -> tuple[CertNet, Document]:
    """One chain with one licence (read-only for the tests that use it)."""
    net = CertNet()
    doc, result = net.issue()
    assert result.ok
    return net, doc


def test_valid_certificate_passes_every_line(issued: tuple[CertNet, Document]) -> None:
    """Goal: a fresh licence verified by a recognising agency is VALID with every check line
    present, in order, and ok. Method: verify the document with agency 税务局."""
    net, doc = issued
    verdict = net.verify(doc, agency=SWJ)
    assert verdict.valid and verdict.failed() == []
    assert [c.name for c in verdict.checks] == list(CHECKS)
    assert verdict.agreement == "R1" and verdict.status == "VALID"
    assert "R1" in check(verdict, "recognised").detail
    assert "3 of 4 validators" in check(verdict, "proofs").detail


def test_identifier_only(issued: tuple[CertNet, Document]) -> None:
    """Goal: with only an identifier the ledger's answer is judged (signature and anchoring
    not applicable); an identifier that is not on the ledger is INVALID. Method: verify by
    id; verify an unknown id with no bundle."""
    net, doc = issued
    verdict = net.verify(cert_id=doc.cert_id.lower())
    assert verdict.valid and "not applicable" in check(verdict, "signature").detail
    unknown = doc.cert_id[:-5] + "9.001." + doc.cert_id[-1]
    missing = verify_certificate(net.genesis, None, as_of_ms=net.time, cert_id=unknown)
    assert not missing.valid
    assert check(missing, "proofs").detail.startswith(("no proof bundle", "certificate"))


@pytest.mark.parametrize(("field", "value"), [
    ("holder_name", "另一家公司"), ("valid_until", "2099-12-31"), ("number", "X1"),
])
def test_tampered_document_is_invalid(issued: tuple[CertNet, Document], field: str,
                                      value: str) -> None:
    """Goal: a document changed after signing fails the signature and the anchoring checks.
    Method: change one field in the JSON, verify against a genuine bundle."""
    net, doc = issued
    data = json.loads(doc.to_json())
    data["certificate"][field] = value
    verdict = net.verify(cert_id=None, bundle=net.bundle(doc.cert_id), doc=parse_document(
        json.dumps(data)))
    assert not verdict.valid
    assert {"signature", "anchored"} <= set(verdict.failed())
    assert "digest" in check(verdict, "anchored").detail


def test_resigned_document_by_another_key_is_invalid(issued: tuple[CertNet, Document]) -> None:
    """Goal: a document re-signed (after a change) by a key other than the issuing key
    fails, even though its own signature verifies. Method: re-sign with 人社局's key."""
    net, doc = issued
    other = net.devnet.account_keys["rsj"]
    forged = Document(doc.certificate, doc.extra, doc.suite, other.public_key().raw,
                      other.sign("cert", doc.canonical_bytes()))
    verdict = net.verify(forged)
    assert not verdict.valid and "key other than" in check(verdict, "signature").detail


def test_malformed_documents_fail_the_document_check(issued: tuple[CertNet, Document]
                                                     ) -> None:
    """Goal: a malformed document never verifies and the verdict says what is wrong.
    Method: JSON with a float, a missing field, an unknown field, a bad identifier."""
    net, doc = issued
    good = json.loads(doc.to_json())
    broken: list[Any] = ["{", json.dumps({**good, "format": "other"}),
                         json.dumps({**good, "x": 1})]
    bad_cert = dict(good["certificate"])
    del bad_cert["number"]
    broken.append(json.dumps({**good, "certificate": bad_cert}))
    broken.append(doc.to_json().replace('"version": "001"', '"version": 1.5'))
    for text in broken:
        verdict = verify_certificate(net.genesis, net.bundle(doc.cert_id), as_of_ms=net.time,
                                     document=text)
        assert not verdict.valid and not check(verdict, "document").ok


def test_schema_is_checked_against_the_proven_type() -> None:
    """Goal: a document lacking a required type-specific field is INVALID even if signed
    and anchored. Method: sign and issue a licence without `address` by bypassing the
    issuing helper's schema check."""
    from certs.document import sign_document
    from certs.issuing import issue_payload

    net = CertNet()
    good = net.document()
    extra = {k: v for k, v in good.extra.items() if k != "address"}
    doc = sign_document(net.devnet.account_keys["scjgj"], good.certificate, extra)
    assert net.send("scjgj", "cert.issue", issue_payload(net.suite, doc, None)).ok
    verdict = net.verify(doc)
    assert not verdict.valid and "address" in check(verdict, "document").detail


def test_status_at_as_of_follows_the_history() -> None:
    """Goal: the status line reports the status at the as-of time from the proven history:
    VALID before a suspension, SUSPENDED during it, VALID after reinstatement, REVOKED
    after revocation, and "not yet issued" before issuance. Method: one event per block,
    then verify the same final bundle at several as-of times."""
    net = CertNet()
    doc, _ = net.issue()
    t_issue = net.time
    net.act("suspend", doc.cert_id, reason="整改")
    t_suspend = net.time
    net.act("reinstate", doc.cert_id)
    t_reinstate = net.time
    net.act("revoke", doc.cert_id, reason="吊销")
    bundle = net.bundle(doc.cert_id)
    expect = [(t_issue - 1, False, "not yet issued"), (t_issue, True, "VALID"),
              (t_suspend, False, "SUSPENDED"), (t_reinstate + 1, True, "VALID"),
              (net.time, False, "REVOKED"), (net.time + 30 * DAY, False, "吊销")]
    for as_of, ok, text in expect:
        verdict = net.verify(doc, as_of_ms=as_of, bundle=bundle)
        line = check(verdict, "status")
        assert line.ok is ok and text in line.detail, (as_of, line)
        assert verdict.valid is ok


def test_validity_window_and_expiry() -> None:
    """Goal: the validity line passes inside valid_from..valid_until (inclusive, CST dates)
    and reports EXPIRED after and "not yet valid" before. Method: a permit valid
    2026-01-01..2026-03-31; verify at several dates."""
    net = CertNet()
    doc, _ = net.issue("rsj", type_code=PERMIT, holder="mjjs", valid_from="2026-01-01",
                       valid_until="2026-03-31")
    bundle = net.bundle(doc.cert_id)
    cases = [("2025-12-31", False, "not yet valid"), ("2026-01-01", True, "within"),
             ("2026-03-31T23:59:59", True, "within"), ("2026-04-01", False, "EXPIRED")]
    for at, ok, text in cases:
        verdict = verify_certificate(net.genesis, bundle, as_of_ms=parse_as_of(at),
                                     document=doc)
        line = check(verdict, "validity")
        assert line.ok is ok and text in line.detail, (at, line)
    expired = net.verify(doc, as_of_ms=parse_as_of("2026-04-01"), bundle=bundle)
    assert expired.status == "EXPIRED" and not expired.valid


def test_recognition_lines(issued: tuple[CertNet, Document]) -> None:
    """Goal: the recognition line covers: no agency (passes), the issuer itself (passes), an
    agency with an agreement (passes, names it), one without (absence proven: fails), one
    the bundle has no proof for (fails: cannot check), a malformed USCC (fails). Method:
    verify with each agency against bundles built with and without that agency."""
    net, doc = issued
    assert check(net.verify(doc), "recognised").ok
    assert "is the issuer" in check(net.verify(doc, agency=uscc("scjgj")), "recognised").detail
    rsj = net.verify(doc, agency=uscc("rsj"))
    assert not rsj.valid and "has no recognition agreement" in check(rsj, "recognised").detail
    no_proof = net.verify(doc, agency=uscc("rsj"), bundle=net.bundle(doc.cert_id))
    assert "cannot check" in check(no_proof, "recognised").detail
    bad = net.verify(doc, agency="not-a-uscc", bundle=net.bundle(doc.cert_id))
    assert not bad.valid and "verifying agency" in check(bad, "recognised").detail


def test_agreement_for_other_issuers_does_not_recognise() -> None:
    """Goal: an agreement that names other issuers does not cover this one. Method: 税务局
    accepts permits only from 市场监管局 (who does not issue them); verify an 人社局 permit."""
    net = CertNet()
    net.decide("record_recognition", {"agency": SWJ, "type": PERMIT,
                                      "issuers": [uscc("scjgj")]})
    doc, _ = net.issue("rsj", type_code=PERMIT)
    verdict = net.verify(doc, agency=SWJ)
    assert not verdict.valid and "only from" in check(verdict, "recognised").detail


def test_citizen_certificate_verifies() -> None:
    """Goal: a natural person's certificate verifies like any other (the verifier never needs
    the consortium key). Method: issue a skills certificate, verify it."""
    net = CertNet()
    doc, result = net.issue("rsj", type_code=SKILL)
    assert result.ok
    assert net.verify(doc).valid


# -- bundles --------------------------------------------------------------------------------


def _flip(data: bytes, i: int) -> bytes:
    out = bytearray(data)
    out[i] ^= 0x01
    return bytes(out)


def _tamper_cases(b: CertBundle) -> dict[str, CertBundle]:
    header = b.header.header
    cert = b.header.certificate
    sig0 = cert.signatures[0]
    record = decode_record(b.record.value or b"", CertRecord)
    revoked = dataclasses.replace(record, status="VALID", valid_until="2099-12-31")
    first_sibling = b.record.proof.siblings[0]
    return {
        "header time": dataclasses.replace(b, header=dataclasses.replace(
            b.header, header=dataclasses.replace(header, time=header.time + 1))),
        "commit signature": dataclasses.replace(b, header=dataclasses.replace(
            b.header, certificate=dataclasses.replace(cert, signatures=[
                dataclasses.replace(sig0, sig=_flip(sig0.sig, 10)), *cert.signatures[1:]]))),
        "too few signatures": dataclasses.replace(b, header=dataclasses.replace(
            b.header, certificate=dataclasses.replace(cert, signatures=cert.signatures[:2]))),
        "record value": dataclasses.replace(b, record=dataclasses.replace(
            b.record, value=encode_record(revoked))),
        "record proof": dataclasses.replace(b, record=dataclasses.replace(
            b.record, proof=dataclasses.replace(b.record.proof, siblings=[
                _flip(first_sibling, 0), *b.record.proof.siblings[1:]]))),
        "record key": dataclasses.replace(b, record=dataclasses.replace(
            b.record, key=b.record.key + b"X")),
        "type value": dataclasses.replace(b, cert_type=dataclasses.replace(
            b.cert_type, value=_flip(b.cert_type.value or b"", -1))),
        "issuer absent": dataclasses.replace(b, issuer=dataclasses.replace(
            b.issuer, value=None)),
        "recognition swapped": dataclasses.replace(b, recognitions=[
            StateItem(b.recognitions[0].key, b.issuer.value, b.recognitions[0].proof)]),
        "format": dataclasses.replace(b, format="govledger-cert-bundle/2"),
        "chain id": dataclasses.replace(b, chain_id="other-chain"),
        "cert id": dataclasses.replace(b, cert_id=b.cert_id[:-1] + "0"),
    }


def test_tampering_with_each_part_of_the_bundle_names_proofs(
        issued: tuple[CertNet, Document]) -> None:
    """Goal: altering any part of a bundle — header, commit certificate, record value, key or
    proof, type, issuer authorisation, recognition, format, chain id, identifier — gives
    INVALID with the proofs line saying what failed. Method: one altered copy per part,
    round-tripped through the canonical encoding."""
    net, doc = issued
    bundle = net.bundle(doc.cert_id, SWJ)
    assert net.verify(doc, agency=SWJ, bundle=bundle).valid
    for name, altered in _tamper_cases(bundle).items():
        data = encode_bundle(altered)
        verdict = net.verify(doc, agency=SWJ, bundle=data)
        assert not verdict.valid, name
        assert not check(verdict, "proofs").ok, name
        assert check(verdict, "proofs").detail, name


def test_every_altered_byte_is_rejected(issued: tuple[CertNet, Document]) -> None:
    """Goal: SPEC §5 "a bundle that is altered in any byte is rejected". Method: flip the
    lowest bit of every byte of a canonical bundle in turn and verify each copy."""
    net, doc = issued
    data = encode_bundle(net.bundle(doc.cert_id, SWJ))
    for i in range(len(data)):
        verdict = verify_certificate(net.genesis, _flip(data, i), as_of_ms=net.time,
                                     document=doc, agency=SWJ)
        assert not verdict.valid and "proofs" in verdict.failed(), i


def test_bundle_round_trips_and_json_view(issued: tuple[CertNet, Document]) -> None:
    """Goal: the canonical bytes of a bundle decode to the same bundle, and a truncated or
    padded copy does not decode (proofs fails, saying so). Method: encode/decode;
    verify truncated and padded bytes."""
    net, doc = issued
    bundle = net.bundle(doc.cert_id, SWJ)
    data = encode_bundle(bundle)
    assert decode_bundle(data) == bundle
    for bad in (data[:-1], data + b"\x00", b""):
        verdict = net.verify(doc, bundle=bad)
        assert "does not decode" in check(verdict, "proofs").detail


def test_bundle_from_before_certificates_named_their_view_says_so(
        issued: tuple[CertNet, Document]) -> None:
    """Goal: a bundle an older govledger made — its commit certificate without the view its
    signatures were made in, a form no longer accepted — is INVALID with a proofs line that
    says where it came from and what to do, not only that a field is missing. Method: drop
    "view" from the certificate of a canonical bundle and verify it."""
    net, doc = issued

    def without_view(value: Value) -> Value:
        if isinstance(value, dict):
            if {"height", "view", "block_hash", "signatures"} <= set(value):
                value = {k: v for k, v in value.items() if k != "view"}
            return {k: without_view(v) for k, v in value.items()}
        if isinstance(value, list):
            return [without_view(v) for v in value]
        return value

    old = encode_value(without_view(decode_value(encode_bundle(net.bundle(doc.cert_id, SWJ)))))
    verdict = net.verify(doc, agency=SWJ, bundle=old)
    assert not verdict.valid
    detail = check(verdict, "proofs").detail
    assert "missing field 'view'" in detail and "made by an older govledger" in detail
    assert "get a new proof from any node" in detail


def test_bundle_of_another_certificate_is_rejected() -> None:
    """Goal: a genuine bundle for a different certificate cannot vouch for this document.
    Method: issue a second licence; verify the first document with the second's bundle."""
    net = CertNet()
    first, _ = net.issue()
    second, _ = net.issue(holder="mjjs")
    verdict = net.verify(first, bundle=net.bundle(second.cert_id))
    assert not verdict.valid and "for certificate" in check(verdict, "proofs").detail


def test_wrong_genesis_is_rejected(issued: tuple[CertNet, Document]) -> None:
    """Goal: a bundle is only as good as its trust root: another network's genesis (same
    chain id, other validators) rejects it. Method: verify against a second CertNet's
    genesis."""
    net, doc = issued
    other = CertNet()
    verdict = verify_certificate(other.genesis, net.bundle(doc.cert_id), as_of_ms=net.time,
                                 document=doc)
    assert not verdict.valid and "block header" in check(verdict, "proofs").detail


def test_bundle_before_a_validator_set_change_still_verifies() -> None:
    """Goal: proofs walk validator-set changes from genesis: a bundle made before the
    committee adds a validator still verifies after the change, and one made after carries
    the link and verifies too. Method: issue, save a bundle; add a 5th validator by
    governance; run blocks past the effective height (certified by the new set of 5);
    verify the old and a new bundle, and a new one with its link altered."""
    net = CertNet()
    doc, _ = net.issue()
    before = encode_bundle(net.bundle(doc.cert_id))
    new_key = net.suite.generate_key()
    net.validator_keys[new_key.public_key().raw] = new_key
    proposal = net.decide("add_validator", {"public_key": new_key.public_key().raw.hex(),
                                            "name": "node4", "address": "127.0.0.1:7704"})
    assert proposal["status"] == "passed", proposal
    target = effective_height(int(proposal["closed_height"]), 16)  # type: ignore[arg-type]
    while net.chain.height < target + 1:
        net.run([])
    assert net.chain.validators_for(net.chain.height + 1).size == 5
    assert net.verify(doc, bundle=before).valid
    after = net.bundle(doc.cert_id)
    assert len(after.header.links) == 1
    verdict = net.verify(doc, bundle=after)
    assert verdict.valid and "through 1 validator-set change" in check(verdict, "proofs").detail
    assert "4 of 5 validators" in check(verdict, "proofs").detail
    link = after.header.links[0]
    broken = dataclasses.replace(after, header=dataclasses.replace(after.header, links=[
        # The last byte flipped (setting it to 1 left it unchanged when it was 1 already:
        # one run in 256 passed a "broken" link that was intact).
        dataclasses.replace(link, record=link.record[:-1] + bytes([link.record[-1] ^ 1]))]))
    assert not net.verify(doc, bundle=broken).valid


def test_intl_suite() -> None:
    """Goal: the same flow works on an `intl` (Ed25519/SHA-256) network. Method: issue and
    verify on an intl CertNet; tamper the document."""
    net = CertNet("intl")
    doc, result = net.issue()
    assert result.ok, result.reason
    verdict = net.verify(doc, agency=SWJ)
    assert verdict.valid and "Ed25519" in check(verdict, "signature").detail
    data = json.loads(doc.to_json())
    data["certificate"]["holder_name"] = "x"
    assert not net.verify(parse_document(json.dumps(data))).valid


def test_parse_as_of() -> None:
    """Goal: --at accepts a date (00:00 CST), an ISO date-time (CST unless it says) or ms;
    anything else is an InputError. Method: compare with known instants."""
    assert parse_as_of("2026-01-01") == cst_midnight_ms(__import__("datetime").date(2026, 1, 1))
    assert parse_as_of("2026-01-01") == T0 - 8 * 3600 * 1000
    assert parse_as_of("2026-01-01T08:00:00") == T0
    assert parse_as_of("2026-01-01T00:00:00+00:00") == T0
    assert parse_as_of(str(T0)) == T0 and parse_as_of(T0) == T0
    for bad in ("yesterday", "2026-02-30", None, -1, True):
        with pytest.raises(InputError):
            parse_as_of(bad)
    # Instants no verdict can show are refused, not a 500 when the verdict is written.
    assert parse_as_of("9999-12-31") > T0
    for far in ("0001-01-01", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                "999999999999999999", 999999999999999999, 2**70, "1" * 5000):
        with pytest.raises(InputError, match="out of range"):
            parse_as_of(far)
