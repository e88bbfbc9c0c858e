"""Restarts the protocol must survive: the whole network at once, a primary right after its
NEW-VIEW, a replica whose NEW-VIEW settled heights it has not fetched yet — and the view
changes around them: no vote in an older view once a replica has asked for a newer one.

Each of these was a stall or a fork the simulator found once it restarted every node at the
end of its fault phase (``consensus.sim``, ``restart_all``); each test drives the real
:class:`~consensus.replica.Replica` through the harness of ``test_replica.py``.
"""

from __future__ import annotations

from consensus.messages import (
    Blocks,
    Checkpoint,
    Commit,
    FetchBlocks,
    NewView,
    Prepare,
    PrePrepare,
    Status,
    TxGossip,
    ViewChange,
)
from consensus.replica import K_STABLE
from tests.unit.replica_harness import Net, both, kind, small_config, to
from tests.unit.test_replica import (
    digest_of,
    prepared_at_node_2_only,
    sent,
    start_with_pending_request,
    status,
    view_change,
)


def grown_net(blocks: int) -> Net:
    """A network that committed ``blocks`` one-transaction blocks — past its first watermark
    window (checkpoint interval 2, window 8 in the harness's configuration)."""
    net = Net()
    net.start()
    for nonce in range(1, blocks + 1):
        net.order(net.tx(nonce))
    assert [n.chain.height for n in net.nodes] == [blocks] * 4
    return net


def restart_all(net: Net) -> None:
    for i in range(len(net.nodes)):
        net.restart(i)


def test_whole_network_restart_past_the_first_window_keeps_committing() -> None:
    """Goal: after every replica stops and starts again, the network commits the next
    transaction — once the chain has outgrown the first watermark window.

    Method: 10 blocks committed (stable checkpoint 10, window 8); all four replicas restart
    from their stores; each knows stable checkpoint 10 again (with its proof); a new
    transaction commits at height 11 everywhere. (Before the stable checkpoint was kept,
    every replica restarted with high watermark 8: nobody could propose or accept height
    11, and no checkpoint could form to move it.)
    """
    net = grown_net(10)
    proofs = [net.replica(i).stable_proof for i in range(4)]
    assert all(net.replica(i).stable == 10 for i in range(4))
    restart_all(net)
    net.deliver()
    for i in range(4):
        assert net.replica(i).stable == 10
        assert net.replica(i).stable_proof == proofs[i]
    net.order(net.tx(11))
    assert [n.chain.height for n in net.nodes] == [11] * 4
    assert len(net.heads()) == 1


def test_network_restarted_from_stores_without_a_kept_checkpoint_recovers() -> None:
    """Goal: stores written before the stable checkpoint was kept (no ``stable`` key) do not
    stop a restarted network either, even when the CHECKPOINTs sent at start are lost.

    Method: 10 blocks committed; the ``stable`` key is deleted from every store; all four
    restart and their start messages other than statuses are lost. Each replica signs its
    checkpoints of the last window again and relays them to peers whose statuses show they
    executed that far: stable checkpoint 10 forms everywhere and height 11 commits.
    """
    net = grown_net(10)
    for node in net.nodes:
        node.store.put_consensus({K_STABLE: None})
    restart_all(net)
    assert all(net.replica(i).stable == 0 for i in range(4))
    lost = net.take(kind(Checkpoint))
    assert {msg.height for _, _, msg in lost if isinstance(msg, Checkpoint)} == {4, 6, 8, 10}
    net.deliver(kind(Status))
    net.deliver()
    assert all(net.replica(i).stable == 10 for i in range(4))
    net.order(net.tx(11))
    assert [n.chain.height for n in net.nodes] == [11] * 4


def test_backup_in_a_view_change_does_not_vote_on_a_held_pre_prepare() -> None:
    """Goal: a replica that has sent VIEW-CHANGE(v + 1) votes nothing more in view v — not
    even for a pre-prepare it held until its parent was executed.

    Method: node 3 misses block 1; the primary's pre-prepare for block 2 reaches it and is
    held (its parent is not executed). Node 3's request timer fires: VIEW-CHANGE(1), not
    prepared at anything. State transfer then executes block 1 at node 3: it sends no
    PREPARE or COMMIT for block 2, and records no vote for it. (It once did, after telling
    the new primary it was prepared at nothing — and view 1 re-proposed another block 2.)
    """
    net = Net()
    net.start()
    net.cut.add(3)
    net.order(net.tx(1))
    net.cut.clear()
    start_with_pending_request(net, 2)
    deadline = net.replica(0).next_deadline_ms()
    assert deadline is not None
    net.now = deadline
    pp2 = sent(net.timer(0), PrePrepare)[0]
    assert isinstance(pp2, PrePrepare) and pp2.height == 2
    net.take()
    assert net.receive(3, pp2) == []  # held for its parent
    net.now += net.config.view_change_timeout_ms
    vc = sent(net.timer(3), ViewChange)[0]
    assert isinstance(vc, ViewChange) and vc.new_view == 1 and vc.prepared == []
    net.take()
    net.receive(3, status(net, 0, 1))
    fetch = sent(net.receive(3, status(net, 1, 1)), FetchBlocks)
    assert fetch
    net.deliver(kind(FetchBlocks))
    executed = net.deliver(both(kind(Blocks), to(3)))
    assert net.nodes[3].chain.height == 1
    effects = [e for d in executed for e in d.effects]
    assert sent(effects, Prepare) == [] and sent(effects, Commit) == []
    assert 2 not in net.replica(3).votes


def test_primary_restarted_after_its_new_view_reoffers_the_reproposal() -> None:
    """Goal: a primary that crashes right after its NEW-VIEW re-offers the blocks it
    re-proposed there, and proposes no other block at their heights.

    Method: block 2 is prepared at node 2 only; the view changes to 1, whose primary (node
    1) re-proposes block 2 in its NEW-VIEW, which the backups take; their votes are lost
    and node 1 restarts. Its start effects broadcast exactly the NEW-VIEW's pre-prepare;
    given the transaction again and another one, with timers run (votes are retransmitted),
    it sends no other pre-prepare for height 2; nodes 1-3 commit the re-proposed block 2,
    then the new transaction at height 3.
    (Restarted without it, the primary proposed a fresh block 2 in view 1: two
    pre-prepares for one view and height.)
    """
    net = Net(config=small_config(retransmit_ms=300))
    pp = prepared_at_node_2_only(net)
    announced = [d for d in net.deliver(both(kind(ViewChange), to(1))) if d.effects]
    nv = sent(announced[-1].effects, NewView)[0]
    assert isinstance(nv, NewView)
    [again] = nv.pre_prepares
    net.deliver(kind(NewView))
    assert all(net.replica(i).view == 1 for i in (2, 3))
    net.take()
    net.now += 5
    restarted = net.restart(1)
    assert sent(restarted, PrePrepare) == [again]
    net.receive(1, net.sign(TxGossip([net.tx(2), net.tx(3)], b""), 2))
    for _ in range(10):
        net.now += 100
        for effects in net.fire_due_timers().values():
            assert all(p == again for p in sent(effects, PrePrepare) if p.height == 2)
        net.deliver()
    for i in (1, 2, 3):
        header = net.nodes[i].store.get_header(2)
        assert header is not None and header.block_hash(net.suite) == digest_of(net, pp.block)
        block = net.nodes[i].store.get_block(3)
        assert block is not None and block.txs == [net.tx(3)]


def test_heights_a_new_view_settled_are_fetched_not_taken_again() -> None:
    """Goal: a replica whose NEW-VIEW proves height n committed elsewhere takes no other
    block at n — also after a restart — and fetches n instead.

    Method: node 3 misses block 1; two VIEW-CHANGEs carrying block 1's certificate make node
    1 join view 1 and announce it; node 3 takes the NEW-VIEW (its state-transfer request is
    lost) and restarts. A view-1 pre-prepare by node 1 of another block at height 1 gets
    no PREPARE from it, and a status round makes it fetch the committed block 1 instead.
    (Restarted without the NEW-VIEW's committed height, a replica voted for it — and a
    restarted primary proposed it.)
    """
    net = Net()
    net.start()
    net.cut.add(3)
    net.order(net.tx(1))
    net.cut.clear()
    net.receive(1, view_change(net, 0, 1, last_height=1))
    joined = net.receive(1, view_change(net, 2, 1, last_height=1))
    nv = sent(joined, NewView)
    assert nv and isinstance(nv[0], NewView) and nv[0].pre_prepares == []
    net.take()
    net.receive(3, nv[0])
    assert net.replica(3).view == 1 and net.replica(3).catchup_target == 1
    net.take()
    net.restart(3)
    net.take()
    assert net.replica(3).catchup_target == 1
    other = net.propose(1, 1, [net.tx(9)], net.now, on=3).block
    assert other.header.height == 1
    assert net.receive(3, net.pre_prepare(1, 1, other)) == []
    assert 1 not in net.replica(3).votes
    net.now += net.config.fetch_timeout_ms
    fetched = sent(net.timer(3), FetchBlocks)
    assert fetched
    net.deliver()
    assert net.nodes[3].chain.height == 1
    assert len(net.heads()) == 1


def test_backup_that_learns_transactions_from_the_pre_prepare_starts_its_timer() -> None:
    """Goal: a backup holding a block's transactions only through the pre-prepare (gossip
    lost) still starts its request timer, so a block that never commits moves it to the
    next view.

    Method: the transaction's gossip to node 2 is lost; the primary proposes it; node 2
    takes the pre-prepare and has a request deadline; the commits never come, and when the
    deadline passes node 2 sends VIEW-CHANGE(1).
    """
    net = Net()
    net.start()
    tx = net.tx(1)
    net.submit(1, tx)
    net.take(both(kind(TxGossip), to(2)))
    net.deliver(kind(TxGossip))
    assert not net.replica(2).mempool and net.replica(2).request_deadline is None
    deadline = net.replica(0).next_deadline_ms()
    assert deadline is not None
    net.now = deadline
    pp = sent(net.timer(0), PrePrepare)[0]
    net.take()
    net.receive(2, pp)
    assert net.replica(2).request_deadline is not None
    net.take()
    timer = net.replica(2).request_deadline
    assert timer is not None
    net.now = timer
    vc = sent(net.timer(2), ViewChange)
    assert vc and isinstance(vc[0], ViewChange) and vc[0].new_view == 1



def test_replica_that_asked_for_a_later_view_refuses_an_earlier_new_view() -> None:
    """Goal: once a replica has sent VIEW-CHANGE(v + 2) it takes no NEW-VIEW for v + 1: its
    VIEW-CHANGE told the others what it was prepared at, and voting in view v + 1 afterwards
    could prepare a block a NEW-VIEW(v + 2) built on that word leaves out (a fork the
    simulator found: seed 8813, a twin primary picking the older VIEW-CHANGE).

    Method: nodes 1 - 3 time out (VIEW-CHANGE(1)); node 2 gets the others' and, when its
    view-change timer expires too, asks for view 2. Node 1 then gets a quorum for view 1 and
    announces it: node 2 stays in its view change to 2, in view 0.
    """
    net = Net()
    net.start()
    start_with_pending_request(net, 1)
    net.now += net.config.view_change_timeout_ms
    for i in (1, 2, 3):
        assert [vc.new_view for vc in sent(net.timer(i), ViewChange)] == [1]
    to_primary = net.take(to(1))
    net.deliver(both(kind(ViewChange), to(2)))
    deadline = net.replica(2).vc_deadline
    assert deadline is not None
    net.now = deadline
    assert [vc.new_view for vc in sent(net.timer(2), ViewChange)] == [2]
    assert net.replica(2).vc_target == 2
    net.take()
    net.queue.extend(to_primary)
    announced = [d for d in net.deliver(both(kind(ViewChange), to(1))) if d.effects]
    nv = sent(announced[-1].effects, NewView)
    assert nv and isinstance(nv[0], NewView) and nv[0].view == 1
    assert net.receive(2, nv[0]) == []
    assert (net.replica(2).view, net.replica(2).vc_target) == (0, 2)
