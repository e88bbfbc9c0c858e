"""Chain: execution through blocks, failed transactions, proposals, proofs, verify_chain."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from ledger import evidence
from ledger.block import Block, TxResult
from ledger.chain import NEXT_VALIDATORS_KEY, Chain
from ledger.codec import decode_value, encode_value
from ledger.devnet import Devnet, make_devnet
from ledger.errors import InputError, ProofError, TxRejected
from ledger.execution import ExecContext, Registry
from ledger.proofs import build_evidence_proof, build_header_proof, verify_evidence, verify_header
from ledger.tx import Transaction, make_tx
from tests.conftest import ledger_registry

T0 = 1_767_225_600_000
HOUR = 3_600_000


def anchor_tx(net: Devnet, who: str, digest: bytes, label: str = "合同", nonce: int = 1,
              valid_until: int = T0 + HOUR) -> Transaction:
    return make_tx(net.account_keys[who], net.genesis.chain_id, evidence.TX_TYPE,
                   {"digest": digest, "label": label}, nonce, valid_until)


def run_block(net: Devnet, chain: Chain, txs: list[Transaction], time_ms: int) -> list[TxResult]:
    pending = chain.propose(txs, time_ms, 0, net.validator_keys[0].public_key().raw)
    net.commit(chain, pending)
    return pending.execution.results


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def test_anchor_commits_and_is_readable(devnet: Devnet) -> None:
    """Goal: a registered department anchors a digest; the state records who and when.
    Method: one block with one anchor transaction on a memory store."""
    chain = devnet.open_chain(ledger_registry())
    tx = anchor_tx(devnet, "市场监督管理局", digest("doc-1"))
    (result,) = run_block(devnet, chain, [tx], T0 + 1000)
    assert result.ok, result.reason
    record = decode_value(chain.state_get(evidence.evidence_key(digest("doc-1"))) or b"")
    assert isinstance(record, dict)
    assert record["height"] == 1 and record["org"] == "91350100M000100Y43"
    assert chain.result_of(tx.tx_id(chain.suite)) == (1, 0, result)


def test_state_cache_budget_is_the_chains_to_set(devnet: Devnet) -> None:
    """Goal: an operator's state_cache_mb reaches the state tree: with a budget, reading
    the state back after a block reads no tree node from the store; with none (0), every
    read walks the store.
    Method: one block of 20 anchors on a node-read-counting memory store, then each
    anchor's record read twice from the state tree at height 1, under the default budget
    and under 0."""
    from ledger.store import MemoryStore

    class Counting(MemoryStore):
        reads = 0

        def get_node(self, node_hash: bytes, height: int | None = None) -> bytes | None:
            Counting.reads += 1
            return super().get_node(node_hash, height)

    for budget, cached in ((None, True), (0, False)):
        store = Counting(devnet.genesis.crypto)
        chain = (Chain(store, devnet.genesis, ledger_registry()) if budget is None
                 else Chain(store, devnet.genesis, ledger_registry(), state_cache_bytes=budget))
        txs = [anchor_tx(devnet, "市场监督管理局", digest(f"c{i}"), nonce=i + 1)
               for i in range(20)]
        assert all(r.ok for r in run_block(devnet, chain, txs, T0 + 1000))
        for i in range(20):
            chain.state_at(1, evidence.evidence_key(digest(f"c{i}")))
        Counting.reads = 0
        for i in range(20):
            assert chain.state_at(1, evidence.evidence_key(digest(f"c{i}"))) is not None
        assert (Counting.reads == 0) is cached, (budget, Counting.reads)


def test_failed_transactions_change_nothing_and_say_why(devnet: Devnet) -> None:
    """Goal: each kind of bad transaction fails alone with a reason; the block still commits.
    Method: one block mixing a good anchor with a stranger's, a duplicate digest, an expired
    transaction, a forged signature and an unknown type; then compare state writes."""
    chain = devnet.open_chain(ledger_registry())
    good = anchor_tx(devnet, "市场监督管理局", digest("a"))
    stranger = anchor_tx(devnet, "stranger", digest("b"))
    again = anchor_tx(devnet, "市场监督管理局", digest("a"), nonce=2)
    expired = anchor_tx(devnet, "市场监督管理局", digest("c"), valid_until=T0)
    forged = dataclasses.replace(anchor_tx(devnet, "市场监督管理局", digest("d")), sig=good.sig)
    unknown = make_tx(devnet.account_keys["市场监督管理局"], devnet.genesis.chain_id,
                      "nope.action", {}, 1, T0 + HOUR)
    results = run_block(devnet, chain, [good, stranger, again, expired, forged, unknown],
                        T0 + 1000)
    codes = [(r.ok, r.code) for r in results]
    assert codes == [(True, "ok"), (False, "rejected"), (False, "rejected"), (False, "expired"),
                     (False, "bad_signature"), (False, "unknown_type")]
    assert "not a registered account" in results[1].reason
    assert "already anchored at height 1" in results[2].reason
    for d in ("b", "c", "d"):
        assert chain.state_get(evidence.evidence_key(digest(d))) is None
    # A forged copy does not consume the id: the genuine transaction still executes later.
    genuine = anchor_tx(devnet, "市场监督管理局", digest("d"))
    (r,) = run_block(devnet, chain, [genuine], T0 + 2000)
    assert r.ok


def test_same_id_is_never_executed_twice(devnet: Devnet) -> None:
    """Goal: a replayed transaction is refused, inside a block and across blocks.
    Method: include the same signed transaction twice, then again in the next block."""
    chain = devnet.open_chain(ledger_registry())
    tx = anchor_tx(devnet, "市场监督管理局", digest("once"))
    first, dup = run_block(devnet, chain, [tx, tx], T0 + 1000)
    assert first.ok and dup.code == "duplicate"
    (later,) = run_block(devnet, chain, [tx], T0 + 2000)
    assert later.code == "duplicate"
    assert chain.result_of(tx.tx_id(chain.suite))[0] == 1  # type: ignore[index]


def test_handler_bug_fails_only_its_transaction(devnet: Devnet) -> None:
    """Goal: a crashing handler cannot halt the chain or leave partial writes.
    Method: a handler that writes, then raises; the block commits without the write."""
    registry = ledger_registry()

    def buggy(ctx: ExecContext) -> None:
        ctx.state.put(b"partial", b"1")
        raise KeyError("oops")

    registry.register("test.buggy", buggy)
    chain = devnet.open_chain(registry)
    tx = make_tx(devnet.account_keys["市场监督管理局"], devnet.genesis.chain_id, "test.buggy", {},
                 1, T0 + HOUR)
    (r,) = run_block(devnet, chain, [tx], T0 + 1)
    assert r.code == "handler_error" and chain.state_get(b"partial") is None


def test_backup_rejects_a_proposal_whose_roots_do_not_match(devnet: Devnet) -> None:
    """Goal: the header digest PBFT agrees on fixes the execution outcome.
    Method: tamper each root of a valid proposal; check_proposal must refuse each."""
    proposer = devnet.open_chain(ledger_registry())
    backup = devnet.open_chain(ledger_registry())
    tx = anchor_tx(devnet, "市场监督管理局", digest("p"))
    pending = proposer.propose([tx], T0 + 5, 0, devnet.validator_keys[0].public_key().raw)
    backup.check_proposal(pending.block)  # the honest proposal passes
    for field in ("tx_root", "result_root", "state_root", "prev_hash", "validator_set_hash"):
        header = dataclasses.replace(pending.header, **{field: bytes(32)})
        with pytest.raises(InputError):
            backup.check_proposal(Block(header, pending.block.txs))


def test_pipelined_proposals_execute_on_pending_parents(devnet: Devnet) -> None:
    """Goal: consensus can propose height n+1 before n is appended.
    Method: propose two blocks on top of each other, then append both in order; a duplicate
    inside the second pending block is caught against the first."""
    chain = devnet.open_chain(ledger_registry())
    key = devnet.validator_keys[0].public_key().raw
    tx1 = anchor_tx(devnet, "市场监督管理局", digest("p1"))
    p1 = chain.propose([tx1], T0 + 1, 0, key)
    p2 = chain.propose([tx1, anchor_tx(devnet, "市场监督管理局", digest("p2"))], T0 + 2, 0, key,
                       parent=p1)
    assert [r.code for r in p2.execution.results] == ["duplicate", "ok"]
    devnet.commit(chain, p1)
    devnet.commit(chain, p2)
    assert chain.height == 2


def test_evidence_proof_verifies_from_genesis_alone(devnet: Devnet) -> None:
    """Goal: an anchored digest is provable offline with only the genesis file.
    Method: anchor, add later blocks, build the bundle, verify it; then alter parts."""
    chain = devnet.open_chain(ledger_registry())
    d = digest("营业执照 scan")
    run_block(devnet, chain, [anchor_tx(devnet, "市场监督管理局", d)], T0 + 1)
    run_block(devnet, chain, [anchor_tx(devnet, "市场监督管理局", digest("x"))], T0 + 2)
    proof = build_evidence_proof(chain, d)
    record = verify_evidence(devnet.genesis, proof, d)
    assert record["height"] == 1
    with pytest.raises(ProofError):
        verify_evidence(devnet.genesis, proof, digest("other"))
    bad_record = dataclasses.replace(proof, record=proof.record.replace(b"\xe5", b"\xe6", 1))
    with pytest.raises(ProofError):
        verify_evidence(devnet.genesis, bad_record, d)
    cert = proof.header.certificate
    weak = dataclasses.replace(cert, signatures=cert.signatures[:2])
    with pytest.raises(ProofError, match="2 valid commit signatures, 3 needed"):
        verify_evidence(devnet.genesis,
                        dataclasses.replace(proof, header=dataclasses.replace(proof.header,
                                                                              certificate=weak)),
                        d)
    other = make_devnet("sm", 4)
    with pytest.raises(ProofError):
        verify_evidence(other.genesis, proof, d)


def test_unknown_digest_has_no_proof(devnet: Devnet) -> None:
    """Goal: asking for a proof of a digest never anchored is a clear input error."""
    chain = devnet.open_chain(ledger_registry())
    with pytest.raises(InputError, match="not anchored"):
        build_evidence_proof(chain, digest("never"))


def schedule_registry(new_set: list[object], effective: int) -> Registry:
    registry = ledger_registry()

    def schedule(ctx: ExecContext) -> None:
        if ctx.state.get(NEXT_VALIDATORS_KEY) is not None:
            raise TxRejected("a change is already scheduled")
        ctx.state.put(NEXT_VALIDATORS_KEY, encode_value(
            {"validators": new_set, "effective_height": effective}))  # type: ignore[dict-item]

    registry.register("test.schedule", schedule)
    return registry


def test_validator_set_change_is_followed_from_genesis() -> None:
    """Goal: after a validator-set change, blocks are certified by the new set and proofs
    still verify from genesis via validator links. Method: schedule a swap of node3 for a new
    key, effective at height 3; certify accordingly; verify header proofs before and after."""
    net = make_devnet("sm", 4, accounts=[("dept", "x", ["issuer"])])
    suite = net.genesis.crypto
    newcomer = suite.generate_key()
    vset = [dict(name=v.name, public_key=v.public_key, address=v.address)
            for v in net.genesis.validators.validators[:3]]
    vset.append(dict(name="node4", public_key=newcomer.public_key().raw, address="x:1"))
    chain = net.open_chain(schedule_registry(vset, 3))
    key = net.validator_keys[0].public_key().raw
    tx = make_tx(net.account_keys["dept"], net.genesis.chain_id, "test.schedule", {}, 1, T0 + HOUR)
    p1 = chain.propose([tx], T0 + 1, 0, key)
    assert p1.execution.results[0].ok
    net.commit(chain, p1)
    p2 = chain.propose([], T0 + 2, 0, key)  # still the old set: the state after 1 schedules 3
    net.commit(chain, p2)
    p3 = chain.propose([], T0 + 3, 0, key)
    new_keys = [*net.validator_keys[:2], newcomer]
    assert chain.validators_for(3).public_keys()[-1] == newcomer.public_key().raw
    chain.append(p3, net.certify(p3.header, new_keys))
    proof3 = build_header_proof(chain, 3)
    assert len(proof3.links) == 1 and proof3.links[0].header.height == 2
    assert verify_header(net.genesis, proof3).public_keys()[-1] == newcomer.public_key().raw
    verify_header(net.genesis, build_header_proof(chain, 1))
    # A quorum that includes the retired node3 does not certify block 3 any more.
    old_quorum = [net.validator_keys[3], *net.validator_keys[:2]]
    stale = dataclasses.replace(proof3, certificate=net.certify(p3.header, old_quorum))
    with pytest.raises(ProofError):
        verify_header(net.genesis, stale)
    # Dropping the link leaves the verifier with the genesis set: refused.
    with pytest.raises(ProofError):
        verify_header(net.genesis, dataclasses.replace(proof3, links=[]))

