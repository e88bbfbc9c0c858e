"""The PBFT replica driven by hand: call receive/submit/on_timer, assert on the effects.

Every test builds a small network with :mod:`tests.unit.replica_harness` (n = 4,
checkpoint interval 2, small timeouts), steps ``net.now`` explicitly and
decides which messages are delivered, dropped or forged (aioquic style; see
STYLE.md §1 and §7 and /work/shared/PBFT.md for the rules checked here).
Most tests use the fast HMAC-style ``SimSuite``; the normal case and state
transfer also run end to end with real Ed25519 keys (``intl``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

import pytest

from consensus.effects import Append, Broadcast, Effect, Persist, Send
from consensus.messages import (
    Blocks,
    CertifiedBlock,
    Checkpoint,
    Commit,
    FetchBlocks,
    Message,
    NewView,
    Prepare,
    PreparedCert,
    PrePrepare,
    Status,
    TxGossip,
    ViewChange,
    sign,
)
from consensus.replica import (
    K_NEW_VIEW,
    K_VIEW,
    Replica,
    pre_prepare_key,
    prepared_key,
    vote_key,
)
from ledger.block import (
    COMMIT_PURPOSE,
    Block,
    CommitCertificate,
    CommitSignature,
    commit_message,
    verify_certificate,
)
from ledger.codec import decode, decode_value
from ledger.errors import SignatureError
from ledger.tx import Transaction
from tests.unit.replica_harness import T0, Net, both, kind, small_config, to

M = TypeVar("M")

# -- small helpers ------------------------------------------------------------------------------


def types(effects: Sequence[Effect]) -> list[type]:
    return [type(e) for e in effects]


def sent(effects: Sequence[Effect], cls: type[M]) -> list[M]:
    """Messages of class ``cls`` that ``effects`` send or broadcast, in order."""
    return [e.message for e in effects
            if isinstance(e, (Send, Broadcast)) and isinstance(e.message, cls)]


def stored(effect: Effect, key: bytes) -> bytes:
    """The value a Persist effect writes under ``key``."""
    assert isinstance(effect, Persist)
    value = effect.changes[key]
    assert value is not None
    return value


def vc_deadline(r: Replica) -> int | None:
    return r.vc_deadline


def flip(data: bytes) -> bytes:
    """``data`` with its first bit flipped (a corrupted signature or hash)."""
    return bytes([data[0] ^ 1]) + data[1:]


def assert_dropped(net: Net, i: int, msg: Message, caplog: pytest.LogCaptureFixture,
                   reason: str = "") -> None:
    """Node i drops ``msg``: no effects, one more drop counted, and (if given) the reason logged."""
    before = net.replica(i).stats["dropped"]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="govledger.consensus"):
        effects = net.receive(i, msg)
    assert effects == [], f"{type(msg).__name__} should have been dropped, got {effects}"
    assert net.replica(i).stats["dropped"] == before + 1
    assert reason in caplog.text, caplog.text


def view_change(net: Net, signer: int, new_view: int, last_height: int = 0,
                prepared: PreparedCert | None = None) -> ViewChange:
    """A valid VIEW-CHANGE by ``signer`` (its last certificate read from its own store)."""
    store = net.nodes[signer].store
    cert = store.get_certificate(last_height) if last_height > 0 else None
    vc = net.sign(ViewChange(new_view, 0, [], cert, [prepared] if prepared else [], b""), signer)
    assert isinstance(vc, ViewChange)
    return vc


def commit_vote(net: Net, signer: int, view: int, height: int, digest: bytes) -> Commit:
    c = net.sign(Commit(view, height, digest, b""), signer)
    assert isinstance(c, Commit)
    return c


def digest_of(net: Net, block: Block) -> bytes:
    return block.header.block_hash(net.suite)


def start_with_pending_request(net: Net, nonce: int, at: int = 1) -> Transaction:
    """Submit a transaction at node ``at`` and gossip it to everyone reachable."""
    tx = net.tx(nonce)
    net.submit(at, tx)
    net.deliver(kind(TxGossip))
    return tx


# -- 1. normal case -----------------------------------------------------------------------------


@pytest.mark.parametrize("suite", ["sim", "intl"])
def test_normal_case_orders_a_gossiped_transaction(suite: str) -> None:
    """Goal: the three-phase normal case emits the right effects in the right order and
    commits a block whose certificate is exactly the COMMIT signers'.

    Method: submit at a backup; check gossip, the primary's batch deadline and its
    Persist→Broadcast(PrePrepare); deliver pre-prepares, prepares and commits phase by
    phase, checking Persist strictly before each vote and the appended certificate;
    end with equal heads. Runs with the sim suite and with real Ed25519 keys.
    """
    net = Net(suite)
    net.start()
    tx = net.tx(1)
    submitted = net.submit(1, tx)
    assert types(submitted) == [Broadcast]
    assert sent(submitted, TxGossip)[0].txs == [tx]
    gossip = net.deliver(kind(TxGossip))
    assert sorted(d.dst for d in gossip) == [0, 2, 3]
    assert all(d.effects == [] for d in gossip)

    primary = net.replica(0)
    deadline = primary.next_deadline_ms()
    assert deadline == net.now + net.config.batch_timeout_ms
    net.now = deadline - 1
    assert net.timer(0) == []
    net.now = deadline
    proposed = net.timer(0)
    assert types(proposed) == [Persist, Broadcast]
    pp = proposed[1].message  # type: ignore[union-attr]
    assert isinstance(pp, PrePrepare)
    assert (pp.view, pp.height, pp.block.txs, pp.sender) == (0, 1, [tx], net.nodes[0].pk)
    assert decode(stored(proposed[0], pre_prepare_key(1)), PrePrepare) == pp
    digest = digest_of(net, pp.block)

    # Backups: Persist(vote) strictly before Broadcast(Prepare).
    pre_prepares = net.deliver(kind(PrePrepare))
    assert sorted(d.dst for d in pre_prepares) == [1, 2, 3]
    for d in pre_prepares:
        assert types(d.effects) == [Persist, Broadcast]
        persist = d.effects[0]
        assert isinstance(persist, Persist)
        assert decode_value(stored(persist, vote_key(1))) == [0, 1, digest, "prepare"]
        prepare = sent(d.effects, Prepare)[0]
        assert isinstance(prepare, Prepare)
        assert (prepare.view, prepare.height, prepare.digest) == (0, 1, digest)
        assert prepare.sender == net.nodes[d.dst].pk

    # Prepared: Persist(vote + prepared certificate) strictly before Broadcast(Commit).
    commits: dict[int, Commit] = {}
    for d in net.deliver(kind(Prepare)):
        if not d.effects:
            continue
        assert types(d.effects) == [Persist, Broadcast]
        persist = d.effects[0]
        assert isinstance(persist, Persist)
        assert decode_value(stored(persist, vote_key(1))) == [0, 1, digest, "commit"]
        cert = decode(stored(persist, prepared_key(1)), PreparedCert)
        assert cert.pre_prepare == pp
        assert len(cert.prepares) >= net.genesis.validators.quorum - 1
        assert all((p.view, p.height, p.digest) == (0, 1, digest) for p in cert.prepares)
        commit = sent(d.effects, Commit)[0]
        assert isinstance(commit, Commit) and commit.digest == digest
        assert d.dst not in commits
        commits[d.dst] = commit
    assert sorted(commits) == [0, 1, 2, 3]
    assert all(n.chain.height == 0 for n in net.nodes)

    # Committed: Append with a certificate made of exactly the COMMITs received (own included).
    received = {i: {net.nodes[i].pk} for i in range(4)}
    appended: set[int] = set()
    votes = {(c.sender, c.sig) for c in commits.values()}
    for d in net.deliver(kind(Commit)):
        if d.dst in appended:
            assert d.effects == []
            continue
        received[d.dst].add(net.nodes[d.src].pk)
        if not d.effects:
            continue
        assert types(d.effects) == [Append]
        append = d.effects[0]
        assert isinstance(append, Append)
        header, commit_cert = append.pending.header, append.certificate
        verify_certificate(net.suite, net.chain_id, header, commit_cert, net.genesis.validators)
        signers = [s.validator for s in commit_cert.signatures]
        assert set(signers) == received[d.dst]
        assert len(signers) == len(set(signers)) == net.genesis.validators.quorum
        assert {(s.validator, s.sig) for s in commit_cert.signatures} <= votes
        assert commit_cert.block_hash == digest and header.height == 1
        appended.add(d.dst)
    assert appended == {0, 1, 2, 3}
    assert net.queue == []
    assert [n.chain.height for n in net.nodes] == [1, 1, 1, 1]
    assert net.heads() == {digest}
    assert net.nodes[3].chain.result_of(tx.tx_id(net.suite)) is not None


def test_gossip_lingers_for_company_until_the_driver_flushes_it() -> None:
    """Goal: submitted transactions wait up to gossip_linger_ms to leave together, and the
    driver can send them at once when it is idle (no company is coming), after which the
    linger deadline is gone. Method: a 50 ms linger; two submits give no broadcast; the
    flush gives one TxGossip with both, and a second flush gives nothing."""
    net = Net(config=small_config(gossip_linger_ms=50))
    net.start()
    first, second = net.tx(1), net.tx(2)
    assert sent(net.submit(1, first), TxGossip) == []
    assert sent(net.submit(1, second), TxGossip) == []
    backup = net.replica(1)
    assert backup.next_deadline_ms() == net.now + 50
    flushed = net.run(1, backup.flush_gossip())
    assert [g.txs for g in sent(flushed, TxGossip)] == [[first, second]]
    assert backup.gossip_deadline is None
    assert backup.flush_gossip() == []


# -- 2. bad pre-prepares --------------------------------------------------------------------------


def test_backups_reject_bad_pre_prepares_without_effects(caplog: pytest.LogCaptureFixture) -> None:
    """Goal: a backup votes for no pre-prepare that breaks an acceptance rule, and a second,
    different pre-prepare for an accepted (view, height) changes nothing.

    Method: build each bad pre-prepare from a good one by changing one thing (view, signer,
    block time, a transaction signature, the state root re-signed by the primary, the
    height); each must give no effects and log why; then the good one is accepted, and a
    different block for the same (view, height) and a duplicate are ignored.
    """
    net = Net()
    net.start()
    net.now = T0 + 8000
    tx = start_with_pending_request(net, 1)
    skew = net.config.block_time_skew_ms
    good = net.propose(0, 0, [tx], net.now).block

    def by_primary(block: Block, view: int = 0, height: int | None = None) -> PrePrepare:
        return net.pre_prepare(0, view, block, height)

    forged_tx = replace(net.tx(2), sig=flip(net.tx(2).sig))
    bad_root = Block(replace(good.header, state_root=flip(good.header.state_root)), good.txs)
    cases: list[tuple[PrePrepare, str]] = [
        (net.pre_prepare(1, 1, net.propose(1, 1, [tx], net.now).block), "for view 1"),
        (by_primary(good, view=1), "for view 1"),
        (net.pre_prepare(1, 0, net.propose(1, 0, [tx], net.now).block), "not from the primary"),
        (by_primary(net.propose(0, 0, [tx], net.now + skew + 1).block), "off our clock"),
        (by_primary(net.propose(0, 0, [tx], net.now - skew - 1).block), "off our clock"),
        (by_primary(net.propose(0, 0, [tx], T0).block), "not after its parent"),
        (by_primary(net.propose(0, 0, [forged_tx], net.now).block), "signature does not verify"),
        (by_primary(bad_root), "state_root differs"),
        (by_primary(good, height=net.config.watermark_window + 1), "outside the watermarks"),
    ]
    for pp, reason in cases:
        assert_dropped(net, 2, pp, caplog, reason)
    assert net.nodes[2].store.get_consensus(vote_key(1)) is None

    accepted = net.receive(2, by_primary(good))
    assert types(accepted) == [Persist, Broadcast]
    assert sent(accepted, Prepare)[0].digest == digest_of(net, good)

    other = net.propose(0, 0, [], net.now + 1).block
    assert digest_of(net, other) != digest_of(net, good)
    assert net.receive(2, by_primary(other)) == []
    assert net.receive(2, by_primary(good)) == []
    vote = net.nodes[2].store.get_consensus(vote_key(1))
    assert vote is not None and decode_value(vote) == [0, 1, digest_of(net, good), "prepare"]


def test_backup_rejects_forged_signature_on_a_copy_of_a_verified_transaction() -> None:
    """Goal: a block carrying a transaction whose signature does not verify is never voted
    for, even when a genuine copy of the same body (same tx_id) was verified before.

    Method: gossip a genuine transaction to every backup (its signature is verified and
    cached); the primary proposes a block holding the same body with a corrupted signature,
    executed as if the signature were fine. Backup 2 must not vote. (If it does, replicas
    that never saw the genuine copy — a restarted node, state transfer, verify_chain —
    execute the block differently: bad_signature instead of ok.)
    """
    net = Net()
    net.start()
    tx = start_with_pending_request(net, 1)
    forged = replace(tx, sig=flip(tx.sig))
    assert not forged.signature_ok(net.suite)
    block = net.nodes[0].chain.propose([forged], net.now, 0, net.nodes[0].pk, None,
                                       lambda t: True).block
    assert net.receive(2, net.pre_prepare(0, 0, block)) == []


# -- 3. exactly once ------------------------------------------------------------------------------


def test_same_transaction_is_ordered_once() -> None:
    """Goal: a transaction submitted and gossiped several times is ordered exactly once, and
    is not proposed again after it committed.

    Method: submit the same transaction twice at one backup and once at another, duplicate
    its gossip to the primary; the block holds it once. After commit, submit and gossip it
    again and run time forward: no pre-prepare, no new block; a new transaction then goes
    into the next block alone.
    """
    net = Net()
    net.start()
    tx = net.tx(1)
    first = net.submit(1, tx)
    assert types(first) == [Broadcast]
    assert net.submit(1, tx) == []
    gossip = net.peek(both(kind(TxGossip), to(0)))
    assert types(net.submit(2, tx)) == [Broadcast]
    for _, _, msg in gossip:
        net.queue.append((1, 0, msg))  # a duplicated delivery
    net.deliver(kind(TxGossip))
    assert len(net.replica(0).mempool) == 1

    deadline = net.replica(0).next_deadline_ms()
    assert deadline is not None
    net.now = deadline
    proposed = net.timer(0)
    pp = sent(proposed, PrePrepare)[0]
    assert isinstance(pp, PrePrepare) and pp.block.txs == [tx]
    net.deliver()
    assert [n.chain.height for n in net.nodes] == [1, 1, 1, 1]
    assert all(len(n.replica.mempool) == 0 for n in net.nodes)

    # Again after commit: nobody pools it, nobody proposes.
    for i in range(4):
        assert net.submit(i, tx) == []
    for i in (1, 2, 3):
        net.receive(0, net.sign(TxGossip([tx], b""), i))
    assert len(net.replica(0).mempool) == 0
    net.now += 10 * net.config.view_change_timeout_ms
    for effects in net.fire_due_timers().values():
        assert sent(effects, PrePrepare) == [] and sent(effects, ViewChange) == []
    assert net.queue == []
    assert [n.chain.height for n in net.nodes] == [1, 1, 1, 1]

    tx2 = net.tx(2)
    net.order(tx2, tx)
    block = net.nodes[0].store.get_block(2)
    assert block is not None and block.txs == [tx2]
    assert net.nodes[0].store.get_tx_location(tx.tx_id(net.suite)) == (1, 0)


def test_a_committed_transaction_is_forgotten_by_the_signature_record_and_not_checked_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Goal: once a transaction commits, the record of checked signatures no longer holds it
    (that record would otherwise keep up to 4 × mempool_max entries on a busy node for
    nothing), and gossip of it arriving late — or replayed — costs no signature check.

    Method: order a transaction; every replica's record is empty. Count signature checks,
    then gossip the committed transaction (and a copy with a forged signature) to the
    primary: no check, nothing pooled. A new transaction gossiped twice is checked once."""
    net = Net()
    net.start()
    tx = net.tx(1)
    net.order(tx)
    assert [n.chain.height for n in net.nodes] == [1, 1, 1, 1]
    assert all(len(n.replica.tx_verified) == 0 for n in net.nodes)

    checks: list[Transaction] = []
    real = Transaction.signature_ok

    def counted(self: Transaction, suite: object) -> bool:
        checks.append(self)
        return real(self, suite)  # type: ignore[arg-type]

    monkeypatch.setattr(Transaction, "signature_ok", counted)
    forged = replace(tx, sig=flip(tx.sig))
    for copy in (tx, forged):
        net.receive(0, net.sign(TxGossip([copy], b""), 1))
    assert checks == [] and len(net.replica(0).mempool) == 0

    fresh = net.tx(2)
    for sender in (1, 2):
        net.receive(0, net.sign(TxGossip([fresh], b""), sender))
    assert checks == [fresh] and list(net.replica(0).mempool) == [fresh.tx_id(net.suite)]


# -- 4. view change -------------------------------------------------------------------------------


def test_view_change_when_primary_is_silent() -> None:
    """Goal: backups holding a request replace a silent primary and commit in view 1.

    Method: commit block 1, cut node 0 off, submit a request; at the request deadline each
    backup's on_timer emits Persist(view record) then Broadcast(VIEW-CHANGE(1)) carrying
    its last commit certificate (and no prepared certificate); the new primary (node 1)
    with a quorum emits Persist then Broadcast(NEW-VIEW) and proposes; 1..3 commit block 2
    in view 1.
    """
    net = Net()
    net.start()
    net.order(net.tx(1))
    net.cut.add(0)
    tx = start_with_pending_request(net, 2)
    timeout = net.config.view_change_timeout_ms
    for i in (1, 2, 3):
        assert net.replica(i).next_deadline_ms() == net.now + timeout
    net.now += timeout

    for i in (1, 2, 3):
        effects = net.timer(i)
        assert types(effects) == [Persist, Broadcast]
        persist = effects[0]
        assert isinstance(persist, Persist)
        assert decode_value(stored(persist, K_VIEW)) == {"view": 0, "vc_target": 1}
        vc = sent(effects, ViewChange)[0]
        assert isinstance(vc, ViewChange)
        assert vc.new_view == 1 and vc.prepared == [] and vc.stable_height == 0
        assert vc.last_cert == net.nodes[i].store.get_certificate(1)

    announced = [d for d in net.deliver(both(kind(ViewChange), to(1))) if d.effects]
    assert len(announced) == 1
    effects = announced[0].effects
    nv_at = next(k for k, e in enumerate(effects)
                 if isinstance(e, Broadcast) and isinstance(e.message, NewView))
    persist = effects[nv_at - 1]
    assert isinstance(persist, Persist) and K_NEW_VIEW in persist.changes
    nv = sent(effects, NewView)[0]
    assert isinstance(nv, NewView)
    assert nv.view == 1 and nv.pre_prepares == []
    assert sorted(vc.sender for vc in nv.view_changes) == sorted(net.nodes[i].pk for i in (1, 2, 3))
    fresh = sent(effects[nv_at:], PrePrepare)
    assert len(fresh) == 1
    assert fresh[0].view == 1 and fresh[0].block.txs == [tx]

    net.deliver()
    for i in (1, 2, 3):
        assert net.replica(i).view == 1 and net.replica(i).vc_target is None
        header = net.nodes[i].store.get_header(2)
        assert header is not None and header.view == 1
    assert len(net.heads([1, 2, 3])) == 1


def prepared_at_node_2_only(net: Net) -> PrePrepare:
    """Commit block 1, then get block 2 prepared at node 2 (and the primary) but committed
    nowhere: pre-prepares reach every backup, prepares only nodes 0 and 2, commits none.
    Node 0 is then cut off and every backup's request timer has fired (VIEW-CHANGE(1))."""
    net.start()
    net.order(net.tx(1))
    start_with_pending_request(net, 2)
    deadline = net.replica(0).next_deadline_ms()
    assert deadline is not None
    net.now = deadline
    pp = sent(net.timer(0), PrePrepare)[0]
    assert isinstance(pp, PrePrepare)
    net.deliver(kind(PrePrepare))
    net.take(both(kind(Prepare), to(1, 3)))
    net.deliver(kind(Prepare))
    net.take(kind(Commit))
    assert 2 in net.replica(2).prepared and not net.replica(1).prepared
    assert not net.replica(3).prepared
    net.cut.add(0)
    net.take(lambda src, dst, msg: 0 in (src, dst))
    net.now += net.config.view_change_timeout_ms
    for i in (1, 2, 3):
        vc = sent(net.timer(i), ViewChange)[0]
        assert isinstance(vc, ViewChange) and vc.new_view == 1
        if i == 2:
            assert [c.pre_prepare for c in vc.prepared] == [pp]
            assert vc.last_cert == net.nodes[2].store.get_certificate(1)
        else:
            assert vc.prepared == []
    return pp


def test_view_change_reproposes_a_prepared_block() -> None:
    """Goal: a block prepared (not committed) in view 0 at some replica is re-proposed in
    view 1 with the same digest, and committed.

    Method: block 2 is prepared only at node 2; node 0 goes silent; VIEW-CHANGEs go to the
    new primary (node 1, not prepared itself), whose NEW-VIEW must carry a view-1
    pre-prepare of exactly the prepared block; the network then commits that block.
    """
    net = Net()
    pp = prepared_at_node_2_only(net)
    digest = digest_of(net, pp.block)
    announced = [d for d in net.deliver(both(kind(ViewChange), to(1))) if d.effects]
    nv = sent(announced[-1].effects, NewView)[0]
    assert isinstance(nv, NewView) and len(nv.pre_prepares) == 1
    [again] = nv.pre_prepares
    assert again.block == pp.block
    assert digest_of(net, again.block) == digest
    assert (again.view, again.height) == (1, 2)
    assert again.sender == net.nodes[1].pk
    net.deliver()
    for i in (1, 2, 3):
        assert net.nodes[i].chain.height == 2
        assert net.nodes[i].chain.head().block_hash(net.suite) == digest
        assert net.replica(i).view == 1


def test_commit_votes_of_different_views_never_make_a_certificate() -> None:
    """Goal: the COMMITs honest replicas send for a block in different views, none of which
    committed it, cannot be put together into a certificate for it — while another block
    is committed at that height. (Before commit signatures named their view, a faulty
    validator could do exactly that and hand light clients and lagging replicas a valid-
    looking certificate for a block that was never committed.)

    Method: nodes A=0, C=1, B=2 are honest, Z=3 is faulty; the primary of view v is node
    v. View 0: A proposes d at height 2, only A is prepared (COMMIT d, view 0). View 1,
    from VIEW-CHANGEs of C, B, Z (none prepared): C proposes d', only C is prepared. View 2,
    from A, B, Z: A's certificate re-proposes d, only B is prepared (COMMIT d, view 2).
    View 3, from A, C, Z: C's view-1 certificate is the newest, d' is re-proposed and
    committed everywhere. A and B each signed a COMMIT for d, Z signs whatever helps; for
    every view, their three signatures are not a certificate for d, and d' has one.
    """
    net = Net()
    a, c, b, z = 0, 1, 2, 3
    net.start()
    net.order(net.tx(1))
    start_with_pending_request(net, 2)
    commits: list[Commit] = []

    def only_to(node: int, *types: type) -> None:
        """Deliver ``types`` to ``node`` alone, keep the COMMITs sent, lose the rest."""
        net.deliver(both(kind(*types), to(node)))
        commits.extend(m for _, _, m in net.take(kind(Commit)) if isinstance(m, Commit))
        net.take()

    def prepared_view(i: int) -> int | None:
        cert = net.replica(i).prepared.get(2)
        return cert.pre_prepare.view if cert is not None else None

    def view_change(view: int, quorum: tuple[int, ...]) -> PrePrepare:
        """Every request timer fires; the new primary hears only ``quorum``'s VIEW-CHANGEs."""
        net.now += 10 * net.config.view_change_timeout_ms
        for i in range(4):
            net.timer(i)
        primary = view % 4
        for src, dst, vc in net.take(kind(ViewChange)):
            if dst == primary and src in quorum:
                net.receive(dst, vc)
        [(_, _, nv), *_] = net.peek(kind(NewView))
        assert isinstance(nv, NewView)
        net.deliver(kind(NewView))  # re-proposals ride in it; a fresh block follows it
        fresh = [m for _, _, m in net.peek(kind(PrePrepare))]
        net.deliver(kind(PrePrepare))
        pp = (nv.pre_prepares or fresh)[0]
        assert isinstance(pp, PrePrepare) and (pp.view, pp.height) == (view, 2)
        return pp

    net.now = net.replica(a).next_deadline_ms() or net.now
    d_block = sent(net.timer(a), PrePrepare)[0].block
    d = digest_of(net, d_block)
    net.deliver(kind(PrePrepare))
    only_to(a, Prepare)
    assert [prepared_view(i) for i in range(4)] == [0, None, None, None]

    d2 = digest_of(net, view_change(1, (c, b, z)).block)
    assert d2 != d
    only_to(c, Prepare)
    assert [prepared_view(i) for i in range(4)] == [0, 1, None, None]

    assert digest_of(net, view_change(2, (a, b, z)).block) == d
    only_to(b, Prepare)
    assert [prepared_view(i) for i in range(4)] == [0, 1, 2, None]

    assert digest_of(net, view_change(3, (a, c, z)).block) == d2
    net.deliver()
    for node in net.nodes:
        assert node.chain.height == 2 and node.chain.head().block_hash(net.suite) == d2
        cert = node.store.get_certificate(2)
        assert cert is not None and cert.view == 3
        verify_certificate(net.suite, net.chain_id, node.chain.head(), cert,
                           net.genesis.validators)

    honest_for_d = {(net.index_of(m.sender), m.view) for m in commits if m.digest == d}
    assert honest_for_d == {(a, 0), (b, 2)}
    votes = {net.index_of(m.sender): m for m in commits if m.digest == d}
    for view in range(4):
        z_vote = commit_vote(net, z, view, 2, d)
        sigs = [CommitSignature(m.sender, m.sig) for m in (votes[a], votes[b], z_vote)]
        with pytest.raises(SignatureError, match="a commit signature does not verify"):
            verify_certificate(net.suite, net.chain_id, d_block.header,
                               CommitCertificate(2, view, d, sigs), net.genesis.validators)
    # The same COMMIT relabelled with another view is not a vote in that view.
    relabelled = replace(votes[a], view=2)
    dropped = net.replica(c).stats["dropped"]
    assert net.receive(c, relabelled) == [] and net.replica(c).stats["dropped"] == dropped + 1


# -- 5. invalid NEW-VIEW --------------------------------------------------------------------------


def forged_prepared_certs(net: Net, genuine: PreparedCert) -> list[tuple[str, PreparedCert]]:
    """Prepared certificates that must not count, each broken in one way."""
    pp, prepares = genuine.pre_prepare, genuine.prepares
    alt_block = net.propose(0, 0, [], net.now, on=1).block
    alt_pp = net.pre_prepare(0, 0, alt_block)
    alt_prepares = [replace(p, digest=digest_of(net, alt_block)) for p in prepares]
    from_primary = net.sign(prepares[0], 0)
    return [
        ("a prepare's signature is bad",
         PreparedCert(pp, [replace(prepares[0], sig=flip(prepares[0].sig)), *prepares[1:]])),
        ("prepares re-pointed at another block keep their old signatures",
         PreparedCert(alt_pp, alt_prepares)),
        ("a prepare from the primary", PreparedCert(pp, [prepares[0], from_primary])),  # type: ignore[list-item]
        ("one prepare twice", PreparedCert(pp, [prepares[0], prepares[0]])),
        ("too few prepares", PreparedCert(pp, prepares[:1])),
        ("pre-prepare signed by a backup", PreparedCert(net.pre_prepare(3, 0, pp.block), prepares)),
        ("pre-prepare with a bad signature", PreparedCert(replace(pp, sig=flip(pp.sig)), prepares)),
    ]


def test_invalid_new_views_and_forged_view_changes_are_ignored(
        caplog: pytest.LogCaptureFixture) -> None:
    """Goal: a NEW-VIEW whose re-proposal differs from what its VIEW-CHANGEs require, with
    fewer than a quorum of VIEW-CHANGEs, with a repeated one, from the wrong primary, or
    carrying a VIEW-CHANGE with a forged prepared certificate, is ignored; so is such a
    VIEW-CHANGE on its own.

    Method: set up a re-proposal (block prepared at node 2 only), intercept the genuine
    NEW-VIEW, and deliver variants to node 3 (no effects, still changing views); then the
    genuine one is accepted. Forged VIEW-CHANGEs, signed by node 3 itself with a prepared
    certificate broken in one way each, are dropped by node 2.
    """
    net = Net()
    pp = prepared_at_node_2_only(net)
    net.deliver(both(kind(ViewChange), to(1)))
    nv = net.take(kind(NewView))[0][2]
    assert isinstance(nv, NewView) and len(nv.pre_prepares) == 1
    net.take(kind(Prepare, Commit))
    net.deliver(kind(ViewChange))
    r3 = net.replica(3)
    assert r3.vc_target == 1 and r3.view == 0

    vcs = list(nv.view_changes)
    with_cert = next(vc for vc in vcs if vc.prepared)
    without_cert = [vc for vc in vcs if not vc.prepared]
    other_block = net.propose(1, 1, [], net.now, on=1).block
    wrong_pp = net.pre_prepare(1, 1, other_block)
    [genuine_cert] = with_cert.prepared
    node3_vc = next(vc for vc in vcs if vc.sender == net.nodes[3].pk)
    not_node3 = [vc for vc in vcs if vc is not node3_vc]
    forged_vc = net.sign(replace(node3_vc, prepared=[replace(
        genuine_cert, prepares=[replace(p, sig=flip(p.sig)) for p in genuine_cert.prepares])]), 3)
    assert isinstance(forged_vc, ViewChange)
    bad: list[tuple[NewView, str]] = [
        (replace(nv, pre_prepares=[wrong_pp]), "re-proposal differs"),
        (replace(nv, pre_prepares=[]), "leaves out a block"),
        (replace(nv, pre_prepares=[replace(nv.pre_prepares[0], height=3)]), "re-proposal differs"),
        (replace(nv, pre_prepares=[*nv.pre_prepares, wrong_pp]), "no VIEW-CHANGE prepared"),
        (replace(nv, view_changes=[with_cert, without_cert[0]]), "fewer than a quorum"),
        (replace(nv, view_changes=[with_cert, with_cert, without_cert[0]]), "repeated"),
        (replace(nv, view_changes=[*not_node3, forged_vc]), "invalid VIEW-CHANGE"),
        (replace(nv, view_changes=[*not_node3, view_change(net, 3, 2)]), "wrong"),
    ]
    for msg, reason in bad:
        signed = net.sign(msg, 1)
        assert_dropped(net, 3, signed, caplog, reason)
    assert_dropped(net, 3, net.sign(nv, 2), caplog, "not from that view's primary")
    assert r3.vc_target == 1 and r3.view == 0

    accepted = net.receive(3, nv)
    assert types(accepted)[:1] == [Persist] and r3.view == 1
    assert sent(accepted, Prepare)[0].digest == digest_of(net, pp.block)

    # The same forgeries as stand-alone VIEW-CHANGEs (for view 2, so node 2 still listens).
    for name, cert in forged_prepared_certs(net, genuine_cert):
        vc = net.sign(ViewChange(2, 0, [], net.nodes[3].store.get_certificate(1), [cert], b""), 3)
        before = len(net.replica(2).view_changes)
        assert_dropped(net, 2, vc, caplog)
        assert len(net.replica(2).view_changes) == before, name


def test_byzantine_ex_primary_cannot_fork_with_a_forged_prepared_block_body() -> None:
    """Goal: no two honest replicas append different blocks at one height, whatever one
    Byzantine replica puts into its VIEW-CHANGE (PBFT.md invariant 1).

    Method: primary 0 (Byzantine) proposes block B at height 1; B is prepared at nodes 0
    and 2 and committed at node 3 only, which is then cut off. Node 0 sends the new
    primary a VIEW-CHANGE whose prepared certificate has genuine prepares for digest(B)
    but a pre-prepare it signed itself for B's header with no transactions. The seed
    is chosen so node 0's key sorts before node 2's, placing its certificate first among
    the tied ones. Nodes 0, 1, 2 then run honestly; they must not append anything other
    than B at height 1.
    """
    for seed in range(1, 100):
        net = Net(seed=seed)
        if net.nodes[0].pk < net.nodes[2].pk:
            break
    else:
        raise AssertionError("no seed orders the keys as needed")
    net.start()
    start_with_pending_request(net, 1)
    deadline = net.replica(0).next_deadline_ms()
    assert deadline is not None
    net.now = deadline
    pp = sent(net.timer(0), PrePrepare)[0]
    assert isinstance(pp, PrePrepare)
    net.deliver(kind(PrePrepare))
    net.take(both(kind(Prepare), to(1)))
    net.deliver(kind(Prepare))
    net.take(both(kind(Commit), lambda src, dst, msg: dst != 3))
    net.deliver(kind(Commit))
    assert [n.chain.height for n in net.nodes] == [0, 0, 0, 1]
    net.take()
    net.cut.add(3)

    genuine = net.replica(0).prepared[1]
    hollow = net.pre_prepare(0, 0, Block(pp.block.header, []))
    forged_vc = view_change(net, 0, 1, prepared=PreparedCert(hollow, genuine.prepares))
    net.now += net.config.view_change_timeout_ms
    net.timer(1)
    net.timer(2)
    net.take(lambda src, dst, msg: 0 in (src, dst))  # node 0 speaks only through the forgery
    net.queue.append((0, 1, forged_vc))
    net.deliver()
    committed = {n.store.get_header(1) for n in net.nodes if n.chain.height >= 1}
    assert len({h.block_hash(net.suite) for h in committed if h is not None}) == 1


# -- 6. inflated view numbers --------------------------------------------------------------------


def test_inflated_view_numbers_need_f_plus_one_senders() -> None:
    """Goal: one replica announcing a huge view moves nobody; f+1 distinct replicas above
    our view make us join the (f+1)-th highest of their views.

    Method: node 1 sends VIEW-CHANGE(1000), then (2000): nobody reacts and all stay in view
    0. Node 3 then asks for view 7: node 2 joins exactly view 7 (the 2nd highest of
    {2000, 7}). Node 0 asks for 12: node 2 (now at 7) joins exactly 12, not 2000.
    """
    net = Net()
    net.start()
    for view in (1000, 2000):
        vc = view_change(net, 1, view)
        for i in (0, 2, 3):
            assert net.receive(i, vc) == []
            assert net.replica(i).view == 0 and net.replica(i).vc_target is None

    joined = net.receive(2, view_change(net, 3, 7))
    assert types(joined) == [Persist, Broadcast]
    vc = sent(joined, ViewChange)[0]
    assert isinstance(vc, ViewChange) and vc.new_view == 7
    assert net.replica(2).vc_target == 7

    joined = net.receive(2, view_change(net, 0, 12))
    assert [vc.new_view for vc in sent(joined, ViewChange)] == [12]
    assert net.replica(2).vc_target == 12


# -- 7. view-change timer and backoff -----------------------------------------------------------


def test_view_change_timer_starts_only_with_a_quorum() -> None:
    """Goal: the view-change timer runs only once a quorum asks for that view (PBFT.md).

    Method: node 2's request timer fires (VIEW-CHANGE(1)); with only its own, and then with
    one more VIEW-CHANGE(1), no view-change deadline is set and stepping time far ahead
    produces no VIEW-CHANGE(2); the second peer's VIEW-CHANGE(1) makes a quorum and the
    deadline becomes now + timeout.
    """
    net = Net()
    net.start()
    net.cut.add(0)
    start_with_pending_request(net, 1, at=2)
    timeout = net.config.view_change_timeout_ms
    net.now += timeout
    assert [vc.new_view for vc in sent(net.timer(2), ViewChange)] == [1]
    r2 = net.replica(2)
    assert vc_deadline(r2) is None
    net.now += 10 * timeout
    assert sent(net.timer(2), ViewChange) == []
    assert net.receive(2, view_change(net, 3, 1)) == []
    assert vc_deadline(r2) is None
    net.receive(2, view_change(net, 1, 1))
    assert vc_deadline(r2) == net.now + timeout
    assert r2.next_deadline_ms() == net.now + timeout


def test_view_change_backs_off_exponentially_up_to_the_maximum() -> None:
    """Goal: without a NEW-VIEW a replica moves to the next view after the timeout, and the
    timeout doubles up to view_change_timeout_max_ms; a NEW-VIEW resets it.

    Method: node 0 joins view 1 on two VIEW-CHANGEs (quorum with its own). Each time, one
    ms before the deadline nothing happens; at the deadline it emits Persist then
    VIEW-CHANGE(v+1); a quorum for v+1 arms the timer at now + T, 2T, 3T (cap), 3T. In view
    4 node 0 is the primary: its NEW-VIEW resets the timeout to T.
    """
    t = 1000
    net = Net(config=small_config(view_change_timeout_ms=t, view_change_timeout_max_ms=3 * t))
    net.start()
    r0 = net.replica(0)
    net.receive(0, view_change(net, 1, 1))
    net.receive(0, view_change(net, 2, 1))
    assert r0.vc_target == 1 and vc_deadline(r0) == net.now + t
    for view, timeout in ((1, t), (2, 2 * t), (3, 3 * t)):
        assert vc_deadline(r0) == net.now + timeout
        net.now += timeout - 1
        assert net.timer(0) == []
        net.now += 1
        effects = net.timer(0)
        assert types(effects) == [Persist, Broadcast]
        assert [vc.new_view for vc in sent(effects, ViewChange)] == [view + 1]
        assert r0.vc_target == view + 1 and vc_deadline(r0) is None
        net.receive(0, view_change(net, 1, view + 1))
        if view + 1 < 4:
            net.receive(0, view_change(net, 2, view + 1))
    assert r0.vc_timeout == 3 * t  # capped, not 8T
    effects = net.receive(0, view_change(net, 2, 4))
    assert [nv.view for nv in sent(effects, NewView)] == [4]
    assert r0.view == 4 and net.replica(0).vc_target is None and r0.vc_timeout == t


def test_request_timer_backs_off_while_blocks_are_slow_and_relaxes_once_they_are_quick(
        caplog: pytest.LogCaptureFixture) -> None:
    """Goal: a network whose blocks take longer than the request timeout — overloaded, not
    faulty — changes view once, not at every block: the expiry doubles the request timer,
    a block that then commits slowly keeps it doubled, and quick blocks bring it back to
    the base (PBFT.md: "timers that never back off, so views churn forever under load").

    Method: T = 1 s. A request waits 1 s with nothing delivered: the timers of nodes 0 - 2
    fire (VIEW-CHANGE(1), logged with the time waited) and node 3 joins on their word;
    view 1 is installed but its pre-prepare is held back 1.5 s. No replica asks for view 2
    (each waits 2 s now, node 3 too); the block then commits and the timer stays at 2 s.
    The next block commits at once: the timer is back at 1 s everywhere, so a faulty
    primary is still replaced after 1 s.
    """
    t = 1000
    net = Net(config=small_config(view_change_timeout_ms=t, view_change_timeout_max_ms=8 * t))
    net.start()
    net.order(net.tx(1))
    net.take(kind(PrePrepare))  # nothing is proposed in view 0 from now on
    start_with_pending_request(net, 2)
    net.take(kind(PrePrepare))
    net.now += t
    with caplog.at_level(logging.INFO, logger="govledger.consensus"):
        fired = net.fire_due_timers([0, 1, 2])
    assert sorted(i for i, e in fired.items() if sent(e, ViewChange)) == [0, 1, 2]
    assert "no block committed in 1000 ms" in caplog.text and "gets 2000 ms" in caplog.text
    assert net.replica(3).vc_target is None
    net.deliver(kind(ViewChange, NewView))
    assert [net.replica(i).view for i in range(4)] == [1, 1, 1, 1]
    assert {net.replica(i).request_timeout for i in range(4)} == {2 * t}
    held = net.take(kind(PrePrepare))
    assert len(held) == 3  # the new primary's proposal of the waiting request

    net.now += 3 * t // 2
    for effects in net.fire_due_timers().values():
        assert sent(effects, ViewChange) == []
    net.queue += held
    net.deliver()
    assert [n.chain.height for n in net.nodes] == [2, 2, 2, 2]
    assert {net.replica(i).request_timeout for i in range(4)} == {2 * t}

    net.order(net.tx(3))
    assert [n.chain.height for n in net.nodes] == [3, 3, 3, 3]
    assert {net.replica(i).request_timeout for i in range(4)} == {t}
    assert all(net.replica(i).view == 1 for i in range(4))


# -- 8. checkpoints and watermarks -----------------------------------------------------------------


def test_checkpoints_become_stable_and_garbage_collect(monkeypatch: pytest.MonkeyPatch) -> None:
    """Goal: after every second block each replica broadcasts CHECKPOINT; a quorum makes it
    stable, and checkpoints at or below it are discarded unread (no signature check).

    Method: order blocks 1-2 with CHECKPOINTs held back; every Append of block 2 is followed
    by Broadcast(Checkpoint(2)). Node 1 gets the others' one by one: stable only at the
    quorum (own + 2). Then blocks 3-4: stable 4 everywhere, proof of a quorum of distinct
    signers, and a late CHECKPOINT(2) is dropped and not stored.
    """
    net = Net()
    net.start()
    net.order(net.tx(1))
    assert not any(sent(n.log, Checkpoint) for n in net.nodes)
    for i in range(4):
        net.nodes[i].log.clear()
    net.submit(1, net.tx(2))
    net.deliver(kind(TxGossip))
    deadline = net.replica(0).next_deadline_ms()
    assert deadline is not None
    net.now = deadline
    net.timer(0)
    net.deliver(lambda src, dst, msg: not isinstance(msg, Checkpoint))
    for node in net.nodes:
        at = next(k for k, e in enumerate(node.log) if isinstance(e, Append))
        after = node.log[at + 1]
        assert isinstance(after, Broadcast) and isinstance(after.message, Checkpoint)
        cp = after.message
        assert cp.height == 2 and cp.digest == node.chain.head().block_hash(net.suite)
        assert cp.state_root == node.chain.head().state_root
    assert all(n.replica.stable == 0 for n in net.nodes)

    to_1 = net.take(both(kind(Checkpoint), to(1)))
    assert len(to_1) == 3
    net.receive(1, to_1[0][2])
    assert net.replica(1).stable == 0
    net.receive(1, to_1[1][2])
    assert net.replica(1).stable == 2
    assert 2 not in net.replica(1).checkpoints
    net.deliver()
    assert all(n.replica.stable == 2 for n in net.nodes)

    net.order(net.tx(3))
    net.order(net.tx(4))
    for node in net.nodes:
        r = node.replica
        assert r.stable == 4 and r.executed == 4
        assert all(h > 4 for h in r.checkpoints) and all(h > 4 for h in r.slots)
        assert {cp.height for cp in r.stable_proof} == {4}
        assert len({cp.sender for cp in r.stable_proof}) >= net.genesis.validators.quorum
    late = to_1[2][2]
    checked: list[Message] = []
    real_verify = net.replica(1).verify

    def verify(msg: Message) -> bool:
        checked.append(msg)
        return real_verify(msg)

    monkeypatch.setattr(net.replica(1), "verify", verify)
    before = net.replica(1).stats["dropped"]
    assert net.receive(1, late) == []
    assert net.replica(1).stats["dropped"] == before + 1
    assert 2 not in net.replica(1).checkpoints
    assert checked == []


def test_votes_that_can_change_nothing_are_dropped_unread(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """Goal: a PREPARE for a height whose COMMIT this replica has sent, and a PREPARE or
    COMMIT for a height already executed, are dropped before their signature check — they
    cannot change anything, and with n = 4 one PREPARE and one COMMIT of every block arrive
    that late — while every vote that can still count is checked.

    Method: order block 1 with every message delivered in order, recording each replica's
    signature checks: exactly a quorum's worth of votes was checked (the primary: 2 of the
    3 PREPAREs; a backup: 1 of the other 2, its own making the quorum; everyone: 2 of the 3
    COMMITs) and the block is committed everywhere. Then votes for height 1 with forged
    signatures are dropped unchecked, and one for height 2 is checked and refused.
    """
    net = Net()
    net.start()
    checked: dict[int, list[Message]] = {i: [] for i in range(4)}
    for i in range(4):
        real_verify = net.replica(i).verify

        def verify(msg: Message, i: int = i, real: object = real_verify) -> bool:
            checked[i].append(msg)
            return real(msg)  # type: ignore[operator, no-any-return]

        monkeypatch.setattr(net.replica(i), "verify", verify)
    net.order(net.tx(1))
    assert all(n.replica.executed == 1 for n in net.nodes)
    for i in range(4):
        prepares = [m for m in checked[i] if isinstance(m, Prepare)]
        commits = [m for m in checked[i] if isinstance(m, Commit)]
        assert len(prepares) == (2 if i == 0 else 1), (i, prepares)
        assert len(commits) == 2, (i, commits)
    digest = net.nodes[1].chain.head().block_hash(net.suite)
    before = {i: len(checked[i]) for i in range(4)}
    late_prepare = replace(net.sign(Prepare(0, 1, digest, b""), 2), sig=b"forged")
    late_commit = replace(net.sign(Commit(0, 1, digest, b""), 2), sig=b"forged")
    assert net.receive(1, late_prepare) == [] and net.receive(1, late_commit) == []
    assert len(checked[1]) == before[1]
    ahead = replace(net.sign(Prepare(0, 2, digest, b""), 2), sig=b"forged")
    dropped = net.replica(1).stats["dropped"]
    assert net.receive(1, ahead) == []
    assert checked[1][-1] is ahead and net.replica(1).stats["dropped"] == dropped + 1
    assert 2 not in net.replica(1).slots


def test_watermarks_exclude_h_and_include_h_plus_window() -> None:
    """Goal: with stable checkpoint h and window L, heights h < n <= h + L are inside, h and
    h + L + 1 are not (off-by-one at both edges).

    Method: L = 4, order blocks 1-4 so h = 4. Check in_watermarks at 4, 5, 8, 9; a
    pre-prepare at h and at H + 1 is dropped with no effects and leaves no slot; one at H is
    held (waiting for its parent); one at h + 1 is accepted and voted for.
    """
    net = Net(config=small_config(watermark_window=4))
    net.start()
    for nonce in range(1, 5):
        net.order(net.tx(nonce))
    r2 = net.replica(2)
    assert r2.stable == 4 and r2.executed == 4
    assert [r2.in_watermarks(h) for h in (4, 5, 8, 9)] == [False, True, True, False]

    block = net.propose(0, 0, [net.tx(9)], net.now + 1).block
    for height in (4, 9):
        before = r2.stats["dropped"]
        assert net.receive(2, net.pre_prepare(0, 0, block, height=height)) == []
        assert r2.stats["dropped"] == before + 1
        assert height not in r2.slots
    far = net.pre_prepare(0, 0, block, height=8)
    before = r2.stats["dropped"]
    net.receive(2, far)
    assert r2.stats["dropped"] == before
    assert r2.slots[8].waiting == far

    accepted = net.receive(3, net.pre_prepare(0, 0, block))
    assert block.header.height == 5
    assert types(accepted) == [Persist, Broadcast]
    assert sent(accepted, Prepare)[0].height == 5


def test_one_replica_cannot_evict_genuine_checkpoints() -> None:
    """Goal: a single (Byzantine) validator cannot stop checkpoints becoming stable.

    Method: node 3 sends nodes 0-2 CHECKPOINTs for eight distinct far-future heights (each
    message validly signed, one sender: never a quorum). Then blocks 1-2 are ordered
    normally; nodes 0-2 must reach stable checkpoint 2. (Without stability the low
    watermark never moves, and after the window the primary can no longer propose.)
    """
    net = Net()
    net.start()
    for height in range(1000, 1016, 2):
        junk = net.sign(Checkpoint(height, bytes(32), bytes(32), b""), 3)
        for i in (0, 1, 2):
            net.receive(i, junk)
    net.order(net.tx(1))
    net.order(net.tx(2))
    assert [net.replica(i).stable for i in (0, 1, 2)] == [2, 2, 2]


# -- 9. persistence across restart -----------------------------------------------------------------


def test_restarted_backup_never_votes_for_a_different_digest() -> None:
    """Goal: after a restart a backup keeps its PREPARE vote for (v, n, d).

    Method: node 2 accepts the primary's pre-prepare for d and votes; everything else is
    lost; node 2 restarts (new Replica over the same store). A validly signed pre-prepare
    for another digest at the same (v, n) is refused; d itself is accepted again.
    """
    net = Net()
    net.start()
    tx = start_with_pending_request(net, 1)
    good = net.propose(0, 0, [tx], net.now).block
    other = net.propose(0, 0, [], net.now).block
    assert types(net.receive(2, net.pre_prepare(0, 0, good))) == [Persist, Broadcast]
    net.take()
    restarted = net.restart(2)
    assert [type(e.message) for e in restarted if isinstance(e, (Send, Broadcast))] == [Status]
    assert net.replica(2).votes[1] == (0, digest_of(net, good), "prepare")
    assert net.receive(2, net.pre_prepare(0, 0, other)) == []
    again = net.receive(2, net.pre_prepare(0, 0, good))
    assert types(again) == [Persist, Broadcast]
    assert sent(again, Prepare)[0].digest == digest_of(net, good)


def test_restarted_prepared_replica_keeps_its_prepared_certificate() -> None:
    """Goal: a replica prepared before a crash still carries the prepared certificate in its
    VIEW-CHANGE after restart (the classic safety bug if forgotten).

    Method: block 2 prepared at node 2 only, commits dropped; node 2 restarts before any
    timer; two peers' VIEW-CHANGE(1) make it join view 1; its VIEW-CHANGE carries the
    prepared certificate for the same pre-prepare and its last commit certificate.
    """
    net = Net()
    net.start()
    net.order(net.tx(1))
    start_with_pending_request(net, 2)
    deadline = net.replica(0).next_deadline_ms()
    assert deadline is not None
    net.now = deadline
    pp = sent(net.timer(0), PrePrepare)[0]
    net.deliver(kind(PrePrepare))
    net.take(both(kind(Prepare), to(1, 3)))
    net.deliver(kind(Prepare))
    net.take()
    assert 2 in net.replica(2).prepared

    net.restart(2)
    net.take()
    net.receive(2, view_change(net, 1, 1, last_height=1))
    joined = net.receive(2, view_change(net, 3, 1, last_height=1))
    vc = sent(joined, ViewChange)[0]
    assert isinstance(vc, ViewChange) and vc.new_view == 1
    [cert] = vc.prepared
    assert cert.pre_prepare == pp
    assert len(cert.prepares) >= net.genesis.validators.quorum - 1
    assert vc.last_cert == net.nodes[2].store.get_certificate(1)


def test_restarted_primary_reoffers_the_same_pre_prepare() -> None:
    """Goal: a primary that crashes after proposing re-offers exactly the same pre-prepare,
    never another block.

    Method: the primary proposes block 1; every message is lost; it restarts; its start
    effects broadcast a pre-prepare equal to the original (same block and signature). With
    the transaction gossiped again and time run forward it proposes nothing else; the
    network then commits the original block (and the other transaction in block 2).
    """
    net = Net()
    net.start()
    tx = start_with_pending_request(net, 1)
    deadline = net.replica(0).next_deadline_ms()
    assert deadline is not None
    net.now = deadline
    pp = sent(net.timer(0), PrePrepare)[0]
    net.take()
    net.now += 5
    restarted = net.restart(0)
    assert sent(restarted, PrePrepare) == [pp]
    net.take(kind(PrePrepare))
    net.receive(0, net.sign(TxGossip([tx, net.tx(2)], b""), 1))
    net.now += 10 * net.config.batch_timeout_ms
    assert sent(net.timer(0), PrePrepare) == []
    net.queue.extend((0, i, pp) for i in (1, 2, 3))
    net.deliver()
    assert isinstance(pp, PrePrepare)
    for node in net.nodes:
        header = node.store.get_header(1)
        assert header is not None and header.block_hash(net.suite) == digest_of(net, pp.block)
        block = node.store.get_block(2)  # the other transaction follows in the next block
        assert block is not None and block.txs == [net.tx(2)]


def test_replica_restarted_during_a_view_change_resumes_it() -> None:
    """Goal: the view-change target is persisted before the VIEW-CHANGE leaves; a restart
    re-broadcasts it rather than falling back to the old view.

    Method: node 2's request timer fires (VIEW-CHANGE(1)); it restarts; its start effects
    broadcast a VIEW-CHANGE for view 1 again and it still refuses view-0 pre-prepares.
    """
    net = Net()
    net.start()
    tx = start_with_pending_request(net, 1)
    net.now += net.config.view_change_timeout_ms
    net.timer(2)
    net.take()
    restarted = net.restart(2)
    assert [vc.new_view for vc in sent(restarted, ViewChange)] == [1]
    assert net.replica(2).vc_target == 1
    block = net.propose(0, 0, [tx], net.now).block
    assert net.receive(2, net.pre_prepare(0, 0, block)) == []


# -- 10. state transfer ----------------------------------------------------------------------------


def lagging_node_3(suite: str = "sim") -> Net:
    """Nodes 0-2 commit blocks 1-3 while every message to and from node 3 is lost."""
    net = Net(suite)
    net.start()
    net.cut.add(3)
    for nonce in (1, 2, 3):
        net.order(net.tx(nonce))
    net.cut.clear()
    assert [n.chain.height for n in net.nodes] == [3, 3, 3, 0]
    return net


def status(net: Net, signer: int, height: int) -> Status:
    st = net.sign(Status(height, 0, 0, b""), signer)
    assert isinstance(st, Status)
    return st


@pytest.mark.parametrize("suite", ["sim", "intl"])
def test_state_transfer_from_f_plus_one_statuses(suite: str) -> None:
    """Goal: a replica that missed blocks learns it is behind from f+1 statuses, fetches the
    blocks, refuses a forged certificate or a tampered block, and appends the genuine ones.

    Method: node 3 missed blocks 1-3. One Status(3) alone: no fetch; a second: FetchBlocks
    (1..3) to a peer, whose Blocks reply is intercepted. Versions with one commit signature
    altered, with a header field altered, and with a transaction swapped (each re-signed by
    the peer) append nothing, ask for nothing and leave the fetch timer alone; the genuine
    reply appends blocks 1-3 with their certificates.
    """
    net = lagging_node_3(suite)
    assert net.receive(3, status(net, 0, 3)) == []
    effects = net.receive(3, status(net, 1, 3))
    fetch = sent(effects, FetchBlocks)
    assert len(fetch) == 1 and isinstance(fetch[0], FetchBlocks)
    assert (fetch[0].from_height, fetch[0].to_height) == (1, 3)
    (_, peer, _), = net.peek(kind(FetchBlocks))
    assert peer in (0, 1)
    net.deliver(kind(FetchBlocks))
    (_, _, reply), = net.take(kind(Blocks))
    assert isinstance(reply, Blocks)
    assert [cb.block.header.height for cb in reply.blocks] == [1, 2, 3]

    first = reply.blocks[0]
    sigs = list(first.certificate.signatures)
    sigs[0] = CommitSignature(sigs[0].validator, flip(sigs[0].sig))
    forged_cert = replace(first.certificate, signatures=sigs)
    with pytest.raises(SignatureError):
        verify_certificate(net.suite, net.chain_id, first.block.header, forged_cert,
                           net.genesis.validators)
    tampered_header = replace(first.block.header, time=first.block.header.time + 1)
    swapped_tx = Block(first.block.header, [net.tx(99)])
    for bad in (CertifiedBlock(first.block, forged_cert),
                CertifiedBlock(Block(tampered_header, first.block.txs), first.certificate),
                CertifiedBlock(swapped_tx, first.certificate)):
        forged = net.sign(Blocks([bad, *reply.blocks[1:]], b""), peer)
        deadline = net.replica(3).fetch_deadline
        effects = net.receive(3, forged)
        assert not any(isinstance(e, Append) for e in effects)
        assert net.nodes[3].chain.height == 0
        # Unusable blocks neither earn their sender more requests nor delay our timeout.
        assert sent(effects, FetchBlocks) == [] and net.replica(3).fetch_deadline == deadline
    net.take()

    effects = net.receive(3, reply)
    appends = [e for e in effects if isinstance(e, Append)]
    assert [a.pending.header.height for a in appends] == [1, 2, 3]
    assert net.nodes[3].chain.height == 3
    assert len(net.heads()) == 1
    for h in (1, 2, 3):
        assert net.nodes[3].store.get_certificate(h) == net.nodes[0].store.get_certificate(h)


def test_state_transfer_keeps_two_ranges_in_flight() -> None:
    """Goal: state transfer is pipelined — two ranges are asked for at once, and each step
    that applies a range first asks for the one after the next, so the peer answers (and
    the driver checks the answer's signatures) while this range is applied and written.

    Method: node 3 missed blocks 1-3; its fetch size is cut to one block. Catching up asks
    for 1 and 2; a forged answer for 1 changes nothing (no request, same fetch deadline);
    the real answer for 1 yields FetchBlocks(3..3) ahead of the append of block 1; the
    answer for 2 asks nothing more; the answer for 3 completes the chain.
    """
    net = lagging_node_3()
    net.replica(3).config = replace(net.replica(3).config, fetch_blocks_max=1)
    net.receive(3, status(net, 0, 3))
    fetch = sent(net.receive(3, status(net, 1, 3)), FetchBlocks)
    assert [(f.from_height, f.to_height) for f in fetch] == [(1, 1), (2, 2)]
    net.deliver(kind(FetchBlocks))
    replies = sorted((m for _, _, m in net.take(kind(Blocks))),
                     key=lambda m: m.blocks[0].block.header.height)  # type: ignore[union-attr]
    assert len(replies) == 2
    # A forged copy of the first answer (a commit signature flipped): nothing applied,
    # nothing asked of its sender, and the fetch timer left to run out.
    first = replies[0].blocks[0]  # type: ignore[union-attr]
    sigs = list(first.certificate.signatures)
    sigs[0] = CommitSignature(sigs[0].validator, flip(sigs[0].sig))
    forged = Blocks([CertifiedBlock(first.block, replace(first.certificate, signatures=sigs))],
                    replies[0].sender, b"")
    deadline = net.replica(3).fetch_deadline
    effects = net.receive(3, net.sign(forged, 2))
    assert effects == [] and net.replica(3).fetch_deadline == deadline
    effects = net.receive(3, replies[0])
    kinds = [type(e.message).__name__ if isinstance(e, Send) else type(e).__name__
             for e in effects]
    assert kinds[:2] == ["FetchBlocks", "Append"]
    assert [(f.from_height, f.to_height) for f in sent(effects, FetchBlocks)] == [(3, 3)]
    effects = net.receive(3, replies[1])
    assert sent(effects, FetchBlocks) == []
    assert [e.pending.header.height for e in effects if isinstance(e, Append)] == [2]
    net.deliver()
    assert net.nodes[3].chain.height == 3


def test_short_answer_to_a_fetch_leaves_no_gap() -> None:
    """Goal: a peer may answer a range only in part (its byte limit); the next request must
    start right after the last block received, never after the range asked for.

    Method: node 3 asks for 1..3; the peer's answer is cut to block 1 (re-signed by it).
    Applying it asks for 2..3 at once.
    """
    net = lagging_node_3()
    net.receive(3, status(net, 0, 3))
    fetch = sent(net.receive(3, status(net, 1, 3)), FetchBlocks)
    assert [(f.from_height, f.to_height) for f in fetch] == [(1, 3)]
    (_, peer, _), = net.peek(kind(FetchBlocks))
    net.deliver(kind(FetchBlocks))
    (_, _, reply), = net.take(kind(Blocks))
    assert isinstance(reply, Blocks)
    short = net.sign(Blocks(reply.blocks[:1], b""), peer)
    effects = net.receive(3, short)
    assert [(f.from_height, f.to_height) for f in sent(effects, FetchBlocks)] == [(2, 3)]
    assert net.nodes[3].chain.height == 1
    net.deliver()
    assert net.nodes[3].chain.height == 3


def test_blocks_answer_signature_binds_the_blocks_it_carries(
        caplog: pytest.LogCaptureFixture) -> None:
    """Goal: a BLOCKS answer's signature covers which blocks it carries (it signs their
    headers, not their encodings), so nobody can pass other blocks off under a peer's name
    — nor the same blocks with the answer's certificates swapped for others.

    Method: node 3 asks for 1..3; the answer keeps its signature but carries (i) only its
    first block, (ii) its blocks with block 1's header changed: both are dropped as badly
    signed and nothing is applied. Then the genuine answer applies all three.
    """
    net = lagging_node_3()
    net.receive(3, status(net, 0, 3))
    net.receive(3, status(net, 1, 3))
    net.deliver(kind(FetchBlocks))
    (_, _, reply), = net.take(kind(Blocks))
    assert isinstance(reply, Blocks)
    first = reply.blocks[0]
    moved = replace(first.block.header, time=first.block.header.time + 1)
    for blocks in (reply.blocks[:1],
                   [CertifiedBlock(Block(moved, first.block.txs), first.certificate),
                    *reply.blocks[1:]]):
        assert_dropped(net, 3, replace(reply, blocks=blocks), caplog, "bad signature")
    assert net.nodes[3].chain.height == 0
    net.receive(3, reply)
    assert net.nodes[3].chain.height == 3


def test_state_transfer_does_not_check_certified_transactions_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Goal: a fetched block whose commit certificate verifies is executed without checking
    its transactions' signatures again — the certificate's signatures are then the whole
    signature cost of catching up.

    Method: node 3, which missed blocks 1-3, catches up with its transaction-signature
    check replaced by one that records its calls: none is made, and all three blocks are
    appended.
    """
    net = lagging_node_3()
    checked: list[Transaction] = []

    def record(tx: Transaction) -> bool:
        checked.append(tx)
        return True

    monkeypatch.setattr(net.replica(3), "tx_signature_ok", record)
    net.receive(3, status(net, 0, 3))
    net.receive(3, status(net, 1, 3))
    net.deliver()
    assert net.nodes[3].chain.height == 3
    assert checked == []


def test_state_transfer_of_a_certified_block_holding_a_bad_signature() -> None:
    """Goal: should a certified block hold a transaction whose signature does not verify
    (its validators executed it as bad_signature), a replica catching up still executes it
    as they did: the execution without signature checks gives other roots, and the block is
    executed again with every signature checked.

    Method: nodes 0-2 hold block 4 with a forged copy of a transaction (result
    bad_signature) and a commit certificate from all three; node 3, at genesis, is handed
    blocks 1-4 in one answer and appends all four.
    """
    net = lagging_node_3()
    tx = net.tx(9)
    forged = replace(tx, sig=flip(tx.sig))
    chain0 = net.nodes[0].chain
    pending = chain0.propose([forged], chain0.head().time + 1, 0, net.nodes[0].pk)
    assert [r.code for r in pending.execution.results] == ["bad_signature"]
    block = pending.block
    digest = block.header.block_hash(net.suite)
    vote = commit_message(net.chain_id, 0, 4, digest)
    cert = CommitCertificate(4, 0, digest, [CommitSignature(net.nodes[i].pk,
                                                         net.keys[i].sign(COMMIT_PURPOSE, vote))
                                         for i in range(3)])
    verify_certificate(net.suite, net.chain_id, block.header, cert, net.genesis.validators)
    store0 = net.nodes[0].store
    earlier = [CertifiedBlock(b, c) for h in (1, 2, 3)
               if (b := store0.get_block(h)) is not None
               and (c := store0.get_certificate(h)) is not None]
    answer = net.sign(Blocks([*earlier, CertifiedBlock(block, cert)], b""), 0)
    effects = net.receive(3, answer)
    assert [e.pending.header.height for e in effects if isinstance(e, Append)] == [1, 2, 3, 4]
    assert net.nodes[3].chain.head() == block.header


def test_a_replica_catching_up_signs_only_checkpoints_the_others_can_use() -> None:
    """Goal: a replica catching up from far behind does not sign the checkpoints of heights
    a whole watermark window below the height f+1 others hold (they all have a later stable
    checkpoint and would discard them), only those near the head.

    Method: node 3 misses blocks 1-12 (checkpoint interval 2, window 8) and catches up from
    f+1 statuses: it broadcasts CHECKPOINTs for 6, 8, 10 and 12, not for 2 and 4; the
    others' stable checkpoint is 12 (or 10) already.
    """
    net = Net()
    net.start()
    net.cut.add(3)
    for nonce in range(1, 13):
        net.order(net.tx(nonce))
    net.cut.clear()
    assert [n.chain.height for n in net.nodes] == [12, 12, 12, 0]
    assert all(net.replica(i).stable >= 4 for i in range(3))
    net.nodes[3].log.clear()
    net.receive(3, status(net, 0, 12))
    net.receive(3, status(net, 1, 12))
    net.deliver()
    assert net.nodes[3].chain.height == 12
    assert [cp.height for cp in sent(net.nodes[3].log, Checkpoint)] == [6, 8, 10, 12]


def test_state_transfer_from_f_plus_one_checkpoints() -> None:
    """Goal: f+1 CHECKPOINTs above our head also tell a replica it is behind.

    Method: replay to node 3 the CHECKPOINT(2) messages it missed: after one, no fetch;
    after a second, FetchBlocks up to 2; the reply appends blocks 1-2.
    """
    net = lagging_node_3()
    missed = [m for src, dst, m in net.dropped if dst == 3 and isinstance(m, Checkpoint)]
    assert len(missed) >= 2 and all(m.height == 2 for m in missed)
    assert sent(net.receive(3, missed[0]), FetchBlocks) == []
    fetch = sent(net.receive(3, missed[1]), FetchBlocks)
    assert [(f.from_height, f.to_height) for f in fetch] == [(1, 2)]
    net.deliver()
    assert net.nodes[3].chain.height >= 2
    assert net.nodes[3].store.get_header(2) == net.nodes[0].store.get_header(2)


def test_one_inflated_status_does_not_set_the_fetch_target() -> None:
    """Goal: a single peer's inflated Status height is never trusted; only what f+1 report.

    Method: node 3 (height 0) hears Status(1000) from node 0: nothing happens. Status(3)
    from node 1 follows: the fetch asks for blocks 1..3 (the (f+1)-th highest claim), not
    up to 1000 or the fetch maximum.
    """
    net = lagging_node_3()
    assert net.receive(3, status(net, 0, 1000)) == []
    assert net.replica(3).catchup_target == 0
    fetch = sent(net.receive(3, status(net, 1, 3)), FetchBlocks)
    assert [(f.from_height, f.to_height) for f in fetch] == [(1, 3)]
    assert net.replica(3).catchup_target == 3


def test_checkpoints_from_non_validators_do_not_make_a_replica_chase() -> None:
    """Goal: only validators' claims count when deciding we are behind.

    Method: two fresh non-validator keys sign CHECKPOINT(1000) and send it to the primary
    (checkpoints are an 'open' kind, accepted from anyone). The primary must not set a
    catch-up target, and must still propose the next request.
    """
    net = Net()
    net.start()
    for _ in range(2):
        stranger = net.suite.generate_key()
        cp = sign(Checkpoint(1000, bytes(32), bytes(32), b""), stranger)
        net.receive(0, cp)
    net.take()
    assert net.replica(0).catchup_target == 0
    start_with_pending_request(net, 1)
    net.now += net.config.batch_timeout_ms
    assert len(sent(net.timer(0), PrePrepare)) == 1


def test_far_pre_prepare_from_one_primary_does_not_stall_later_views() -> None:
    """Goal: one Byzantine primary cannot stop the next primaries from proposing.

    Method: primary 0 sends every backup a validly signed pre-prepare for height 3 (inside
    the watermarks, nothing committed yet), then goes silent. The backups change to view 1;
    node 1, the new primary, holds a request and must propose it after NEW-VIEW.
    """
    net = Net()
    net.start()
    far = net.pre_prepare(0, 0, net.propose(0, 0, [], net.now).block, height=3)
    for i in (1, 2, 3):
        net.receive(i, far)
    net.take()
    net.cut.add(0)
    tx = start_with_pending_request(net, 1)
    net.now += net.config.view_change_timeout_ms
    net.fire_due_timers()
    net.deliver()
    assert net.replica(1).view == 1
    net.now += net.config.batch_timeout_ms
    net.fire_due_timers()
    net.deliver()
    block = net.nodes[1].store.get_block(1)
    assert block is not None and block.txs == [tx]


# -- 11. messages that must be dropped -------------------------------------------------------------


def some_message_of_each_kind(net: Net, signer: int) -> list[Message]:
    """One plausible message of every kind, as node ``signer`` would send it at height 1."""
    block = net.propose(0, 0, [net.tx(7)], net.now + 1).block
    d = digest_of(net, block)
    head = net.nodes[0].chain.head()
    unsigned: list[Message] = [
        PrePrepare(0, 2, block, b""),
        Prepare(0, 2, d, b""),
        Commit(0, 2, d, b""),
        Checkpoint(2, head.state_root, d, b""),
        ViewChange(1, 0, [], net.nodes[0].store.get_certificate(1), [], b""),
        NewView(1, [], [], b""),
        Status(5, 0, 0, b""),
        FetchBlocks(1, 1, b""),
        Blocks([], b""),
        TxGossip([net.tx(8)], b""),
    ]
    out = []
    for m in unsigned:
        if isinstance(m, Commit):
            m = commit_vote(net, signer, 0, 2, d)
        out.append(net.sign(m, signer))
    return out


def test_bad_signatures_strangers_and_echoes_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    """Goal: messages with a bad signature (every signed kind), from a non-validator (except
    the open kinds Status, FetchBlocks, Blocks, Checkpoint), or from ourselves, are dropped
    with no effects.

    Method: at height 1, node 2 receives one message of every kind (i) from node 0 with the
    signature corrupted, (ii) signed by a non-validator key, (iii) signed with its own key.
    Each closed kind is dropped with the reason logged; the open kinds from a stranger are
    served (a FetchBlocks is answered). Finally a genuine pre-prepare is still accepted.
    """
    net = Net()
    net.start()
    net.order(net.tx(1))
    for msg in some_message_of_each_kind(net, 0):
        if isinstance(msg, TxGossip):
            continue  # unsigned by design: each relayed transaction carries its own signature
        assert_dropped(net, 2, replace(msg, sig=flip(msg.sig)), caplog, "bad signature")

    stranger_key = net.suite.generate_key()
    net.keys.append(stranger_key)  # lets net.sign use it; it is in no validator set
    stranger = len(net.keys) - 1
    open_kinds = (Status, FetchBlocks, Blocks, Checkpoint)
    for msg in some_message_of_each_kind(net, stranger):
        if isinstance(msg, open_kinds):
            continue
        assert_dropped(net, 2, msg, caplog, "not a validator")
    fetch = net.sign(FetchBlocks(1, 1, b""), stranger)
    answer = net.receive(2, fetch)
    assert [type(e) for e in answer] == [Send] and isinstance(answer[0], Send)
    assert answer[0].to == stranger_key.public_key().raw and isinstance(answer[0].message, Blocks)

    for msg in some_message_of_each_kind(net, 2):
        assert_dropped(net, 2, msg, caplog, "from ourselves")

    r2: Replica = net.replica(2)
    assert r2.view == 0 and r2.vc_target is None and r2.executed == 1 and not r2.view_changes
    block = net.propose(0, 0, [net.tx(7)], net.now + 1).block
    assert types(net.receive(2, net.pre_prepare(0, 0, block))) == [Persist, Broadcast]
