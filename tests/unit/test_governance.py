"""Governance on an in-process chain: committee votes, every ledger proposal kind, refusals
with reasons, key rotation, on-chain configuration, roles and admission's 403s.

Chains are built with ledger.devnet (tests/unit/govharness.py): each block is proposed and
certified in-process by a quorum of the validator set of its height, so execution, state
and proofs are the real ones; consensus messages are not involved.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from consensus.replica import Replica, ReplicaConfig
from ledger import acl, evidence, governance
from ledger.admission import Admission, Limits, Rejection
from ledger.chain import scheduled_validators, verify_chain
from ledger.codec import Value
from ledger.errors import TxRejected
from ledger.proofs import build_evidence_proof, build_header_proof, verify_evidence, verify_header
from tests.unit.govharness import DEPT_USCC, NEW_USCC, Gov, gov_registry

# -- every kind passes with exactly ceil(2n/3) approvals, not with one fewer ----------------

Setup = Callable[[Gov], tuple[dict[str, Value], Callable[[], bool]]]


def _add_validator(g: Gov) -> tuple[dict[str, Value], Callable[[], bool]]:
    key = g.new_validator_key().public_key().raw
    params: dict[str, Value] = {"public_key": key.hex(), "name": "node9",
                                "address": "127.0.0.1:7799"}

    def applied() -> bool:
        s = scheduled_validators(g.chain.state_get)
        return s is not None and s.index_of(key) == 4 and "validator" in g.account(key).roles
    return params, applied


def _remove_validator(g: Gov) -> tuple[dict[str, Value], Callable[[], bool]]:
    key = g.net.validator_keys[3].public_key().raw

    def applied() -> bool:
        s = scheduled_validators(g.chain.state_get)
        return s is not None and s.size == 3 and s.index_of(key) is None
    return {"public_key": key.hex()}, applied


def _rotate_validator(g: Gov) -> tuple[dict[str, Value], Callable[[], bool]]:
    old = g.net.validator_keys[0].public_key().raw
    new = g.new_validator_key().public_key().raw

    def applied() -> bool:
        s = scheduled_validators(g.chain.state_get)
        return (s is not None and s.public_keys()[0] == new
                and g.account(old).revoked_at == g.chain.height + 1
                and g.account(new).valid_from == g.chain.height + 1)
    return {"old_key": old.hex(), "new_key": new.hex()}, applied


def _add_member(g: Gov) -> tuple[dict[str, Value], Callable[[], bool]]:
    key = g.pub("ent")

    def applied() -> bool:
        return (key in acl.committee(g.chain.state_get)
                and acl.has_role(g.chain.state_get, key, "committee"))
    return {"public_key": key.hex()}, applied


def _remove_member(g: Gov) -> tuple[dict[str, Value], Callable[[], bool]]:
    key = g.pub(f"m{g.members - 1}")

    def applied() -> bool:
        return (key not in acl.committee(g.chain.state_get)
                and not acl.has_role(g.chain.state_get, key, "committee"))
    return {"public_key": key.hex()}, applied


def _grant(g: Gov) -> tuple[dict[str, Value], Callable[[], bool]]:
    key = g.pub("ent")
    return ({"public_key": key.hex(), "role": "auditor"},
            lambda: acl.has_role(g.chain.state_get, key, "auditor"))


def _revoke(g: Gov) -> tuple[dict[str, Value], Callable[[], bool]]:
    key = g.pub("aud")
    return ({"public_key": key.hex(), "role": "auditor"},
            lambda: not acl.has_role(g.chain.state_get, key, "auditor"))


def _set_config(g: Gov) -> tuple[dict[str, Value], Callable[[], bool]]:
    return ({"changes": {"batch_tx_max": 800}},
            lambda: governance.read_config(g.chain.state_get)["batch_tx_max"] == 800)


def _register_org(g: Gov) -> tuple[dict[str, Value], Callable[[], bool]]:
    key = g.new_key("district").public_key().raw
    params: dict[str, Value] = {"uscc": NEW_USCC, "name": "福州市鼓楼区数据管理局",
                                "kind": "department", "region": "350102", "keys": [key.hex()]}

    def applied() -> bool:
        org = acl.get_org(g.chain.state_get, NEW_USCC)
        return org is not None and org.keys == [key] and g.account(key).org == NEW_USCC
    return params, applied


def _rotate_org_key(g: Gov) -> tuple[dict[str, Value], Callable[[], bool]]:
    old, new = g.pub("dept"), g.new_key("dept2").public_key().raw

    def applied() -> bool:
        org = acl.get_org(g.chain.state_get, DEPT_USCC)
        return (g.account(old).revoked_at is not None and org is not None
                and org.keys == [new] and g.account(new).roles == ["issuer"])
    return {"old_key": old.hex(), "new_key": new.hex()}, applied


SETUPS: dict[str, Setup] = {
    "add_validator": _add_validator, "remove_validator": _remove_validator,
    "rotate_validator_key": _rotate_validator, "add_committee_member": _add_member,
    "remove_committee_member": _remove_member, "grant_role": _grant, "revoke_role": _revoke,
    "set_config": _set_config, "register_org": _register_org, "rotate_org_key": _rotate_org_key,
}


def test_every_ledger_kind_is_covered() -> None:
    """Goal: the parametrised test below covers every proposal kind the ledger registers.
    Method: compare the registry's kinds with the table of setups."""
    assert set(gov_registry().proposal_kinds) == set(SETUPS)


@pytest.mark.parametrize("members", [3, 4, 5, 6, 7])
@pytest.mark.parametrize("kind", sorted(SETUPS))
def test_kind_passes_with_exactly_two_thirds(kind: str, members: int) -> None:
    """Goal: each ledger proposal kind is applied in the block where approvals reach
    ceil(2n/3) of the committee, and not a block earlier. Method: m0 proposes (its approval
    counts), m1.. approve one per block; after ceil(2n/3) - 1 approvals the proposal is open
    and nothing changed; the next approval passes it and the change is in that block."""
    g = Gov(members)
    params, applied = SETUPS[kind](g)
    need = governance.needed(members)
    assert need == -(-2 * members // 3)
    result = g.propose("m0", kind, params)
    assert result.ok, result.reason
    number = result.data["proposal_id"]
    assert isinstance(number, int)
    for voter in range(1, need - 1):
        assert g.vote(f"m{voter}", number).ok
    assert g.proposal(number)["status"] == "open", "passed with one approval fewer"
    assert not applied()
    final = g.vote(f"m{need - 1}", number)
    assert final.ok, final.reason
    assert final.data["status"] == "passed" and final.data["approvals"] == need
    proposal = g.proposal(number)
    assert (proposal["status"], proposal["closed_height"]) == ("passed", g.chain.height)
    assert applied()


def test_rejection_closes_the_proposal() -> None:
    """Goal: once two thirds can no longer approve, the proposal is rejected and nothing is
    applied; later votes fail saying so. Method: 4 members need 3; one rejection leaves 3
    possible approvals (open), the second closes it."""
    g = Gov(4)
    number = g.propose("m0", "set_config", {"changes": {"batch_tx_max": 10}}).data["proposal_id"]
    assert isinstance(number, int)
    assert g.vote("m1", number, approve=False).data["status"] == "open"
    second = g.vote("m2", number, approve=False)
    assert second.ok and second.data["status"] == "rejected"
    assert g.proposal(number)["reason"] == "too many rejections for two thirds to approve"
    late = g.vote("m3", number)
    assert not late.ok and late.reason == f"proposal {number} is already rejected"
    assert governance.read_config(g.chain.state_get)["batch_tx_max"] == 500


def test_expiry() -> None:
    """Goal: votes count until expires_at (block time) and not after; an expired proposal
    shows as expired and is never applied. Method: ttl 60 s; a vote at exactly expires_at
    counts, one a millisecond later fails with the reason."""
    g = Gov(4)
    made = g.propose("m0", "set_config", {"changes": {"batch_tx_max": 10}}, ttl_ms=60_000)
    number, expires = made.data["proposal_id"], made.data["expires_at"]
    assert isinstance(number, int) and expires == g.time + 60_000
    assert g.vote("m1", number, advance_ms=60_000).ok  # block time == expires_at
    assert g.time == expires
    late = g.vote("m2", number, advance_ms=1)
    assert not late.ok and late.reason == f"proposal {number} expired at {expires} " \
                                          f"(block time {expires + 1})"
    proposal = g.proposal(number)
    assert proposal["status"] == "open"
    assert governance.display_status(proposal, g.time) == "expired"
    assert governance.display_status(proposal, expires) == "open"
    assert governance.read_config(g.chain.state_get)["batch_tx_max"] == 500


@pytest.mark.parametrize("ttl", [59_999, governance.TTL_MAX_MS + 1, True, "600000"])
def test_bad_ttl(ttl: Value) -> None:
    """Goal: a TTL outside 1 minute .. 90 days (or not an integer) is refused with the bounds.
    Method: propose with each bad ttl_ms."""
    g = Gov(4)
    result = g.send("m0", governance.PROPOSE_TX, {"kind": "set_config", "ttl_ms": ttl,
                                                  "params": {"changes": {"batch_tx_max": 9}}})
    assert not result.ok and "ttl_ms must be an integer from 60000" in result.reason


def test_unauthorised_governance_actions_fail_with_reasons() -> None:
    """Goal: every unauthorised or malformed governance action is a failed transaction whose
    reason says what is wrong, and writes nothing. Method: one case per rule, each in its
    own block, against an open proposal."""
    g = Gov(4)
    number = g.propose("m0", "grant_role", {"public_key": g.pub("ent").hex(),
                                            "role": "auditor"}).data["proposal_id"]
    assert isinstance(number, int)
    before = g.proposal(number)
    cases: list[tuple[str, str, dict[str, Value], str]] = [
        ("m0", governance.VOTE_TX, {"proposal_id": number, "approve": True},
         f"sender already voted on proposal {number}"),
        ("dept", governance.VOTE_TX, {"proposal_id": number, "approve": True},
         "sender is not a member of the committee"),
        ("ent", governance.PROPOSE_TX, {"kind": "set_config",
                                        "params": {"changes": {"batch_tx_max": 1}}},
         "sender is not a member of the committee"),
        ("m1", governance.VOTE_TX, {"proposal_id": 99, "approve": True}, "no proposal 99"),
        ("m1", governance.VOTE_TX, {"proposal_id": number, "approve": "yes"},
         "payload needs proposal_id (a positive integer) and approve (boolean)"),
        # A negative id was a handler error with a traceback on every node (struct.pack).
        ("m1", governance.VOTE_TX, {"proposal_id": -1, "approve": True},
         "payload needs proposal_id (a positive integer) and approve (boolean)"),
        ("m1", governance.VOTE_TX, {"proposal_id": -(2**63), "approve": True},
         "payload needs proposal_id (a positive integer) and approve (boolean)"),
        ("m1", governance.VOTE_TX, {"proposal_id": number, "approve": True, "x": 1},
         "unknown payload field(s): x"),
        ("m1", governance.PROPOSE_TX, {"kind": "make_me_king", "params": {}},
         "unknown proposal kind 'make_me_king'; known: add_committee_member"),
        ("m1", governance.PROPOSE_TX, {"kind": "set_config", "params": []},
         "payload.params must be a map"),
    ]
    for who, tx_type, payload, reason in cases:
        result = g.send(who, tx_type, payload)
        assert not result.ok and result.code == "rejected", (payload, result)
        assert result.reason.startswith(reason), (reason, result.reason)
    assert g.proposal(number) == before


BAD_PARAMS: list[tuple[str, dict[str, Value], str]] = [
    ("add_validator", {"public_key": "zz", "name": "n", "address": "h:1"},
     "params.public_key must be a public key"),
    ("add_validator", {"public_key": "04" + "00" * 64, "name": "n", "address": "h:1"},
     "params.public_key:"),
    ("add_validator", {"public_key": "@new", "name": "n", "address": "no-port"},
     "params.address must be host:port"),
    ("add_validator", {"public_key": "@new", "name": "n", "address": "h:\u00b2"},
     "params.address must be host:port"),  # a digit to isdigit(), not to int()
    ("add_validator", {"public_key": "@v0", "name": "x", "address": "h:1"},
     "that key is already a validator"),
    ("add_validator", {"public_key": "@new", "name": "node0", "address": "h:1"},
     "a validator is already named 'node0'"),
    ("add_validator", {"public_key": "@new", "name": "n", "address": "h:1", "adress": "x"},
     "unknown parameter(s) adress"),
    ("remove_validator", {"public_key": "@m1"}, "that key is not a validator"),
    ("rotate_validator_key", {"old_key": "@m1", "new_key": "@new"},
     "params.old_key is not a validator"),
    ("rotate_validator_key", {"old_key": "@v0", "new_key": "@m1"}, "params.new_key is already"),
    ("add_committee_member", {"public_key": "@m1"}, "that key is already a committee member"),
    ("add_committee_member", {"public_key": "@new"}, "params.public_key must be a registered"),
    ("remove_committee_member", {"public_key": "@ent"}, "that key is not a committee member"),
    ("grant_role", {"public_key": "@ent", "role": "committee"}, "params.role must be one of"),
    ("grant_role", {"public_key": "@aud", "role": "auditor"}, "aud already has the auditor"),
    ("grant_role", {"public_key": "@new", "role": "auditor"}, "params.name must be"),
    ("grant_role", {"public_key": "@new", "role": "auditor", "name": "x", "org": "NOPE"},
     "no organisation with USCC NOPE"),
    ("revoke_role", {"public_key": "@ent", "role": "auditor"}, "ent does not have the auditor"),
    ("revoke_role", {"public_key": "@new", "role": "auditor"}, "that key is not a registered"),
    ("set_config", {"changes": {"checkpoint_interval": 8}}, "checkpoint_interval is fixed at "
                                                            "genesis"),
    ("set_config", {"changes": {"batch_tx_max": 0}}, "setting batch_tx_max must be an integer "
                                                     "from 1 to 100000"),
    ("set_config", {"changes": {"batch_tx_max": "\u0661\u0662"}},
     "setting batch_tx_max must be an integer from 1 to 100000"),  # Arabic-Indic 12
    ("set_config", {"changes": {"batch_tx_max": "1" * 5000}},  # more than int() converts
     "setting batch_tx_max must be an integer from 1 to 100000"),
    ("set_config", {"changes": {"colour": 1}}, "unknown setting 'colour'; settable:"),
    ("set_config", {"changes": {}}, "params.changes must be a non-empty map"),
    ("register_org", {"uscc": "91350100M000100Y44", "name": "x", "kind": "department",
                      "region": "350100"}, "USCC"),
    ("register_org", {"uscc": DEPT_USCC, "name": "x", "kind": "department",
                      "region": "350100"}, f"organisation {DEPT_USCC} is already registered"),
    ("register_org", {"uscc": NEW_USCC, "name": "x", "kind": "ngo", "region": "350100"},
     "params.kind must be one of department, enterprise"),
    ("register_org", {"uscc": NEW_USCC, "name": "x", "kind": "department", "region": "35"},
     "params.region must be a 6-digit"),
    ("register_org", {"uscc": NEW_USCC, "name": "x", "kind": "department",
                      "region": "\uff13\uff15\uff10\uff11\uff10\uff12"},
     "params.region must be a 6-digit"),  # full-width digits
    ("register_org", {"uscc": NEW_USCC, "name": "x", "kind": "department", "region": "350102",
                      "keys": ["@ent"]}, "a key in params.keys already belongs to an account"),
    ("rotate_org_key", {"old_key": "@new", "new_key": "@new2"},
     "params.old_key is not an active account"),
    ("rotate_org_key", {"old_key": "@dept", "new_key": "@ent"}, "params.new_key already belongs"),
    ("rotate_org_key", {"old_key": "@v0", "new_key": "@new"}, "validator keys rotate with"),
]


@pytest.mark.parametrize(("kind", "params", "reason"), BAD_PARAMS)
def test_bad_parameters_fail_the_proposal_with_a_reason(kind: str, params: dict[str, Value],
                                                        reason: str) -> None:
    """Goal: a proposal with bad parameters is a failed transaction that names the kind and
    the problem, and no proposal is recorded. Method: propose it (keys given as '@name' are
    replaced by that key's hex; '@new' is an unregistered key)."""
    g = Gov(4)
    names = {"v0": g.net.validator_keys[0].public_key().raw,
             "new": g.suite.generate_key().public_key().raw,
             "new2": g.suite.generate_key().public_key().raw}

    def resolve(v: Value) -> Value:
        if isinstance(v, str) and v.startswith("@"):
            return (names.get(v[1:]) or g.pub(v[1:])).hex()
        if isinstance(v, list):
            return [resolve(x) for x in v]
        return v

    result = g.propose("m0", kind, {k: resolve(v) for k, v in params.items()})
    assert not result.ok and result.code == "rejected"
    assert result.reason.startswith(f"{kind}: "), result.reason
    assert reason in result.reason, result.reason
    assert g.chain.state_get(governance.NEXT_KEY) is None


def test_apply_failure_marks_the_proposal_failed_and_writes_nothing() -> None:
    """Goal: a decision that can no longer be applied when it passes is marked failed with
    the reason; its effects are not written, the deciding vote still counts. Method: two
    proposals grant the same role; the second to pass fails."""
    g = Gov(3)
    params: dict[str, Value] = {"public_key": g.pub("ent").hex(), "role": "auditor"}
    first = g.propose("m0", "grant_role", params).data["proposal_id"]
    second = g.propose("m1", "grant_role", params).data["proposal_id"]
    assert isinstance(first, int) and isinstance(second, int)
    assert g.vote("m1", first).data["status"] == "passed"
    result = g.vote("m0", second)
    assert result.ok and result.data["status"] == "failed"
    assert g.proposal(second)["reason"] == "could not be applied: ent already has the auditor " \
                                           "role"


def test_votes_of_removed_members_stop_counting() -> None:
    """Goal: only current members' votes count; the threshold follows the committee's size.
    Method: 4 members; m3 approves a proposal, then m3 is removed (committee of 3, needs 2):
    the earlier proposal still has only m0's approval that counts, until m1 approves."""
    g = Gov(4)
    number = g.propose("m0", "set_config", {"changes": {"batch_tx_max": 7}}).data["proposal_id"]
    assert isinstance(number, int)
    assert g.vote("m3", number).data["status"] == "open"
    assert g.decide("remove_committee_member", {"public_key": g.pub("m3").hex()})["status"] \
        == "passed"
    result = g.vote("m1", number)
    assert result.data["approvals"] == 2 and result.data["status"] == "passed"
    assert not g.vote("m3", g.propose("m0", "set_config", {
        "changes": {"batch_tx_max": 8}}).data["proposal_id"]).ok  # type: ignore[arg-type]


# -- key rotation -----------------------------------------------------------------------------


def test_org_key_rotation_is_judged_per_block() -> None:
    """Goal: after rotate_org_key passes in block h the old key still counts for the rest of
    block h and is refused from h+1; the new key counts from h+1; earlier signatures by the
    old key stay valid (proofs and a full replay from genesis). Method: anchor with the old
    key, rotate it in a block that also carries later transactions by both keys, then use
    both keys in the next block; verify_chain and an evidence proof at the end."""
    g = Gov(3)
    old, new = g.pub("dept"), g.new_key("dept2").public_key().raw
    early = g.anchor("dept", "before rotation")
    assert g.block([early])[0].ok
    number = g.propose("m0", "rotate_org_key", {"old_key": old.hex(), "new_key": new.hex()}
                       ).data["proposal_id"]
    assert isinstance(number, int)
    vote = g.tx("m1", governance.VOTE_TX, {"proposal_id": number, "approve": True})
    passed, old_same, new_same = g.block([vote, g.anchor("dept", "same block, old key"),
                                          g.anchor("dept2", "same block, new key")])
    h = g.chain.height
    assert passed.data["status"] == "passed" and passed.data["outcome"] == {"key_valid_from": h + 1}
    assert old_same.ok
    assert not new_same.ok and new_same.code == "forbidden"
    name = "dept"
    assert new_same.reason == f"sender's key ({name}) is valid only from height {h + 1}"
    old_next, new_next = g.block([g.anchor("dept", "next block, old key"),
                                  g.anchor("dept2", "next block, new key")])
    assert not old_next.ok and old_next.code == "forbidden"
    assert old_next.reason == f"sender's key ({name}) was revoked at height {h + 1}"
    assert new_next.ok
    assert g.account(new).org == DEPT_USCC and g.account(new).roles == ["issuer"]
    report = verify_chain(g.chain.store, g.net.genesis, gov_registry)
    assert report.ok, report.reason
    digest = early.payload["digest"]
    assert isinstance(digest, bytes)
    record = verify_evidence(g.net.genesis, build_evidence_proof(g.chain, digest), digest)
    assert record["sender"] == old


def test_committee_member_rotation_moves_the_seat() -> None:
    """Goal: rotating a member's key moves its committee seat: the new key votes (from the
    next block), the old one is refused by execution and by admission. Method: rotate m2,
    then vote with each key on a new proposal; check Admission.check for the old key."""
    g = Gov(3)
    new = g.new_key("m2new").public_key().raw
    g.decide("rotate_org_key", {"old_key": g.pub("m2").hex(), "new_key": new.hex()})
    assert new in acl.committee(g.chain.state_get)
    assert g.pub("m2") not in acl.committee(g.chain.state_get)
    number = g.propose("m0", "set_config", {"changes": {"batch_timeout_ms": 20}}
                       ).data["proposal_id"]
    assert isinstance(number, int)
    refused = g.vote("m2", number)
    assert refused.code == "forbidden" and "was revoked at height" in refused.reason
    assert g.vote("m2new", number).data["status"] == "passed"
    admission = Admission(g.net.genesis.chain_id, g.registry, Limits())
    tx = g.tx("m2", governance.VOTE_TX, {"proposal_id": number, "approve": True})
    with pytest.raises(Rejection, match="was revoked at height") as info:
        admission.check(tx, tx.tx_id(g.suite), g.time, g.chain.state_get, lambda _: False,
                        lambda _: False)
    assert info.value.status == 403


def test_validator_key_rotation_and_set_changes_follow_from_genesis() -> None:
    """Goal: validator-set decisions take effect at the first height after the next
    checkpoint, two decisions in one interval both take effect, blocks are then certified by
    the new set, and header proofs verify from genesis alone across the change. Method:
    checkpoint interval 8; add a validator (passes at 2) and rotate another's key (passes at
    4); run to height 9 (effective) and beyond; verify header proofs for heights 2 and 10."""
    g = Gov(3, config={"checkpoint_interval": 8})
    added = g.new_validator_key().public_key().raw
    rotated_to = g.new_validator_key().public_key().raw
    old0 = g.net.validator_keys[0].public_key().raw
    first = g.decide("add_validator", {"public_key": added.hex(), "name": "node4",
                                       "address": "127.0.0.1:7704"})
    assert first["outcome"] == {"validators_effective_height": 9}
    second = g.decide("rotate_validator_key", {"old_key": old0.hex(), "new_key": rotated_to.hex()})
    assert second["outcome"] == {"validators_effective_height": 9, "key_valid_from": 5}
    while g.chain.height < 10:
        g.block([g.anchor("dept", f"h{g.chain.height}")])
    now = g.chain.validators_for(10).public_keys()
    assert now[0] == rotated_to and now[-1] == added and len(now) == 5
    assert g.chain.validators_for(8).public_keys() == [k.public_key().raw
                                                       for k in g.net.validator_keys]
    for height in (2, 10):
        verify_header(g.net.genesis, build_header_proof(g.chain, height))
    assert len(build_header_proof(g.chain, 10).links) == 1
    report = verify_chain(g.chain.store, g.net.genesis, gov_registry)
    assert report.ok, report.reason


# -- configuration ----------------------------------------------------------------------------


def test_set_config_reaches_the_replica() -> None:
    """Goal: set_config changes sys/config; a running replica applies it (with_chain_config),
    and so does one (re)started afterwards, whatever its genesis-derived config says; frozen
    settings stay. Method: pass set_config, then feed the new sys/config to
    ReplicaConfig.with_chain_config and build a Replica on the chain."""
    g = Gov(4)
    proposal = g.decide("set_config", {"changes": {"batch_tx_max": "800",
                                                   "view_change_timeout_ms": 8000}})
    assert proposal["params"] == {"changes": {"batch_tx_max": 800, "view_change_timeout_ms": 8000}}
    config = governance.read_config(g.chain.state_get)
    assert config["batch_tx_max"] == 800 and config["checkpoint_interval"] == 16
    base = ReplicaConfig.from_genesis(g.net.genesis)
    assert base.batch_tx_max == 500
    live = base.with_chain_config(config)
    assert (live.batch_tx_max, live.view_change_timeout_ms) == (800, 8000)
    assert base.with_chain_config({"checkpoint_interval": 2}).checkpoint_interval == 16
    restarted = Replica(g.chain, g.net.validator_keys[0], base)
    assert restarted.config.batch_tx_max == 800 and restarted.vc_timeout == 8000


def test_application_settings_are_registered_with_their_checks() -> None:
    """Goal: an application's setting can be changed once registered, with its own check.
    Method: register a list-valued setting with a check; propose a bad and a good value."""
    def codes(value: Value) -> Value:
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise TxRejected("must be a list of strings")
        return sorted(value)

    governance.register_config_key("test_codes", codes)
    g = Gov(3)
    bad = g.propose("m0", "set_config", {"changes": {"test_codes": 5}})
    assert not bad.ok and bad.reason == "set_config: setting test_codes: must be a list of strings"
    assert g.decide("set_config", {"changes": {"test_codes": ["b", "a"]}})["status"] == "passed"
    assert governance.read_config(g.chain.state_get)["test_codes"] == ["a", "b"]


# -- roles and admission -------------------------------------------------------------------


def test_roles_and_admission_precheck() -> None:
    """Goal: admission refuses unauthorised requests early with 403 and the reason, and lets
    authorised ones through; roles granted and revoked by the committee take effect. Method:
    Admission.check against the committed state for a non-member's proposal, an unregistered
    sender, a member's vote, and a new key before and after grant_role / revoke_role."""
    g = Gov(3)
    admission = Admission(g.net.genesis.chain_id, g.registry, Limits())

    def check(who: str, tx_type: str, payload: dict[str, Value]) -> Rejection | None:
        tx = g.tx(who, tx_type, payload)
        try:
            admission.check(tx, tx.tx_id(g.suite), g.time, g.chain.state_get,
                            lambda _: False, lambda _: False)
        except Rejection as exc:
            return exc
        return None

    propose = {"kind": "set_config", "params": {"changes": {"batch_tx_max": 5}}}
    refused = check("dept", governance.PROPOSE_TX, propose)
    assert refused is not None and (refused.status, refused.code) == (403, "forbidden")
    assert str(refused) == "sender is not a member of the committee"
    assert check("m0", governance.PROPOSE_TX, propose) is None
    clerk = g.new_key("clerk").public_key().raw
    anchor = {"digest": b"\x01" * 32, "label": "x"}
    refused = check("clerk", evidence.TX_TYPE, anchor)
    assert refused is not None and refused.status == 403
    assert str(refused) == "sender is not a registered account"
    g.decide("grant_role", {"public_key": clerk.hex(), "role": "auditor", "name": "审计员",
                            "org": DEPT_USCC})
    assert check("clerk", evidence.TX_TYPE, anchor) is None
    assert acl.has_role(g.chain.state_get, clerk, "auditor")
    org = acl.get_org(g.chain.state_get, DEPT_USCC)
    assert org is not None and clerk in org.keys
    g.decide("revoke_role", {"public_key": clerk.hex(), "role": "auditor"})
    assert acl.roles_problem(g.chain.state_get, clerk, ("auditor",)) == \
        "sender (审计员) does not have the auditor role"


def test_proposals_are_listed_newest_first() -> None:
    """Goal: list_proposals returns the most recent proposals, bounded. Method: make three,
    list with limit 2."""
    g = Gov(4)
    for n in (1, 2, 3):
        g.propose("m0", "set_config", {"changes": {"batch_tx_max": n}})
    listed = governance.list_proposals(g.chain.state_get, limit=2)
    assert [p["id"] for p in listed] == [3, 2]


def test_replayed_chain_agrees() -> None:
    """Goal: governance execution is deterministic: replaying a chain with proposals, votes,
    rejections and failed transactions from genesis gives the same state and results.
    Method: a mixed history, then verify_chain (replay into a fresh memory store)."""
    g = Gov(4)
    g.decide("set_config", {"changes": {"batch_tx_max": 77}})
    n = g.propose("m0", "grant_role", {"public_key": g.pub("ent").hex(), "role": "auditor"}
                  ).data["proposal_id"]
    assert isinstance(n, int)
    g.vote("m1", n, approve=False)
    g.vote("m2", n, approve=False)
    assert not g.vote("m0", n).ok
    report = verify_chain(g.chain.store, g.net.genesis, gov_registry)
    assert report.ok and report.checked_height == g.chain.height
