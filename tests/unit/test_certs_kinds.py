"""Committee decisions of the certificates app (certs.kinds) and its genesis data.

The committee has five members, so a decision needs ceil(2*5/3) = 4 approvals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from certs.issuing import issue_payload
from certs.records import get_issuer_auth, get_recognition, get_type
from ledger.codec import Value
from ledger.errors import DecodeError
from ledger.governance import get_proposal
from tests.unit.certs_harness import (
    COMMITTEE,
    LICENCE,
    PERMIT,
    CertNet,
    certs_registry,
    check,
    uscc,
)

NEW_TYPE = "11350100MB1F00057N101"  # defined by 人社局


def _register_type() -> dict[str, Value]:
    return {"code": NEW_TYPE, "name": "职业培训合格证书", "holder_code_types": ["111", "001"],
            "fields": [{"name": "course", "label": "培训项目", "required": True}]}


# kind -> (params, check that the decision took effect)
Effect = Callable[[CertNet], bool]
KIND_CASES: dict[str, tuple[dict[str, Value], Effect]] = {
    "register_cert_type": (_register_type(),
                           lambda n: get_type(n.chain.state_get, NEW_TYPE) is not None),
    "authorise_issuer": ({"type": LICENCE, "issuer": uscc("district")},
                         lambda n: bool((a := get_issuer_auth(
                             n.chain.state_get, LICENCE, uscc("district"))) and a.current)),
    "deauthorise_issuer": ({"type": LICENCE, "issuer": uscc("scjgj")},
                           lambda n: not get_issuer_auth(  # type: ignore[union-attr]
                               n.chain.state_get, LICENCE, uscc("scjgj")).current),
    "record_recognition": ({"agency": uscc("rsj"), "type": LICENCE,
                            "issuers": [uscc("scjgj")]},
                           lambda n: get_recognition(n.chain.state_get, LICENCE,
                                                     uscc("rsj")) is not None),
    "withdraw_recognition": ({"agency": uscc("swj"), "type": LICENCE},
                             lambda n: get_recognition(  # type: ignore[union-attr]
                                 n.chain.state_get, LICENCE,
                                 uscc("swj")).withdrawn_height is not None),
}


@pytest.mark.parametrize("kind", sorted(KIND_CASES))
def test_kind_passes_with_exactly_two_thirds(kind: str) -> None:
    """Goal: each certificates decision takes effect with exactly ceil(2n/3) = 4 of 5
    approvals and not with 3. Method: propose (1 approval), two more approvals: still open
    and no effect; the fourth approval: passed, in that block, and the effect is there."""
    net = CertNet()
    params, effect = KIND_CASES[kind]
    result = net.propose(kind, params, COMMITTEE[0])
    assert result.ok, result.reason
    number = result.data["proposal_id"]
    assert isinstance(number, int)
    for who in COMMITTEE[1:3]:
        assert net.vote(number, who).ok
    proposal = get_proposal(net.chain.state_get, number)
    assert proposal is not None and proposal["status"] == "open"
    assert not effect(net), "applied with 3 of 5 approvals"
    assert net.vote(number, COMMITTEE[3]).ok
    proposal = get_proposal(net.chain.state_get, number)
    assert proposal is not None and proposal["status"] == "passed", proposal
    assert proposal["closed_height"] == net.chain.height
    assert effect(net)


@pytest.mark.parametrize(("kind", "params", "reason"), [
    ("register_cert_type", {**_register_type(), "code": "11350100MB1F00057N10"},
     "length is 20"),
    ("register_cert_type", {**_register_type(), "code": LICENCE}, "already registered"),
    ("register_cert_type", {**_register_type(), "holder_code_types": ["002"]},
     "holder_code_types"),
    ("register_cert_type", {**_register_type(), "fields": [{"name": "Holder"}]}, "must match"),
    ("register_cert_type", {**_register_type(), "fields": [{"name": "holder_name"}]},
     "core field"),
    ("register_cert_type", {**_register_type(), "colour": "red"}, "unknown parameter"),
    ("authorise_issuer", {"type": LICENCE, "issuer": uscc("scjgj")}, "already authorised"),
    ("authorise_issuer", {"type": LICENCE, "issuer": "91350100MA2Y0009X0"}, "check"),
    ("authorise_issuer", {"type": "11350100MB1F00057N999", "issuer": uscc("rsj")},
     "not registered"),
    ("deauthorise_issuer", {"type": PERMIT, "issuer": uscc("scjgj")}, "is not authorised"),
    ("record_recognition", {"agency": uscc("rsj"), "type": LICENCE, "issuers": []},
     "1 to 200"),
    ("record_recognition", {"agency": "91350100MA2Y00999X", "type": LICENCE,
                            "issuers": [uscc("scjgj")]}, "agency"),
    ("withdraw_recognition", {"agency": uscc("rsj"), "type": LICENCE}, "no recognition"),
])
def test_bad_parameters_are_refused_at_proposal(kind: str, params: dict[str, Value],
                                                reason: str) -> None:
    """Goal: a proposal with bad parameters is a failed transaction saying why, and no
    proposal is created. Method: one gov.propose per bad parameter set."""
    net = CertNet()
    result = net.propose(kind, params)
    assert not result.ok and reason in result.reason, result.reason


def test_authorisation_counts_from_the_next_block() -> None:
    """Goal: an issuer authorised in block h may issue from h+1, not in h itself, so
    "authorised at height h" has one meaning. Method: put the deciding vote and an issue
    by the new issuer in the same block; then issue again in the next block."""
    net = CertNet()
    number = net.propose("authorise_issuer", {"type": LICENCE, "issuer": uscc("district")})
    for who in COMMITTEE[1:3]:
        net.vote(number.data["proposal_id"], who)  # type: ignore[arg-type]
    doc = net.document("district")
    deciding = net.tx(COMMITTEE[3], "gov.vote", {"proposal_id": number.data["proposal_id"],
                                                 "approve": True})
    issue = net.tx("district", "cert.issue", issue_payload(net.suite, doc, None))
    vote_result, issue_result = net.run([deciding, issue])
    assert vote_result.ok and vote_result.data["status"] == "passed"
    assert not issue_result.ok and f"at height {net.chain.height}" in issue_result.reason
    again = net.send("district", "cert.issue", issue_payload(net.suite, doc, None))
    assert again.ok, again.reason


def test_deauthorised_issuer_stops_but_old_certificates_stay_authorised() -> None:
    """Goal: after deauthorisation the issuer can neither issue nor manage the type, while a
    certificate issued before still verifies with issuer_authorised naming the period.
    Method: issue, deauthorise with 4 votes, try to issue and suspend, verify the old one."""
    net = CertNet()
    doc, _ = net.issue()
    proposal = net.decide("deauthorise_issuer", {"type": LICENCE, "issuer": uscc("scjgj")})
    assert proposal["status"] == "passed"
    _, refused = net.issue()
    assert not refused.ok and "not authorised" in refused.reason
    assert not net.act("suspend", doc.cert_id).ok
    verdict = net.verify(doc)
    line = check(verdict, "issuer_authorised")
    assert verdict.valid and line.ok and "until height" in line.detail


def test_recognition_agreement_then_withdrawal() -> None:
    """Goal: an agreement recorded by the committee makes the agency recognise the type from
    the named issuers (reported with its number); withdrawing it makes verification by that
    agency INVALID. Method: 人社局 records acceptance of licences from 市场监管局; verify
    as 人社局; withdraw; verify again."""
    net = CertNet()
    doc, _ = net.issue()
    before = net.verify(doc, agency=uscc("rsj"))
    assert not before.valid and "has no recognition agreement" in check(before,
                                                                       "recognised").detail
    net.decide("record_recognition", {"agency": uscc("rsj"), "type": LICENCE,
                                      "issuers": [uscc("scjgj")], "note": "人社 accepts"})
    verdict = net.verify(doc, agency=uscc("rsj"))
    assert verdict.valid and verdict.agreement == "R2"
    net.decide("withdraw_recognition", {"agency": uscc("rsj"), "type": LICENCE})
    after = net.verify(doc, agency=uscc("rsj"))
    assert not after.valid and "withdrawn" in check(after, "recognised").detail


def test_registered_type_can_be_authorised_and_issued() -> None:
    """Goal: a type registered by governance, with its issuer authorised, can be issued and
    its schema is enforced by verification. Method: register, authorise 人社局, issue a
    certificate with the new type's field, verify VALID."""
    net = CertNet()
    net.decide("register_cert_type", _register_type())
    net.decide("authorise_issuer", {"type": NEW_TYPE, "issuer": uscc("rsj")})
    doc, result = net.issue("rsj", type_code=NEW_TYPE, extra={"course": "电工安全"})
    assert result.ok, result.reason
    assert net.verify(doc).valid


def test_kinds_are_registered_with_summaries() -> None:
    """Goal: the node lists the certificates kinds (for `govledger gov` and the API).
    Method: look them up in a registry."""
    kinds = certs_registry().proposal_kinds
    for name in KIND_CASES:
        assert name in kinds and kinds[name].summary


@pytest.mark.parametrize(("section", "reason"), [
    ({"types": [{"code": "BAD", "name": "x"}]}, "types[0]"),
    ({"issuers": [{"type": LICENCE, "issuer": uscc("scjgj")}]}, "not registered"),
    ({"colours": []}, "genesis.apps.certs must be"),
    ({"types": "nope"}, "must be a list"),
])
def test_bad_genesis_data_is_refused(section: dict[str, Value], reason: str) -> None:
    """Goal: a genesis file with bad certificates data cannot start a chain, and the error
    names the entry. Method: replace genesis.apps.certs and open a chain."""
    net = CertNet()
    genesis = dataclasses.replace(net.genesis, apps={"certs": section})
    with pytest.raises(DecodeError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        dataclasses.replace(net.devnet, genesis=genesis).open_chain(certs_registry())
