"""Replica behaviour across a validator-set change, driven by hand (tests/unit/replica_harness).

The change is made with the simulator's committee transaction (``sim.validators``) and
takes effect at the first height after the next checkpoint (interval 2 here).
"""

from __future__ import annotations

from consensus.effects import Broadcast
from consensus.messages import Prepare
from consensus.replica import Replica
from consensus.sim import RECONFIG_TX
from ledger.tx import make_tx
from tests.unit.replica_harness import T0, Net


def _prepares(net: Net, i: int, height: int) -> list[Prepare]:
    return [e.message for e in net.nodes[i].log
            if isinstance(e, Broadcast) and isinstance(e.message, Prepare)
            and e.message.height == height]


def test_pre_prepare_held_across_a_change_of_primary_is_judged_by_the_new_set() -> None:
    """Goal: a pre-prepare a lagging replica held for height h+1 while it was at h-1 is
    accepted only if its sender is the primary of the set that votes on h+1. Method: the
    committee reorders the set (effective at height 3: the view-0 primary becomes node1);
    node3 misses block 2; node0 — primary under the old order — sends node3 a valid-looking
    pre-prepare for 3, which node3 holds; once node3 executes 2 it must drop it, and still
    accept node1's."""
    net = Net(n=4)
    net.start()
    keys = [node.pk for node in net.nodes]
    reorder = make_tx(net.committee, net.chain_id, RECONFIG_TX,
                      {"keys": [keys[1], keys[0], keys[2], keys[3]]}, 1, T0 + 10**9)
    net.order(reorder)
    net.cut = {3}
    net.order(net.tx(2))
    assert [r.executed for r in map(net.replica, range(4))] == [2, 2, 2, 1]
    assert net.nodes[0].chain.validators_for(3).public_keys()[0] == keys[1]

    stale = net.propose(0, 0, [net.tx(3)], net.now + 1, on=0)
    held = net.pre_prepare(0, 0, stale.block)
    net.cut = set()
    assert net.receive(3, held) == []
    assert net.replica(3).slots[3].waiting == held
    for _, _, msg in [d for d in net.dropped if d[1] == 3]:
        net.receive(3, msg)
    replica: Replica = net.replica(3)
    assert replica.executed == 2 and replica.primary() == keys[1]
    assert _prepares(net, 3, 3) == []
    assert replica.slots.get(3) is None or replica.slots[3].pre_prepare is None

    fresh = net.propose(1, 0, [net.tx(4)], net.now + 2, on=1)
    net.receive(3, net.pre_prepare(1, 0, fresh.block))
    assert [p.digest for p in _prepares(net, 3, 3)] == [fresh.header.block_hash(net.suite)]
