"""Deterministic fault-injecting simulator: real replicas on a virtual network and clock.

Theory of operation
-------------------
One seed fixes everything: the fault rates (drawn from ranges like
TigerBeetle's VOPR), which replicas are Byzantine and how, when clients
submit, and every delay. Time is virtual and jumps to the next event
(message delivery, replica timer, client retry, crash, restart, partition
change), so a run of minutes of simulated time takes a fraction of a second.

Each node is a real :class:`~consensus.replica.Replica` over a real
:class:`~ledger.chain.Chain` on a :class:`~ledger.store.MemoryStore` (which
survives crashes, like a disk). The simulator carries out the replica's
effects in order; a crash may strike in the middle of an effect list, so
later sends are lost — exactly what persist-before-send must survive.

Faults during the fault phase: message loss (0–30%), delay, duplication and
replay (0–50%), reordering, symmetric and asymmetric partitions that start
and heal, crashes and restarts, clock skew, and up to ``byzantine``
Byzantine replicas (equivocating primary, withheld votes, votes for wrong
digests, forged and replayed messages, inflated view numbers, or a twin —
a second replica with the same key). Optionally the validator set changes
(a node is added, then one removed) through committed transactions.

Checked after every event: honest replicas never append different blocks at
the same height (hash chains and state roots agree, since the block hash
covers both); no two honest replicas are prepared for different digests at
the same (view, height); a committed block never rolls back; every appended
commit certificate verifies against its height's validator set; and no
certificate for a block other than the committed one can be put together from
the COMMITs honest replicas sent in one view plus whatever the Byzantine
validators sign (how often that would have been possible when certificates did
not name their view is counted as ``viewless_forgeable``, for comparison). After the
fault phase every network fault stops and every crashed node restarts — in a
quarter of the seeds every node stops and restarts at once (``restart_all``, a
power cut, which those seeds also suffer once in the middle of the fault phase;
they use a short checkpoint interval so the chain outgrows its first watermark
window) and more transactions follow; then every
submitted transaction must be committed at every honest replica within a
bounded simulated time (liveness).

Run ``python -m consensus.sim --help``. A failure prints the seed and the
command that replays it.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from dataclasses import dataclass, field, replace
from typing import Any

from consensus.effects import Append, Broadcast, Effect, Persist, Send
from consensus.messages import (
    Commit,
    Message,
    Prepare,
    PrePrepare,
    kind_of,
    sign,
)
from consensus.replica import Replica, ReplicaConfig
from consensus.simsuite import SimSuite
from ledger import evidence
from ledger.block import (
    Validator,
    ValidatorSet,
    verify_certificate,
)
from ledger.chain import Chain, schedule_validator_change
from ledger.crypto import PrivateKey
from ledger.errors import InputError, TxRejected
from ledger.execution import ExecContext, Registry
from ledger.genesis import Account, Genesis
from ledger.store import MemoryStore
from ledger.tx import Transaction, make_tx

T0 = 1_767_225_600_000
RECONFIG_TX = "sim.validators"
BEHAVIOURS = ("equivocate", "withhold", "wrong_digest", "inflate_view", "forge", "replay", "twin")


def sim_registry(committee: bytes, checkpoint_interval: int) -> Registry:
    """evidence.anchor plus a committee-only transaction that changes the validator set."""
    registry = Registry()
    evidence.register(registry)

    def reconfigure(ctx: ExecContext) -> None:
        if ctx.sender != committee:
            raise TxRejected("only the committee may change validators")
        keys = ctx.tx.payload.get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, bytes) for k in keys):
            raise TxRejected("payload.keys must be a list of public keys")
        vs = ValidatorSet([Validator(f"v{i}", k, f"sim:{i}")  # type: ignore[arg-type]
                           for i, k in enumerate(keys)])
        schedule_validator_change(ctx.state, vs, ctx.height, checkpoint_interval)

    registry.register(RECONFIG_TX, reconfigure)
    return registry


@dataclass
class Faults:
    loss: float
    dup: float
    replay: float
    delay_max_ms: int
    partitions: bool
    crashes: int
    crash_mid_effects: float
    skew_max_ms: int
    reconfig: bool
    byzantine: dict[int, str]
    # Every node stops at once and starts again (a power cut, or a coordinated upgrade):
    # once in the middle of the fault phase and once at its end, after which new
    # transactions arrive. Drawn from its own generator (see Simulation.__init__).
    restart_all: bool = False

    @classmethod
    def draw(cls, rng: random.Random, nodes: int, byzantine: int) -> Faults:
        byz = rng.sample(range(nodes), byzantine)
        return cls(
            loss=rng.choice([0.0, rng.uniform(0, 0.3)]),
            dup=rng.choice([0.0, rng.uniform(0, 0.5)]),
            replay=rng.choice([0.0, rng.uniform(0, 0.5)]),
            delay_max_ms=rng.choice([5, 50, 300, 1500]),
            partitions=rng.random() < 0.5,
            crashes=rng.choice([0, 1, 3, 8]),
            crash_mid_effects=rng.choice([0.0, 0.2, 0.5]),
            skew_max_ms=rng.choice([0, 200, 2000]),
            reconfig=nodes == 4 and rng.random() < 0.3,
            byzantine={i: rng.choice(BEHAVIOURS) for i in byz},
        )


@dataclass
class Node:
    index: int
    key: PrivateKey
    store: MemoryStore
    chain: Chain
    replica: Replica | None
    honest: bool
    behaviour: str | None
    skew_ms: int
    timer_seq: int = 0
    checked_height: int = 0
    history: list[Message] = field(default_factory=list)

    @property
    def up(self) -> bool:
        return self.replica is not None


MAX_EVENTS_PER_NODE = 40_000  # healthy runs use well under a tenth of this


@dataclass
class SimResult:
    seed: int
    nodes: int
    committed_blocks: int
    safety_violations: list[str]
    liveness_violation: str | None
    trace_hash: str
    events: int
    view_changes: int
    faults: dict[str, Any]
    pipelined: int = 0  # pre-prepares taken while the height below was in flight
    # Heights at which honest COMMITs from *different* views, plus the Byzantine validators'
    # signatures, would have made a certificate for an uncommitted block had certificates
    # not named their view (they do: the check in _check_forgeable is the one asserted).
    viewless_forgeable: int = 0

    @property
    def ok(self) -> bool:
        return not self.safety_violations and self.liveness_violation is None


class Simulation:
    def __init__(self, seed: int, nodes: int = 4, byzantine: int = 1,
                 replica_cls: type[Replica] = Replica, fault_ms: int = 20_000,
                 liveness_ms: int = 90_000, txs: int | None = None) -> None:
        assert 0 <= byzantine <= (nodes - 1) // 3
        self.seed, self.n, self.replica_cls = seed, nodes, replica_cls
        self.rng = random.Random(seed)
        # Whole-network restarts draw from a generator of their own: the other draws, and
        # the traces of the seeds without them, stay as they were.
        self.side_rng = random.Random(seed * 104_729 + 3)
        self.faults = replace(Faults.draw(self.rng, nodes, byzantine),
                              restart_all=self.side_rng.random() < 0.25)
        self.fault_end = fault_ms
        self.deadline = fault_ms + liveness_ms
        self.suite = SimSuite(random.Random(seed * 7919 + 1), name="sim")
        self.queue: list[tuple[int, int, str, Any]] = []
        self.seq = 0
        self.now = 0
        self.events = 0
        # A run that needs far more events than any healthy one is a message storm (replicas
        # answering each other without waiting): a liveness bug, and a run that would
        # otherwise never end in wall-clock time since virtual time barely moves.
        self.max_events = MAX_EVENTS_PER_NODE * nodes
        self.trace = hashlib.sha256()
        self.safety: list[str] = []
        self.canonical: dict[int, bytes] = {}
        self.prepared_seen: dict[tuple[int, int], bytes] = {}
        # height -> (view, digest) -> public keys of the honest validators that sent that
        # COMMIT (see _check_forgeable); heights whose view-less forgeability was counted.
        self.commit_votes: dict[int, dict[tuple[int, bytes], set[bytes]]] = {}
        self.viewless_seen: set[int] = set()
        self.votes_changed: set[int] = set()  # heights to check again
        self.partition: tuple[set[int], set[int], bool] | None = None
        self._setup(txs)

    # -- setup ----------------------------------------------------------------------------

    def _setup(self, txs: int | None) -> None:
        s = self.suite
        vkeys = [s.generate_key() for _ in range(self.n)]
        self.client, self.committee = s.generate_key(), s.generate_key()
        extra = s.generate_key() if self.faults.reconfig else None
        # A whole-network restart matters once the chain has outgrown the first watermark
        # window (nothing below it is kept but the stable checkpoint's proof), so those seeds
        # run with a short interval and window: a seed commits ~15 blocks.
        interval = 2 if self.faults.restart_all else 8
        self.config = ReplicaConfig(checkpoint_interval=interval,
                                    watermark_window=4 * interval, batch_tx_max=8,
                                    batch_timeout_ms=20, view_change_timeout_ms=2000,
                                    view_change_timeout_max_ms=16_000, retransmit_ms=800,
                                    status_interval_ms=3000, fetch_timeout_ms=1000,
                                    pipeline_depth=1 + self.seed % 3)
        vset = ValidatorSet([Validator(f"v{i}", k.public_key().raw, f"sim:{i}")
                             for i, k in enumerate(vkeys)])
        accounts = [Account("client", "org", self.client.public_key().raw, ["issuer"]),
                    Account("committee", "org", self.committee.public_key().raw, ["committee"])]
        self.genesis = Genesis("sim", "sim", T0, vset, accounts,
                               {"checkpoint_interval": self.config.checkpoint_interval})
        self.nodes: list[Node] = []
        keys = list(vkeys) + ([extra] if extra is not None else [])
        for i, key in enumerate(keys):
            behaviour = self.faults.byzantine.get(i)
            self._add_node(i, key, behaviour)
            if behaviour == "twin":
                self._add_node(i, key, "twin")
        count = txs if txs is not None else self.rng.randint(15, 40)
        self.pending_txs: dict[bytes, Transaction] = {}
        for i in range(count):
            digest = hashlib.sha256(f"{self.seed}/{i}".encode()).digest()
            tx = make_tx(self.client, "sim", evidence.TX_TYPE, {"digest": digest, "label": "s"},
                         i, T0 + 10**9)
            self.pending_txs[tx.tx_id(s)] = tx
            self._push(self.rng.randint(0, self.fault_end), "client", tx)
        if extra is not None:
            grow = [*vset.public_keys(), extra.public_key().raw]
            shrink = grow[1:]
            for n, (keys_, at) in enumerate([(grow, self.fault_end // 4),
                                             (shrink, self.fault_end // 2)]):
                tx = make_tx(self.committee, "sim", RECONFIG_TX,
                             {"keys": keys_}, 10_000 + n, T0 + 10**9)  # type: ignore[dict-item]
                self.pending_txs[tx.tx_id(s)] = tx
                self._push(at, "client", tx)
        for node in self.nodes:
            self._push(0, "start", node)
        for _ in range(self.faults.crashes):
            victim = self.rng.randrange(len(self.nodes))
            self._push(self.rng.randint(0, self.fault_end), "crash", victim)
        if self.faults.partitions:
            t = 0
            while t < self.fault_end:
                t += self.rng.randint(1000, 8000)
                self._push(t, "partition", None)
        self._push(self.fault_end, "heal", None)
        if self.faults.restart_all:
            # A power cut in the middle of the fault phase too: every node at once, with
            # whatever was in flight, each back after its own delay.
            at = self.side_rng.randint(self.fault_end // 4, 3 * self.fault_end // 4)
            self._push(at, "stop_all", None)
            for i in range(3):  # work for the restarted network
                digest = hashlib.sha256(f"{self.seed}/after-restart/{i}".encode()).digest()
                tx = make_tx(self.client, "sim", evidence.TX_TYPE,
                             {"digest": digest, "label": "r"}, 20_000 + i, T0 + 10**9)
                self.pending_txs[tx.tx_id(s)] = tx
                self._push(self.fault_end + 2000 + 300 * i, "client", tx)

    def _add_node(self, index: int, key: PrivateKey, behaviour: str | None) -> None:
        store = MemoryStore(self.suite)
        chain = Chain(store, self.genesis, self._registry())
        skew = self.rng.randint(-self.faults.skew_max_ms, self.faults.skew_max_ms)
        # A twin shares its sibling's index (and key): to the network they are one node.
        self.nodes.append(Node(index, key, store, chain, None, behaviour is None, behaviour, skew))

    def _registry(self) -> Registry:
        return sim_registry(self.committee.public_key().raw, self.config.checkpoint_interval)

    # -- event queue ----------------------------------------------------------------------

    def _push(self, at: int, kind: str, data: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, kind, data))

    def _local(self, node: Node) -> int:
        return T0 + self.now + node.skew_ms

    def _arm_timer(self, node: Node) -> None:
        if node.replica is None:
            return
        deadline = node.replica.next_deadline_ms()
        if deadline is None:
            return
        node.timer_seq += 1
        at = max(self.now, deadline - T0 - node.skew_ms)
        self._push(at, "timer", (node, node.timer_seq))

    # -- running --------------------------------------------------------------------------

    def run(self) -> SimResult:
        liveness: str | None = None
        while self.queue:
            at, _, kind, data = heapq.heappop(self.queue)
            if at > self.deadline:
                break
            self.now = at
            self.events += 1
            if self.events > self.max_events:
                liveness = (f"message storm: {self.max_events} events by virtual time "
                            f"{self.now} ms")
                break
            self._handle(kind, data)
            self._check_safety()
            self._check_forgeable()
            if self.safety:
                break  # the first violation is the interesting one
            if self.now >= self.fault_end and self._all_done():
                break
        if not self.safety and liveness is None and not self._all_done():
            liveness = self._liveness_report()
        committed = max((n.chain.height for n in self.nodes if n.honest), default=0)
        views = sum(n.replica.stats["view_changes"] for n in self.nodes if n.replica)
        pipelined = sum(n.replica.stats["pipelined"] for n in self.nodes if n.replica)
        return SimResult(self.seed, self.n, committed, self.safety, liveness,
                         self.trace.hexdigest(), self.events, views, vars(self.faults),
                         pipelined, len(self.viewless_seen))

    def _handle(self, kind: str, data: Any) -> None:
        if kind == "deliver":
            node, msg = data
            if node.replica is not None:
                self._note(f"d {node.index} {kind_of(msg)} {msg.sender[:2].hex()}")
                self._run_effects(node, node.replica.receive(msg, self._local(node)))
        elif kind == "timer":
            node, seq = data
            if node.replica is not None and seq == node.timer_seq:
                self._run_effects(node, node.replica.on_timer(self._local(node)))
                self._byzantine_tick(node)
        elif kind == "client":
            self._client(data)
        elif kind == "start":
            self._start(data)
        elif kind == "crash":
            self._crash(self.nodes[data])
        elif kind == "partition":
            self._new_partition()
        elif kind == "stop_all":
            for node in self.nodes:
                if self._stop(node):
                    self._push(self.now + self.side_rng.randint(200, 4000), "start", node)
        elif kind == "heal":
            self.partition = None
            if self.faults.restart_all:
                for i, node in enumerate(self.nodes):
                    self._stop(node)
                    self._push(self.now + 100 + 150 * i, "start", node)
            else:
                for node in self.nodes:
                    if node.replica is None:
                        self._start(node)

    def _stop(self, node: Node) -> bool:
        """A whole-network stop takes this node down (its store survives); False if it was."""
        if node.replica is None:
            return False
        node.replica = None
        self._note(f"stop {node.index}")
        return True

    def _note(self, text: str) -> None:
        self.trace.update(f"{self.now} {text}\n".encode())

    def _start(self, node: Node) -> None:
        if node.replica is not None:
            return
        node.chain = Chain(node.store, self.genesis, self._registry())
        node.replica = self.replica_cls(node.chain, node.key, self.config)
        self._note(f"start {node.index}")
        self._run_effects(node, node.replica.start(self._local(node)))

    def _crash(self, node: Node) -> None:
        if node.replica is None or self.now >= self.fault_end:
            return
        node.replica = None
        self._note(f"crash {node.index}")
        self._push(self.now + self.rng.randint(500, 6000), "start", node)

    def _new_partition(self) -> None:
        if self.now >= self.fault_end:
            return
        if self.partition is not None or self.rng.random() < 0.3:
            self.partition = None
            return
        ids = list({n.index for n in self.nodes})
        self.rng.shuffle(ids)
        cut = self.rng.randint(1, len(ids) - 1)
        self.partition = (set(ids[:cut]), set(ids[cut:]), self.rng.random() < 0.5)

    def _blocked(self, src: int, dst: int) -> bool:
        if self.partition is None:
            return False
        a, b, symmetric = self.partition
        return (src in a and dst in b) or (symmetric and src in b and dst in a)

    # -- effects ---------------------------------------------------------------------------

    def _run_effects(self, node: Node, effects: list[Effect]) -> None:
        if node.behaviour is not None:
            effects = self._byzantine_filter(node, effects)
        for i, effect in enumerate(effects):
            if (self.now < self.fault_end and node.honest and self.faults.crash_mid_effects
                    and i > 0 and self.rng.random() < self.faults.crash_mid_effects / 10):
                self._crash(node)
                return
            if isinstance(effect, Persist):
                node.store.put_consensus(effect.changes)
            elif isinstance(effect, Append):
                node.chain.append(effect.pending, effect.certificate)
                self._note(f"append {node.index} {effect.pending.header.height}")
            elif isinstance(effect, Send):
                for dst in self._nodes_with_key(effect.to):
                    self._send(node, dst, effect.message)
            elif isinstance(effect, Broadcast):
                assert node.replica is not None
                if node.honest and isinstance(effect.message, Commit):
                    c = effect.message
                    self.commit_votes.setdefault(c.height, {}).setdefault(
                        (c.view, c.digest), set()).add(c.sender)
                    self.votes_changed.add(c.height)
                keys = set(node.replica.validators.public_keys())
                for dst in self.nodes:
                    if dst is not node and (dst.key.public_key().raw in keys
                                            or dst.index == node.index):
                        self._send(node, dst, effect.message)
        self._arm_timer(node)

    def _nodes_with_key(self, key: bytes) -> list[Node]:
        return [n for n in self.nodes if n.key.public_key().raw == key]

    def _send(self, src: Node, dst: Node, msg: Message) -> None:
        faulty = self.now < self.fault_end
        if faulty and (self._blocked(src.index, dst.index) or self.rng.random() < self.faults.loss):
            return
        delay = self.rng.randint(1, 10)
        if faulty:
            delay += int(self.rng.random() ** 3 * self.faults.delay_max_ms)
        self._push(self.now + delay, "deliver", (dst, msg))
        if faulty and self.rng.random() < self.faults.dup:
            self._push(self.now + delay + self.rng.randint(0, 500), "deliver", (dst, msg))
        if faulty and self.rng.random() < self.faults.replay and dst.history:
            old = self.rng.choice(dst.history)
            self._push(self.now + self.rng.randint(0, 3000), "deliver", (dst, old))
        dst.history.append(msg)
        if len(dst.history) > 64:
            dst.history.pop(self.rng.randrange(len(dst.history)))

    # -- clients ---------------------------------------------------------------------------

    def _client(self, tx: Transaction) -> None:
        tx_id = tx.tx_id(self.suite)
        if tx_id not in self.pending_txs:
            return
        if any(n.store.get_tx_location(tx_id) is not None for n in self.nodes if n.honest):
            del self.pending_txs[tx_id]
            return
        up = [n for n in self.nodes if n.replica is not None]
        if self.now >= self.fault_end:
            up = [n for n in up if n.honest] or up
        if up:
            node = self.rng.choice(up)
            assert node.replica is not None
            self._run_effects(node, node.replica.submit(tx, self._local(node)))
        self._push(self.now + self.rng.randint(2000, 4000), "client", tx)

    # -- Byzantine behaviour ---------------------------------------------------------------

    def _byzantine_filter(self, node: Node, effects: list[Effect]) -> list[Effect]:
        out: list[Effect] = []
        behaviour = node.behaviour
        for e in effects:
            msg = e.message if isinstance(e, (Send, Broadcast)) else None
            if behaviour == "withhold" and isinstance(msg, (Prepare, Commit)):
                # Votes reach only a random subset of the others (maybe none).
                for dst in self.nodes:
                    if dst.index != node.index and self.rng.random() < 0.4:
                        out.append(Send(dst.key.public_key().raw, msg))
                continue
            elif behaviour == "wrong_digest" and isinstance(msg, (Prepare, Commit)):
                out.append(Broadcast(self._wrong_vote(node, msg)))
                continue
            elif behaviour == "equivocate" and isinstance(msg, PrePrepare) and isinstance(
                    e, Broadcast):
                out += self._equivocate(node, msg)
                continue
            out.append(e)
        return out

    def _wrong_vote(self, node: Node, msg: Prepare | Commit) -> Message:
        digest = self.rng.randbytes(32)
        if isinstance(msg, Prepare):
            return sign(replace(msg, digest=digest), node.key)
        return sign(replace(msg, digest=digest), node.key, "sim")

    def _equivocate(self, node: Node, pp: PrePrepare) -> list[Effect]:
        """Send a different, valid block to each half of the backups."""
        replica = node.replica
        assert replica is not None
        txs = list(pp.block.txs)
        self.rng.shuffle(txs)
        try:
            alt = node.chain.propose(txs[:-1] or txs, pp.block.header.time + 1, pp.view,
                                     node.key.public_key().raw, replica._parent())
        except InputError:
            return [Broadcast(pp)]
        alt_pp = sign(replace(pp, block=alt.block), node.key)
        others = [n for n in self.nodes if n.index != node.index]
        effects: list[Effect] = []
        for i, dst in enumerate(others):
            effects.append(Send(dst.key.public_key().raw, pp if i % 2 else alt_pp))
        return effects

    def _byzantine_tick(self, node: Node) -> None:
        replica = node.replica
        if replica is None or self.rng.random() < 0.5:
            return
        if node.behaviour == "inflate_view":
            vc = replica._my_view_change(replica.view + 1000 + self.rng.randint(0, 10**6))
            self._run_raw_broadcast(node, vc)
        elif node.behaviour == "forge":
            self._forge(node, replica)
        elif node.behaviour == "replay" and node.history:
            for _ in range(3):
                self._run_raw_broadcast(node, self.rng.choice(node.history))

    def _forge(self, node: Node, replica: Replica) -> None:
        """Messages claiming other senders with signatures we cannot make."""
        height = replica.executed + 1
        try:
            alt = node.chain.propose([], self._local(node), replica.view,
                                     replica.primary(), replica._parent())
        except InputError:
            return
        digest = alt.header.block_hash(self.suite)
        junk = self.rng.randbytes(32)
        msgs: list[Message] = [PrePrepare(replica.view, height, alt.block, replica.primary(), junk)]
        for k in replica.validators.public_keys():
            msgs.append(Prepare(replica.view, height, digest, k, junk))
            msgs.append(Commit(replica.view, height, digest, k, junk))
        for m in msgs:
            self._run_raw_broadcast(node, m)

    def _run_raw_broadcast(self, node: Node, msg: Message) -> None:
        for dst in self.nodes:
            if dst is not node:
                self._send(node, dst, msg)

    # -- checks ------------------------------------------------------------------------------

    def _check_safety(self) -> None:
        for node in self.nodes:
            if not node.honest:
                continue
            head = node.store.head_height()
            if head < node.checked_height:
                self.safety.append(f"node {node.index}: chain rolled back to {head}")
            for h in range(node.checked_height + 1, head + 1):
                header, cert = node.store.get_header(h), node.store.get_certificate(h)
                assert header is not None and cert is not None
                block_hash = header.block_hash(self.suite)
                if h not in self.canonical:
                    self.votes_changed.add(h)
                first = self.canonical.setdefault(h, block_hash)
                if first != block_hash:
                    self.safety.append(f"t={self.now} node {node.index}: different block at {h}")
                try:
                    vs = node.chain.validators_for(h)
                    verify_certificate(self.suite, "sim", header, cert, vs)
                except InputError as exc:
                    self.safety.append(f"node {node.index}: certificate at {h} invalid: {exc}")
            node.checked_height = max(node.checked_height, head)
            r = node.replica
            for prepared in (r.prepared.values() if r is not None else ()):
                pp = prepared.pre_prepare
                key = (pp.view, pp.height)
                digest = pp.block.header.block_hash(self.suite)
                if self.prepared_seen.setdefault(key, digest) != digest:
                    self.safety.append(f"node {node.index}: prepared a different block at "
                                       f"view {pp.view} height {pp.height}")

    def _check_forgeable(self) -> None:
        """No height's honest COMMITs of one view for a block other than the committed one
        reach a certificate with the Byzantine validators' signatures added; and count the
        heights where COMMITs of different views would have (certificates without views)."""
        if not self.votes_changed:
            return
        faulty = {n.key.public_key().raw for n in self.nodes if not n.honest}
        judge = max((n for n in self.nodes if n.honest), key=lambda n: n.chain.height)
        for h in list(self.votes_changed):
            committed, votes = self.canonical.get(h), self.commit_votes.get(h, {})
            if committed is None or h > judge.chain.height:
                continue  # again once an honest replica has the block
            self.votes_changed.discard(h)
            vs = judge.chain.validators_for(h)
            members = set(vs.public_keys())
            needed = vs.quorum - len(faulty & members)
            across: dict[bytes, set[bytes]] = {}
            for (view, digest), senders in votes.items():
                if digest == committed:
                    continue
                if len(senders & members) >= needed:
                    self.safety.append(f"t={self.now}: a certificate for another block at "
                                       f"height {h} can be made from view {view}'s COMMITs")
                across.setdefault(digest, set()).update(senders & members)
            if h not in self.viewless_seen and any(len(s) >= needed for s in across.values()):
                self.viewless_seen.add(h)

    def _all_done(self) -> bool:
        if self.pending_txs:
            remaining = {t for t in self.pending_txs
                         if not all(n.store.get_tx_location(t) is not None
                                    for n in self.nodes if n.honest)}
            if remaining:
                return False
        heights = {n.chain.height for n in self.nodes if n.honest}
        return len(heights) == 1

    def _liveness_report(self) -> str:
        missing = sum(1 for t in self.pending_txs
                      if not all(n.store.get_tx_location(t) is not None
                                 for n in self.nodes if n.honest))
        heights = sorted(n.chain.height for n in self.nodes if n.honest)
        views = sorted(n.replica.view for n in self.nodes if n.honest and n.replica)
        return (f"after {self.deadline - self.fault_end} ms without faults: {missing} "
                f"transactions not committed everywhere; honest heights {heights}, views {views}")


def run_seed(seed: int, nodes: int = 4, byzantine: int = 1,
             replica_cls: type[Replica] = Replica, **kwargs: Any) -> SimResult:
    return Simulation(seed, nodes, byzantine, replica_cls, **kwargs).run()


def replay_command(seed: int, nodes: int, byzantine: int, mutant: str | None = None) -> str:
    extra = f" --mutant {mutant}" if mutant else ""
    return f"python -m consensus.sim --seed {seed} --nodes {nodes} --byzantine {byzantine}{extra}"




if __name__ == "__main__":
    import sys

    from consensus.simcli import main

    sys.exit(main())
