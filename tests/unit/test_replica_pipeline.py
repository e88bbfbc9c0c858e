"""Two heights in flight (``pipeline_depth = 2``): the primary proposes height n + 1 once
it is prepared at n; a backup takes it only once it is prepared at n itself; both blocks
commit in order; a view change re-proposes every prepared height; a restarted primary
re-offers both of its proposals.

Each test drives the real :class:`~consensus.replica.Replica` through the harness of
``test_replica.py``: messages are delivered, held or dropped one kind at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

from consensus.effects import Broadcast, Effect, Send
from consensus.messages import Commit, Message, NewView, Prepare, PrePrepare, TxGossip, ViewChange
from tests.unit.replica_harness import Net, both, kind, small_config, to


def sent(effects: Sequence[Effect], cls: type) -> list[Message]:
    return [e.message for e in effects
            if isinstance(e, (Send, Broadcast)) and isinstance(e.message, cls)]


def pipelined_net() -> Net:
    net = Net(config=small_config(pipeline_depth=2))
    net.start()
    return net


def propose(net: Net, nonce: int) -> PrePrepare:
    """Gossip a transaction to everyone and let the primary's batch timer fire."""
    net.submit(1, net.tx(nonce))
    net.deliver(kind(TxGossip))
    deadline = net.replica(0).next_deadline_ms()
    assert deadline is not None
    net.now = max(net.now, deadline)
    [pp] = sent(net.timer(0), PrePrepare)
    assert isinstance(pp, PrePrepare)
    return pp


def test_primary_proposes_the_next_height_once_prepared_and_both_commit_in_order() -> None:
    """Goal: with two heights in flight the primary does not wait for block 1 to commit
    before proposing block 2, block 2 extends block 1, and both commit in order everywhere.

    Method: block 1's pre-prepare and prepares are delivered, its commits held; the next
    transaction's batch timer then makes the primary propose block 2 while no node has
    appended block 1; backups (prepared at 1) vote for it; then everything is delivered.
    """
    net = pipelined_net()
    pp1 = propose(net, 1)
    net.deliver(kind(PrePrepare, Prepare))
    held = net.take(kind(Commit))
    assert held and all(n.chain.height == 0 for n in net.nodes)
    pp2 = propose(net, 2)
    assert pp2.height == 2
    assert pp2.block.header.prev_hash == pp1.block.header.block_hash(net.suite)
    assert pp2.block.txs == [net.tx(2)]
    votes = net.deliver(kind(PrePrepare))
    assert {d.dst for d in votes if sent(d.effects, Prepare)} == {1, 2, 3}
    assert all(n.chain.height == 0 for n in net.nodes)
    net.queue.extend(held)
    net.deliver()
    for node in net.nodes:
        assert node.chain.height == 2
        b1, b2 = node.store.get_block(1), node.store.get_block(2)
        assert b1 is not None and b2 is not None
        assert (b1.txs, b2.txs) == ([net.tx(1)], [net.tx(2)])
    assert len(net.heads()) == 1
    assert all(not n.replica.mempool and not n.replica.in_flight for n in net.nodes)
    assert net.replica(1).stats["pipelined"] == 1


def test_backup_holds_the_next_height_until_it_is_prepared_below() -> None:
    """Goal: a backup never votes for block n + 1 before it is prepared at n (the rule that
    keeps runs of prepared certificates safe through a view change).

    Method: node 3 gets block 1's pre-prepare but none of its prepares; the others prepare
    and the primary proposes block 2. Node 3 answers block 2's pre-prepare with nothing;
    once block 1's prepares reach it, it sends its COMMIT for 1 and then its PREPARE for 2.
    """
    net = pipelined_net()
    propose(net, 1)
    net.deliver(kind(PrePrepare))
    late = net.take(both(kind(Prepare), to(3)))
    net.deliver(kind(Prepare))
    net.take(kind(Commit))
    pp2 = propose(net, 2)
    [d] = net.deliver(both(kind(PrePrepare), to(3)))
    assert d.effects == []
    assert net.replica(3).slots[2].waiting == pp2
    effects: list[Effect] = []
    for _, dst, msg in late:
        effects += net.receive(dst, msg)
    votes = [(type(e.message).__name__, e.message.height) for e in effects
             if isinstance(e, Broadcast) and isinstance(e.message, (Commit, Prepare))]
    assert votes == [("Commit", 1), ("Prepare", 2)]


def test_view_change_reproposes_both_prepared_heights() -> None:
    """Goal: blocks prepared at two heights, committed nowhere, survive a view change: the
    NEW-VIEW re-proposes both, in order, and the network commits exactly those blocks.

    Method: blocks 1 and 2 are prepared at every node (all commits lost); the primary is cut
    off; the backups' request timers fire; the new primary's NEW-VIEW must carry view-1
    pre-prepares of both blocks; delivering everything commits them at nodes 1 - 3.
    """
    net = pipelined_net()
    pp1 = propose(net, 1)
    net.deliver(kind(PrePrepare, Prepare))
    net.take(kind(Commit))
    pp2 = propose(net, 2)
    net.deliver(kind(PrePrepare, Prepare))
    net.take(kind(Commit))
    assert all(sorted(n.replica.prepared) == [1, 2] for n in net.nodes[1:])
    net.cut.add(0)
    net.take(lambda src, dst, msg: 0 in (src, dst))
    net.now += net.config.view_change_timeout_ms
    for i in (1, 2, 3):
        [vc] = sent(net.timer(i), ViewChange)
        assert isinstance(vc, ViewChange)
        assert [c.pre_prepare for c in vc.prepared] == [pp1, pp2]
    net.deliver(kind(ViewChange))
    [nv] = [m for _, _, m in net.peek(kind(NewView))][:1]
    assert isinstance(nv, NewView)
    assert [(p.view, p.height, p.block) for p in nv.pre_prepares] == [
        (1, 1, pp1.block), (1, 2, pp2.block)]
    net.deliver()
    for node in net.nodes[1:]:
        assert node.chain.height == 2
        b1, b2 = node.store.get_block(1), node.store.get_block(2)
        assert b1 is not None and b2 is not None
        assert (b1.header, b2.header) == (pp1.block.header, pp2.block.header)


def test_restarted_primary_reoffers_both_blocks_in_flight() -> None:
    """Goal: a primary that crashes with two proposals in flight re-offers exactly those
    two (from its persisted pre-prepares), never other blocks, and they commit.

    Method: blocks 1 and 2 proposed (block 1 prepared, its commits lost; block 2's
    pre-prepare lost); the primary restarts: its start effects broadcast both original
    pre-prepares and no other; with retransmission (50 ms) and everything delivered, both
    commit — before any request timer (1 s) could start a view change.
    """
    net = Net(config=small_config(pipeline_depth=2, retransmit_ms=50))
    net.start()
    pp1 = propose(net, 1)
    net.deliver(kind(PrePrepare, Prepare))
    net.take(kind(Commit))
    pp2 = propose(net, 2)
    net.take()
    restarted = net.restart(0)
    assert sent(restarted, PrePrepare) == [pp1, pp2]
    for _ in range(10):
        net.deliver()
        if all(n.chain.height == 2 for n in net.nodes):
            break
        net.now += 50
        net.fire_due_timers()
    assert all(n.replica.view == 0 for n in net.nodes)
    for node in net.nodes:
        assert node.chain.height == 2
        b2 = node.store.get_block(2)
        assert b2 is not None and b2.header == pp2.block.header
