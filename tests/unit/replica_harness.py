"""A hand-driven PBFT network for unit tests (STYLE.md §1, §7).

Each node is a real :class:`~consensus.replica.Replica` over its own
:class:`~ledger.store.MemoryStore` and :class:`~ledger.chain.Chain`, built the
way ``consensus.sim`` builds them. :class:`Net` carries out effects exactly like
a driver — ``Persist`` → ``store.put_consensus``, ``Append`` → ``chain.append``,
``Send``/``Broadcast`` → a message queue — but the test decides which queued
messages are delivered, dropped or reordered, and what time it is (``net.now``
is stepped explicitly, aioquic style). Every effect a node produced is kept in
``node.log`` so tests can assert on order.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from itertools import count

from consensus.effects import Append, Broadcast, Effect, Persist, Send
from consensus.messages import Message, PrePrepare, sign
from consensus.replica import Replica, ReplicaConfig
from consensus.sim import sim_registry
from consensus.simsuite import SimSuite
from ledger import evidence
from ledger.block import Block, Validator, ValidatorSet
from ledger.chain import Chain, Pending
from ledger.crypto import PrivateKey
from ledger.devnet import make_devnet
from ledger.genesis import Account, Genesis
from ledger.store import MemoryStore
from ledger.tx import Transaction, make_tx

T0 = 1_767_225_600_000  # genesis time (2026-01-01T00:00:00Z)
ORG_USCC = "91350100M000100Y43"
_suite_names = count()

Queued = tuple[int, int, Message]  # (source index, destination index, message)
Pred = Callable[[int, int, Message], bool]


def small_config(**overrides: int) -> ReplicaConfig:
    """Small, test-friendly timeouts; retransmit and status timers far away unless asked for."""
    values = {
        "checkpoint_interval": 2,
        "watermark_window": 8,
        "batch_tx_max": 8,
        "batch_timeout_ms": 20,
        "view_change_timeout_ms": 1000,
        "view_change_timeout_max_ms": 4000,
        "block_time_skew_ms": 5000,
        "retransmit_ms": 1_000_000,
        "status_interval_ms": 1_000_000,
        "fetch_timeout_ms": 1000,
        "gossip_linger_ms": 0,  # relay each transaction at once, so tests see it
    }
    values.update(overrides)
    return ReplicaConfig(**values)


def kind(*types: type) -> Pred:
    """Predicate: the message is one of ``types``."""
    return lambda src, dst, msg: isinstance(msg, types)


def to(*dsts: int) -> Pred:
    return lambda src, dst, msg: dst in dsts


def both(*preds: Pred) -> Pred:
    return lambda src, dst, msg: all(p(src, dst, msg) for p in preds)


@dataclass
class Node:
    index: int
    key: PrivateKey
    store: MemoryStore
    chain: Chain
    replica: Replica
    log: list[Effect] = field(default_factory=list)

    @property
    def pk(self) -> bytes:
        return self.key.public_key().raw


@dataclass
class Delivery:
    src: int
    dst: int
    msg: Message
    effects: list[Effect]


class Net:
    """n replicas, a FIFO queue of undelivered messages, and an explicit clock."""

    def __init__(self, suite: str = "sim", n: int = 4, seed: int = 1,
                 config: ReplicaConfig | None = None) -> None:
        self.config = config or small_config()
        k = self.config.checkpoint_interval
        if suite == "sim":
            # A fresh suite name per network: Genesis.crypto looks the suite up by name,
            # and a later network must not replace the one this network's keys live in.
            self.suite = SimSuite(random.Random(seed), name=f"sim-unit-{next(_suite_names)}")
            self.keys = [self.suite.generate_key() for _ in range(n)]
            self.client = self.suite.generate_key()
            self.committee = self.suite.generate_key()
            vset = ValidatorSet([Validator(f"v{i}", key.public_key().raw, f"sim:{i}")
                                 for i, key in enumerate(self.keys)])
            accounts = [Account("client", ORG_USCC, self.client.public_key().raw, ["issuer"]),
                        Account("committee", ORG_USCC, self.committee.public_key().raw,
                                ["committee"])]
            self.genesis = Genesis("unit", self.suite.name, T0, vset, accounts,
                                   {"checkpoint_interval": k})
        else:
            devnet = make_devnet(suite, n, accounts=[("client", ORG_USCC, ["issuer"]),
                                                     ("committee", ORG_USCC, ["committee"])],
                                 chain_id="unit", time_ms=T0, config={"checkpoint_interval": k})
            self.genesis = devnet.genesis
            self.suite = devnet.genesis.crypto  # type: ignore[assignment]
            self.keys = list(devnet.validator_keys)
            self.client = devnet.account_keys["client"]
            self.committee = devnet.account_keys["committee"]
        self.chain_id = self.genesis.chain_id
        self.now = T0 + 1000
        self.queue: list[Queued] = []
        self.dropped: list[Queued] = []
        self.cut: set[int] = set()  # nodes whose incoming and outgoing messages are lost
        self.nodes: list[Node] = []
        for i, key in enumerate(self.keys):
            store = MemoryStore(self.suite)
            chain = self._chain(store)
            self.nodes.append(Node(i, key, store, chain, Replica(chain, key, self.config)))

    # -- construction ----------------------------------------------------------------------

    def _chain(self, store: MemoryStore) -> Chain:
        committee = self.committee.public_key().raw
        return Chain(store, self.genesis, sim_registry(committee, self.config.checkpoint_interval))

    def restart(self, i: int) -> list[Effect]:
        """Crash node i (its memory is lost, its store survives) and start it again."""
        node = self.nodes[i]
        node.chain = self._chain(node.store)
        node.replica = Replica(node.chain, node.key, self.config)
        return self.run(i, node.replica.start(self.now))

    def start(self) -> None:
        """Start every replica and deliver their opening statuses."""
        for i, node in enumerate(self.nodes):
            self.run(i, node.replica.start(self.now))
        self.deliver()

    # -- the driver ------------------------------------------------------------------------

    def replica(self, i: int) -> Replica:
        return self.nodes[i].replica

    def index_of(self, public_key: bytes) -> int | None:
        for node in self.nodes:
            if node.pk == public_key:
                return node.index
        return None

    def run(self, i: int, effects: list[Effect]) -> list[Effect]:
        """Carry out node i's effects in order, as a driver must; return them."""
        node = self.nodes[i]
        node.log.extend(effects)
        for effect in effects:
            if isinstance(effect, Persist):
                node.store.put_consensus(effect.changes)
            elif isinstance(effect, Append):
                node.chain.append(effect.pending, effect.certificate)
            elif isinstance(effect, Send):
                dst = self.index_of(effect.to)
                if dst is not None:
                    self.post(i, dst, effect.message)
            elif isinstance(effect, Broadcast):
                members = set(node.replica.validators.public_keys())
                for other in self.nodes:
                    if other.index != i and other.pk in members:
                        self.post(i, other.index, effect.message)
        return effects

    def post(self, src: int, dst: int, msg: Message) -> None:
        if src in self.cut or dst in self.cut:
            self.dropped.append((src, dst, msg))
        else:
            self.queue.append((src, dst, msg))

    def submit(self, i: int, tx: Transaction) -> list[Effect]:
        return self.run(i, self.replica(i).submit(tx, self.now))

    def receive(self, i: int, msg: Message) -> list[Effect]:
        return self.run(i, self.replica(i).receive(msg, self.now))

    def timer(self, i: int) -> list[Effect]:
        return self.run(i, self.replica(i).on_timer(self.now))

    def fire_due_timers(self, nodes: Iterable[int] | None = None) -> dict[int, list[Effect]]:
        """on_timer(now) at every node (default: every node not cut off) whose deadline passed."""
        out: dict[int, list[Effect]] = {}
        for i in nodes if nodes is not None else range(len(self.nodes)):
            if nodes is None and i in self.cut:
                continue
            deadline = self.replica(i).next_deadline_ms()
            if deadline is not None and deadline <= self.now:
                out[i] = self.timer(i)
        return out

    # -- the network -----------------------------------------------------------------------

    def take(self, pred: Pred | None = None) -> list[Queued]:
        """Remove and return the queued messages matching ``pred`` (to drop or replay them)."""
        taken = [q for q in self.queue if pred is None or pred(*q)]
        self.queue = [q for q in self.queue if not (pred is None or pred(*q))]
        return taken

    def peek(self, pred: Pred | None = None) -> list[Queued]:
        return [q for q in self.queue if pred is None or pred(*q)]

    def deliver(self, pred: Pred | None = None, limit: int = 10_000) -> list[Delivery]:
        """Deliver matching queued messages in FIFO order, including ones sent meanwhile."""
        out: list[Delivery] = []
        for _ in range(limit):
            pos = next((p for p, q in enumerate(self.queue) if pred is None or pred(*q)), None)
            if pos is None:
                return out
            src, dst, msg = self.queue.pop(pos)
            out.append(Delivery(src, dst, msg, self.receive(dst, msg)))
        raise AssertionError("message storm: the delivery bound was reached")

    # -- helpers for building inputs ------------------------------------------------------

    def tx(self, nonce: int, key: PrivateKey | None = None) -> Transaction:
        digest = hashlib.sha256(f"unit/{nonce}".encode()).digest()
        return make_tx(key or self.client, self.chain_id, evidence.TX_TYPE,
                       {"digest": digest, "label": "unit"}, nonce, T0 + 10**9)

    def primary_index(self, view: int) -> int:
        return view % len(self.nodes)

    def propose(self, proposer: int, view: int, txs: list[Transaction], time_ms: int,
                on: int | None = None, parent: Pending | None = None) -> Pending:
        """A correctly executed block by ``proposer`` on top of node ``on``'s head."""
        chain = self.nodes[proposer if on is None else on].chain
        return chain.propose(txs, time_ms, view, self.nodes[proposer].pk, parent)

    def pre_prepare(self, signer: int, view: int, block: Block,
                    height: int | None = None) -> PrePrepare:
        h = block.header.height if height is None else height
        pp = sign(PrePrepare(view, h, block, b""), self.keys[signer])
        assert isinstance(pp, PrePrepare)
        return pp

    def sign(self, msg: Message, signer: int) -> Message:
        return sign(replace(msg, sig=b""), self.keys[signer], self.chain_id)

    def order(self, *txs: Transaction, at: int = 1) -> list[Delivery]:
        """Commit one block holding ``txs`` in the current view with every message delivered.

        The transactions are submitted at node ``at``, gossiped, the primary's batch
        timer fires, and the network runs until quiet.
        """
        for tx in txs:
            self.submit(at, tx)
        self.deliver()
        primary = self.primary_index(self.replica(at).view)
        deadline = self.replica(primary).next_deadline_ms()
        assert deadline is not None
        self.now = max(self.now, deadline)
        self.timer(primary)
        return self.deliver()

    def heads(self, nodes: Iterable[int] | None = None) -> set[bytes]:
        idx = nodes if nodes is not None else range(len(self.nodes))
        return {self.nodes[i].chain.head().block_hash(self.suite) for i in idx}
