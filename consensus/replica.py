"""The PBFT replica: a pure state machine driven by messages, requests and time.

See the package docstring (:mod:`consensus`) for the protocol as a whole.
This module is the one place that dispatches on message type and phase;
pure calculations live in :mod:`consensus.newview`.

Interface (STYLE.md §1)::

    replica = Replica(chain, key, config)
    effects = replica.start(now_ms)
    effects = replica.receive(message, now_ms)
    effects = replica.submit(tx, now_ms)
    effects = replica.on_timer(now_ms)
    deadline = replica.next_deadline_ms()

Each call returns effects (:mod:`consensus.effects`) the driver carries out
in order before the next call. The replica reads the chain (to execute
proposals speculatively and to serve state transfer) but never writes it:
committed blocks leave as ``Append`` effects. Time only comes in as
``now_ms``; there is no randomness.

Seams that tests and the mutation check override are small methods:
:meth:`Replica.verify`, :meth:`Replica.commit_quorum`,
:meth:`Replica.in_watermarks`, :meth:`Replica.prepared_for_view_change`
and :meth:`Replica.persist`.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field, replace

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
    encode_spliced,
    sign,
    signed_bytes,
)
from consensus.newview import PREPARED_MAX, Selection, check_view_change, select
from ledger.block import (
    Block,
    CommitCertificate,
    CommitSignature,
    ValidatorSet,
    tx_root,
    verify_certificate,
)
from ledger.chain import Chain, Pending
from ledger.codec import decode, decode_value, encode, encode_value
from ledger.crypto import PrivateKey
from ledger.errors import DecodeError, InputError
from ledger.genesis import Genesis
from ledger.tx import Transaction

log = logging.getLogger("govledger.consensus")

# Persisted consensus-state keys (Store.put_consensus). Votes, prepared certificates and
# the primary's own pre-prepares are kept per height in flight, under one of PREPARED_MAX
# keys each (height mod PREPARED_MAX): at most that many heights are ever in flight, so a
# key is only overwritten once its height is executed, and the keys never grow in number.
K_VIEW = b"view"
K_NEW_VIEW = b"new_view"
# The stable checkpoint's proof (its 2f+1 CHECKPOINTs). Without it a replica restarted
# with every other replica knew no stable checkpoint, so its high watermark was the
# first window's: once the chain had outgrown that window no replica could propose or
# accept the next height, and no checkpoint could form to move it — the network stopped
# for good after a whole-network restart.
K_STABLE = b"stable"
# Before pipelining, one of each (the height after the last executed one): still read, so
# a node upgraded right after a crash keeps its word.
K_VOTE = b"vote"
K_PREPARED = b"prepared"
K_PRE_PREPARE = b"pre_prepare"


def vote_key(height: int) -> bytes:
    return b"vote/%d" % (height % PREPARED_MAX)


def prepared_key(height: int) -> bytes:
    return b"prepared/%d" % (height % PREPARED_MAX)


def pre_prepare_key(height: int) -> bytes:
    return b"pre_prepare/%d" % (height % PREPARED_MAX)


FETCH_WINDOW = 2  # ranges of fetch_blocks_max blocks in flight during state transfer

# A COMMIT for height c proves only that its sender executed c - COMMIT_LEAD: a replica
# votes up to pipeline_depth heights above its last executed block, and the depth is each
# node's own setting (at most PREPARED_MAX). Believing more — c - 1, right for one block
# in flight — had a pipelining network fetch blocks nobody had committed yet, and a
# primary stop proposing until it "caught up".
COMMIT_LEAD = PREPARED_MAX


@dataclass(frozen=True)
class ReplicaConfig:
    checkpoint_interval: int = 16
    watermark_window: int = 64
    batch_tx_max: int = 500
    batch_bytes_max: int = 4 * 1024 * 1024
    batch_timeout_ms: int = 10
    view_change_timeout_ms: int = 4000
    view_change_timeout_max_ms: int = 60_000
    block_time_skew_ms: int = 30_000
    retransmit_ms: int = 1000
    gossip_linger_ms: int = 5
    status_interval_ms: int = 5000
    fetch_timeout_ms: int = 2000
    fetch_blocks_max: int = 64
    mempool_max: int = 10_000
    # Heights in flight at once: with 2 or more the primary proposes height n + 1 as soon
    # as it is prepared at n; 1 waits for n to commit. Local (node.toml), not on the chain:
    # replicas with different depths interoperate (a backup holds a pre-prepare it may not
    # take yet). 1 by default: on the bench machine, four nodes sharing two cores, a
    # second height in flight bought no latency (bench/RESULTS.md, session 12).
    pipeline_depth: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.pipeline_depth <= PREPARED_MAX:
            raise ValueError(f"pipeline_depth must be 1..{PREPARED_MAX}")

    @classmethod
    def from_genesis(cls, genesis: Genesis, **overrides: int) -> ReplicaConfig:
        values = {name: v for name in ON_CHAIN
                  if isinstance(v := genesis.config_value(name), int)}
        values.update(overrides)
        k = values.get("checkpoint_interval", cls.checkpoint_interval)
        values.setdefault("watermark_window", 4 * k)
        return cls(**values)

    def with_chain_config(self, config: object) -> ReplicaConfig:
        """This configuration with the committee's current on-chain settings applied."""
        if not isinstance(config, dict):
            return self
        changes = {name: v for name in ON_CHAIN if name != "checkpoint_interval"
                   and isinstance(v := config.get(name), int) and v > 0}
        return replace(self, **changes)


# Settings that live on the chain (genesis, then committee decisions).
ON_CHAIN = ("checkpoint_interval", "batch_tx_max", "batch_bytes_max", "batch_timeout_ms",
            "view_change_timeout_ms", "block_time_skew_ms")


@dataclass
class Slot:
    """Everything about one height above the last executed block."""

    pre_prepare: PrePrepare | None = None  # accepted, in the current view
    digest: bytes | None = None
    pending: Pending | None = None
    waiting: PrePrepare | None = None  # arrived before we could take it (see _may_accept)
    waiting_reproposal: bool = False
    # Whether the next height may be taken before this one is executed: the block changes
    # neither the on-chain settings nor the validator set (None: not asked yet).
    extendable: bool | None = None
    prepares: dict[int, dict[bytes, Prepare]] = field(default_factory=dict)
    commits: dict[int, dict[bytes, Commit]] = field(default_factory=dict)
    commit_sent_view: int | None = None


class Replica:
    def __init__(self, chain: Chain, key: PrivateKey, config: ReplicaConfig) -> None:
        self.chain = chain
        self.suite = chain.suite
        self.chain_id = chain.chain_id
        self.key = key
        self.me = key.public_key().raw
        # On-chain settings as of now: those the committee changed since genesis apply over
        # ``config`` (a restarted replica must not fall back to the genesis values); a later
        # decision is applied when the block that made it is executed (see _reconfigure).
        self._config_raw: bytes | None = chain.reader()(b"sys/config")
        self.config = config.with_chain_config(self._changed_since_genesis(chain.genesis))
        self.executed = chain.height
        self.tip: Pending | None = None
        self.validators: ValidatorSet = chain.validators_for(self.executed + 1)
        self.view = 0
        self.vc_target: int | None = None
        # Per height above the last executed one: our vote (view, digest, phase), our
        # prepared certificate (of the latest view we prepared in), our own pre-prepare.
        self.votes: dict[int, tuple[int, bytes, str]] = {}
        self.prepared: dict[int, PreparedCert] = {}
        self.own_pre_prepares: dict[int, PrePrepare] = {}
        self.new_view_msg: NewView | None = None
        self.slots: dict[int, Slot] = {}
        self.stable = 0
        self.stable_proof: list[Checkpoint] = []
        self.checkpoints: dict[int, dict[bytes, Checkpoint]] = {}
        self.view_changes: dict[bytes, ViewChange] = {}
        self.status_heights: dict[bytes, int] = {}
        self.commit_heights: dict[bytes, int] = {}
        self.catchup_target = 0
        self.fetch_deadline: int | None = None
        self.fetch_turn = 0
        self.fetch_peer: bytes | None = None
        # State transfer keeps two ranges in flight (FETCH_WINDOW): while one range is
        # applied, the next is already on its way and being signature-checked by the
        # driver. Requests always start right after the last block we hold, so a short
        # answer (the peer's byte limit) leaves no gap. fetch_asked: outstanding requests'
        # first heights; fetch_upto: the highest height asked for.
        self.fetch_asked: set[int] = set()
        self.fetch_upto = 0
        self.request_deadline: int | None = None
        self.vc_deadline: int | None = None
        self.vc_timeout = self.config.view_change_timeout_ms
        # The request timer's own timeout: doubled each time it expires, so a network whose
        # blocks take longer than view_change_timeout_ms under load stops changing views
        # once it waits long enough; halved back when blocks commit well within it.
        self.request_timeout = self.config.view_change_timeout_ms
        self.retransmit_deadline: int | None = None
        self.status_deadline: int | None = None
        # Transactions waiting to be ordered, oldest first, and those in a block in flight
        # (taken, not yet executed): moved back to the pool if their block is abandoned.
        self.mempool: OrderedDict[bytes, tuple[Transaction, int]] = OrderedDict()
        self.in_flight: dict[bytes, tuple[Transaction, int]] = {}
        self.gossip_out: list[Transaction] = []
        self.gossip_deadline: int | None = None
        self.tx_verified: OrderedDict[bytes, None] = OrderedDict()
        # Signatures (key, purpose, message, sig) the driver checked already, in a worker
        # process: the commit certificates of fetched blocks (see Node._on_peer_message).
        self.sigs_verified: OrderedDict[tuple[bytes, str, bytes, bytes], None] = OrderedDict()
        # pipelined: pre-prepares taken while the height below was still in flight.
        self.stats: dict[str, int] = {"view_changes": 0, "dropped": 0, "blocks_fetched": 0,
                                      "pipelined": 0, "dropped_txs": 0}
        self._full_warned = False
        self.last_cert: CommitCertificate | None = (
            chain.store.get_certificate(self.executed) if self.executed > 0 else None
        )
        self._load_persisted()

    # -- persisted state ------------------------------------------------------------------

    def _load_persisted(self) -> None:
        store = self.chain.store
        try:
            raw = store.get_consensus(K_VIEW)
            if raw is not None:
                value = decode_value(raw)
                assert isinstance(value, dict)
                view, target = value["view"], value["vc_target"]
                assert isinstance(view, int) and (target is None or isinstance(target, int))
                self.view, self.vc_target = view, target
            slots = range(PREPARED_MAX)
            for raw in [store.get_consensus(K_VOTE),
                        *(store.get_consensus(b"vote/%d" % i) for i in slots)]:
                if raw is not None:
                    value = decode_value(raw)
                    assert isinstance(value, list) and len(value) == 4
                    v, h, d, phase = value
                    assert isinstance(v, int) and isinstance(h, int)
                    assert isinstance(d, bytes) and isinstance(phase, str)
                    if h > self.executed and v >= self.votes.get(h, (-1,))[0]:
                        self.votes[h] = (v, d, phase)
            highest = self.executed + PREPARED_MAX
            for raw in [store.get_consensus(K_PREPARED),
                        *(store.get_consensus(b"prepared/%d" % i) for i in slots)]:
                if raw is not None:
                    prepared = decode(raw, PreparedCert)
                    h = prepared.pre_prepare.height
                    held = self.prepared.get(h)
                    if self.executed < h <= highest and (
                            held is None or held.pre_prepare.view < prepared.pre_prepare.view):
                        self.prepared[h] = prepared
            for raw in [store.get_consensus(K_PRE_PREPARE),
                        *(store.get_consensus(b"pre_prepare/%d" % i) for i in slots)]:
                if raw is not None:
                    pp = decode(raw, PrePrepare)
                    if self.executed < pp.height <= highest and pp.view == self.view:
                        self.own_pre_prepares[pp.height] = pp
            raw = store.get_consensus(K_NEW_VIEW)
            if raw is not None:
                nv = self.new_view_msg = decode(raw, NewView)
                if nv.view == self.view:
                    # The heights its VIEW-CHANGEs prove committed are settled in this view:
                    # we fetch them, and nobody proposes them again (a primary restarted
                    # without this proposed a fresh block at a committed height).
                    self.catchup_target = max(self.catchup_target,
                                              select(nv.view_changes, self.digest_of).committed)
                    # Our own NEW-VIEW's re-proposals are our pre-prepares of this view too:
                    # a primary restarted without them proposed fresh blocks at their
                    # heights — two pre-prepares for one (view, height).
                    for pp in nv.pre_prepares if nv.sender == self.me else []:
                        if self.executed < pp.height <= highest:
                            self.own_pre_prepares.setdefault(pp.height, pp)
            raw = store.get_consensus(K_STABLE)
            if raw is not None:
                proof = decode(raw, list[Checkpoint])
                assert proof and len({(c.height, c.digest) for c in proof}) == 1
                # Written after the block it proves was appended, so never above executed.
                if 0 < proof[0].height <= self.executed:
                    self.stable, self.stable_proof = proof[0].height, proof
        except (DecodeError, AssertionError, KeyError) as exc:
            raise InputError(f"persisted consensus state is unreadable: {exc}") from None

    def _changed_since_genesis(self, genesis: Genesis) -> dict[str, object]:
        if self._config_raw is None:
            return {}
        current = decode_value(self._config_raw)
        if not isinstance(current, dict):
            return {}
        initial = {name: genesis.config_value(name) for name in ON_CHAIN}
        return {k: v for k, v in current.items() if k in initial and initial[k] != v}

    def persist(self, changes: dict[bytes, bytes | None]) -> list[Effect]:
        """Seam: the Persist effect that must precede a vote (see effects.py)."""
        return [Persist(changes)]

    def _view_record(self) -> dict[bytes, bytes | None]:
        return {K_VIEW: encode_value({"view": self.view, "vc_target": self.vc_target})}

    # -- helpers ----------------------------------------------------------------------------

    @property
    def f(self) -> int:
        return self.validators.f

    @property
    def quorum(self) -> int:
        return self.validators.quorum

    def commit_quorum(self) -> int:
        """Seam: COMMITs needed to commit locally (a quorum, 2f+1 for n = 3f+1)."""
        return self.validators.quorum

    def primary(self, view: int | None = None) -> bytes:
        v = self.view if view is None else view
        return self.validators.validators[v % self.validators.size].public_key

    @property
    def is_validator(self) -> bool:
        return self.validators.index_of(self.me) is not None

    def in_watermarks(self, height: int) -> bool:
        """Seam: h < height <= H, with h the stable checkpoint and H = h + L."""
        return self.stable < height <= self.stable + self.config.watermark_window

    def verify(self, msg: Message) -> bool:
        """Seam: the message's signature is valid for its sender (a COMMIT's: over its
        commit-certificate bytes, see :mod:`consensus.messages`)."""
        purpose, message = signed_bytes(msg, self.chain_id)
        return self.suite.verify(msg.sender, purpose, message, msg.sig)

    def digest_of(self, block: Block) -> bytes:
        return block.header.block_hash(self.suite)

    def body_ok(self, block: Block) -> bool:
        return tx_root(self.suite, block.txs) == block.header.tx_root

    def _sign(self, msg: Message) -> Message:
        return sign(msg, self.key, self.chain_id)

    def _parent(self) -> Pending | None:
        if self.tip is not None and self.tip.header.height == self.executed:
            return self.tip
        return None

    def _parent_for(self, height: int) -> Pending | None:
        """The pending block ``height`` extends (None: the committed head). Above the next
        height only for heights _may_accept allows, whose parent's slot holds its block."""
        if height == self.executed + 1:
            return self._parent()
        below = self.slots.get(height - 1)
        assert below is not None and below.pending is not None
        return below.pending

    def _may_accept(self, height: int) -> bool:
        """Whether a pre-prepare for ``height`` may be taken (executed, voted on) now.

        The next height always may. One above it only within ``pipeline_depth`` and once
        this replica is prepared, in the current view, at the height below — on the block
        the new one must extend (check_proposal checks the link) — and only if that block
        changes neither the settings nor the validator set the new one is judged by. This
        is what keeps a run of prepared certificates safe through a view change (see
        :mod:`consensus.newview`).
        """
        if height == self.executed + 1:
            return True
        if height > self.executed + self.config.pipeline_depth:
            return False
        below = self.slots.get(height - 1)
        return (below is not None and below.pending is not None
                and below.commit_sent_view == self.view and self._extendable(below))

    def _extendable(self, slot: Slot) -> bool:
        if slot.extendable is None:
            pending = slot.pending
            assert pending is not None
            height = pending.header.height
            slot.extendable = (
                b"sys/config" not in pending.execution.state_changes
                and self.chain.validators_for(height + 1, pending).public_keys()
                == self.validators.public_keys())
        return slot.extendable

    def _status(self) -> Status:
        st = self._sign(Status(self.executed, self.view, self.stable, b""))
        assert isinstance(st, Status)
        return st

    def _time_of(self, parent: Pending | None) -> int:
        return parent.header.time if parent is not None else self.chain.head().time

    def _drop(self, msg: Message, why: str) -> list[Effect]:
        self.stats["dropped"] += 1
        log.debug("v%d h%d: ignoring %s from %s: %s", self.view, self.executed,
                  type(msg).__name__, msg.sender[-4:].hex(), why)
        return []

    def _verified_key(self, tx: Transaction) -> bytes:
        # The id covers the body only: key the cache on the signature too, so a copy of a
        # verified transaction carrying a forged signature is never taken as verified.
        return tx.tx_id(self.suite) + tx.sig

    def is_verified(self, tx: Transaction) -> bool:
        return self._verified_key(tx) in self.tx_verified

    def note_verified(self, tx: Transaction) -> None:
        """The driver checked this transaction's signature already (e.g. in a worker process)."""
        self.tx_verified[self._verified_key(tx)] = None
        if len(self.tx_verified) > 4 * self.config.mempool_max:
            self.tx_verified.popitem(last=False)

    def note_sig_verified(self, key: bytes, purpose: str, message: bytes, sig: bytes) -> None:
        """The driver checked this signature already (e.g. in a worker process)."""
        self.sigs_verified[(key, purpose, message, sig)] = None
        if len(self.sigs_verified) > 64 * self.config.fetch_blocks_max:
            self.sigs_verified.popitem(last=False)

    def sig_ok(self, key: bytes, purpose: str, message: bytes, sig: bytes) -> bool:
        """One signature check, answered from the driver's checks when it made them."""
        if self.sigs_verified.pop((key, purpose, message, sig), 0) is None:
            return True
        return self.suite.verify(key, purpose, message, sig)

    def tx_signature_ok(self, tx: Transaction) -> bool:
        if self.is_verified(tx):
            return True
        if tx.chain_id != self.chain_id or not tx.signature_ok(self.suite):
            return False
        self.note_verified(tx)
        return True

    def _set_for(self, height: int) -> ValidatorSet:
        """The set voting on block ``height``; for heights beyond our head, our current set."""
        if height <= self.executed + 1:
            return self.chain.validators_for(height, self.tip)
        return self.validators

    # -- public interface -------------------------------------------------------------------

    def _enter(self) -> None:
        assert self.chain.height == self.executed, "driver did not append committed blocks"
        self.tip = None
        # A block taken while its parent was in flight links to the parent's pending
        # record; once that parent is appended the store serves its state, and the link
        # would keep every appended block's record alive in a long pipelined run.
        slot = self.slots.get(self.executed + 1)
        if slot is not None and slot.pending is not None and slot.pending.parent is not None:
            slot.pending.parent = None

    def start(self, now_ms: int) -> list[Effect]:
        """Announce ourselves after (re)start: status, and an unfinished view change or proposal."""
        self._enter()
        effects: list[Effect] = [Broadcast(self._status()), *self._sign_recent_checkpoints()]
        self.status_deadline = now_ms + self.config.status_interval_ms
        if self.vc_target is not None:
            vc = self._my_view_change(self.vc_target)
            self.view_changes[self.me] = vc
            self.retransmit_deadline = now_ms + self.config.retransmit_ms
            effects.append(Broadcast(vc))
            self._note_vc_quorum(now_ms)
        elif self.own_pre_prepares and self.primary() == self.me:
            # Re-offer exactly the blocks we proposed before the restart, never others.
            for height in sorted(self.own_pre_prepares):
                pp = self.own_pre_prepares[height]
                slot = self.slots.setdefault(height, Slot())
                slot.waiting, slot.waiting_reproposal = pp, True
                effects.append(Broadcast(pp))
            effects += self._release(self.executed + 1, now_ms)
        effects += self._progress(now_ms)
        return effects

    def submit(self, tx: Transaction, now_ms: int) -> list[Effect]:
        """A transaction admitted by this node: pool it and gossip it to the others.

        Gossip is batched: transactions wait up to ``gossip_linger_ms`` (or until
        ``batch_tx_max`` are waiting) and leave in one message.
        """
        self._enter()
        if not self._pool(tx, now_ms):
            return []
        self.gossip_out.append(tx)
        if self.gossip_deadline is None:
            self.gossip_deadline = now_ms + self.config.gossip_linger_ms
        effects: list[Effect] = []
        if (len(self.gossip_out) >= self.config.batch_tx_max
                or self.config.gossip_linger_ms == 0):
            effects += self._flush_gossip()
        return effects + self._progress(now_ms)

    def flush_gossip(self) -> list[Effect]:
        """Send the transactions waiting for company now. The driver calls this when it
        has nothing else to do: the linger exists to batch transactions that arrive
        together, and an idle node has no more coming in this instant (a busy one keeps
        lingering and batching)."""
        self._enter()
        return self._flush_gossip()

    def _flush_gossip(self) -> list[Effect]:
        self.gossip_deadline = None
        if not self.gossip_out:
            return []
        txs, self.gossip_out = self.gossip_out, []
        return [Broadcast(TxGossip(txs, self.me, b""))]

    def receive(self, msg: Message, now_ms: int) -> list[Effect]:
        self._enter()
        # Checkpoints are judged against the set of their own height (see _check_stable).
        open_kinds = (Status, FetchBlocks, Blocks, Checkpoint)
        if not isinstance(msg, open_kinds) and self.validators.index_of(msg.sender) is None:
            return self._drop(msg, "sender is not a validator")
        if msg.sender == self.me:
            return self._drop(msg, "from ourselves")
        if isinstance(msg, Checkpoint) and (
                msg.height <= self.stable or msg.height % self.config.checkpoint_interval != 0):
            # Discarded unread (PBFT.md): checking its signature first would let a replica
            # catching up — or anyone — make us verify old checkpoints by the thousand.
            return self._drop(msg, "at or below the stable checkpoint, or not a checkpoint height")
        if self._vote_is_moot(msg):
            return self._drop(msg, "a vote that can change nothing here any more")
        if not isinstance(msg, TxGossip) and not self.verify(msg):
            return self._drop(msg, "bad signature")
        effects: list[Effect]
        if isinstance(msg, PrePrepare):
            effects = self._on_pre_prepare(msg, now_ms)
        elif isinstance(msg, Prepare):
            effects = self._on_prepare(msg, now_ms)
        elif isinstance(msg, Commit):
            effects = self._on_commit(msg, now_ms)
        elif isinstance(msg, Checkpoint):
            effects = self._on_checkpoint(msg, now_ms)
        elif isinstance(msg, ViewChange):
            effects = self._on_view_change(msg, now_ms)
        elif isinstance(msg, NewView):
            effects = self._on_new_view(msg, now_ms)
        elif isinstance(msg, Status):
            effects = self._on_status(msg, now_ms)
        elif isinstance(msg, FetchBlocks):
            effects = self._on_fetch(msg)
        elif isinstance(msg, Blocks):
            effects = self._on_blocks(msg, now_ms)
        else:
            effects = self._on_gossip(msg, now_ms)
        return effects + self._progress(now_ms)

    def _vote_is_moot(self, msg: Message) -> bool:
        """A PREPARE or COMMIT for a height already executed, or a PREPARE for a height at
        which we sent our COMMIT in this view: the handlers would only drop or ignore it, so
        it is dropped before its signature check. With n = 4, one PREPARE and one COMMIT of
        every block arrive after the quorum they could have joined — two of a replica's
        eight vote signature checks per block."""
        if not isinstance(msg, (Prepare, Commit)):
            return False
        if msg.height <= self.executed:
            return True
        if isinstance(msg, Prepare) and msg.view == self.view and self.vc_target is None:
            slot = self.slots.get(msg.height)
            return slot is not None and slot.commit_sent_view == self.view
        return False

    def on_timer(self, now_ms: int) -> list[Effect]:
        self._enter()
        effects: list[Effect] = []
        # Every expired deadline is cleared or moved before acting on it.
        if self.gossip_deadline is not None and now_ms >= self.gossip_deadline:
            effects += self._flush_gossip()
        if self.vc_deadline is not None and now_ms >= self.vc_deadline:
            self.vc_deadline = None
            if self.vc_target is not None:
                # The view change to vc_target did not complete in time: try the next view,
                # waiting twice as long (exponential backoff so views do not churn forever).
                self.vc_timeout = min(2 * self.vc_timeout, self.config.view_change_timeout_max_ms)
                effects += self._start_view_change(self.vc_target + 1, now_ms)
        if self.request_deadline is not None and now_ms >= self.request_deadline:
            self.request_deadline = None
            if self.vc_target is None and self.is_validator:
                log.info("v%d h%d: no block committed in %d ms with transactions waiting; "
                         "starting view change (the next view gets %d ms)", self.view,
                         self.executed, self.request_timeout, self._backed_off())
                effects += self._start_view_change(self.view + 1, now_ms)
        if self.retransmit_deadline is not None and now_ms >= self.retransmit_deadline:
            again = self._retransmit()
            effects += again
            self.retransmit_deadline = now_ms + self.config.retransmit_ms if again else None
        if self.status_deadline is not None and now_ms >= self.status_deadline:
            effects.append(Broadcast(self._status()))
            self.status_deadline = now_ms + self.config.status_interval_ms
        if self.fetch_deadline is not None and now_ms >= self.fetch_deadline:
            self.fetch_deadline = None
        return effects + self._progress(now_ms)

    def next_deadline_ms(self) -> int | None:
        deadlines = [d for d in (self.request_deadline, self.vc_deadline, self.retransmit_deadline,
                                 self.status_deadline, self.fetch_deadline, self.gossip_deadline)
                     if d is not None]
        batch = self._batch_deadline()
        if batch is not None:
            deadlines.append(batch)
        return min(deadlines) if deadlines else None

    # -- mempool and proposing ------------------------------------------------------------

    def holds(self, tx_id: bytes) -> bool:
        """Whether a transaction is pooled or in a block in flight (not yet executed)."""
        return tx_id in self.mempool or tx_id in self.in_flight

    def settled(self, tx_id: bytes) -> bool:
        """Pooled, in flight or committed: a copy of it (gossiped late, or replayed) can
        change nothing, whatever its signature, so nobody need check that."""
        return self.holds(tx_id) or self.chain.store.get_tx_location(tx_id) is not None

    @property
    def pool_size(self) -> int:
        return len(self.mempool) + len(self.in_flight)

    def pool_full(self) -> bool:
        """Whether the pool takes no more transactions (warned once per time it fills)."""
        full = self.pool_size >= self.config.mempool_max
        if full and not self._full_warned:
            log.warning("mempool full (%d transactions): dropping new ones until blocks make "
                        "room", self.pool_size)
        self._full_warned = full
        return full

    def _pool(self, tx: Transaction, now_ms: int) -> bool:
        tx_id = tx.tx_id(self.suite)
        if self.settled(tx_id):
            return False
        if self.pool_full():
            self.stats["dropped_txs"] += 1
            return False
        self._add_to_pool(tx_id, tx, now_ms)
        return True

    def _add_to_pool(self, tx_id: bytes, tx: Transaction, now_ms: int) -> None:
        self.mempool[tx_id] = (tx, now_ms)
        if self.request_deadline is None and self.is_validator:
            self.request_deadline = now_ms + self.request_timeout

    def _proposal_height(self) -> int | None:
        """The height we would propose now as primary, or None. Asked several times per
        event (the timer's deadline, the proposer): a few slot lookups."""
        if (self.vc_target is not None or self.primary() != self.me
                or self.executed < self.catchup_target):
            return None
        height = self.executed + 1
        while True:
            slot = self.slots.get(height)
            if slot is None or (slot.pre_prepare is None and slot.waiting is None):
                break
            if slot.pre_prepare is None or not self._may_accept(height + 1):
                return None  # a block in flight we may not extend yet
            height += 1
        return height if self.in_watermarks(height) else None

    def _take(self, pp: PrePrepare, digest: bytes, pending: Pending, now_ms: int) -> Slot:
        """A block is taken into its slot (proposed by us or accepted from the primary): its
        transactions are in flight, not waiting (nor to be pooled again: they would be
        proposed twice)."""
        slot = self.slots.setdefault(pp.height, Slot())
        slot.pre_prepare, slot.digest, slot.pending, slot.waiting = pp, digest, pending, None
        slot.extendable = None
        block = pp.block
        for tx in block.txs:
            tx_id = tx.tx_id(self.suite)
            pooled = self.mempool.pop(tx_id, None)
            self.in_flight[tx_id] = pooled if pooled is not None else (tx, block.header.time)
        if pp.height > self.executed + 1:
            self.stats["pipelined"] += 1
        # We hold requests now, whether or not gossip brought them first: if this block
        # never commits (a primary withholding its COMMIT from all but one backup) the
        # timer is what moves us to the next view. Armed only by pooling, a backup that
        # learnt the block's transactions from the pre-prepare waited for ever.
        if self.request_deadline is None and self.is_validator and self.vc_target is None:
            self.request_deadline = now_ms + self.request_timeout
        return slot

    def _batch_deadline(self) -> int | None:
        if not self.mempool or self._proposal_height() is None:
            return None
        return self._oldest_deadline()

    def _oldest_deadline(self) -> int:
        oldest = next(iter(self.mempool.values()))[1]
        return oldest + self.config.batch_timeout_ms

    def _take_batch(self, time_ms: int) -> list[Transaction]:
        batch: list[Transaction] = []
        size = 0
        stale = []
        for tx_id, (tx, _) in self.mempool.items():
            if tx.valid_until < time_ms or self.chain.store.get_tx_location(tx_id) is not None:
                stale.append(tx_id)
                continue
            tx_size = len(tx.encoded())
            if batch and size + tx_size > self.config.batch_bytes_max:
                break
            batch.append(tx)
            size += tx_size
            if len(batch) >= self.config.batch_tx_max:
                break
        for tx_id in stale:
            del self.mempool[tx_id]
        return batch

    def _maybe_propose(self, now_ms: int) -> list[Effect]:
        if not self.mempool:
            return []
        height = self._proposal_height()
        if height is None:
            return []
        full = len(self.mempool) >= self.config.batch_tx_max
        if not full and now_ms < self._oldest_deadline():
            return []
        parent = self._parent_for(height)
        time_ms = max(now_ms, self._time_of(parent) + 1)
        txs = self._take_batch(time_ms)
        if not txs:
            return []
        pending = self.chain.propose(txs, time_ms, self.view, self.me, parent,
                                     self.tx_signature_ok)
        pp = self._sign(PrePrepare(self.view, pending.header.height, pending.block, b""))
        assert isinstance(pp, PrePrepare)
        self._take(pp, self.digest_of(pp.block), pending, now_ms)
        self.own_pre_prepares[pp.height] = pp
        self.retransmit_deadline = now_ms + self.config.retransmit_ms
        log.debug("v%d: proposing block %d with %d txs", self.view, pp.height, len(txs))
        effects = self.persist({pre_prepare_key(pp.height): encode_spliced(pp)})
        return [*effects, Broadcast(pp), *self._check_prepared(pp.height, now_ms)]

    # -- normal case --------------------------------------------------------------------------

    def _on_pre_prepare(self, pp: PrePrepare, now_ms: int) -> list[Effect]:
        if self.vc_target is not None:
            return self._drop(pp, "in a view change")
        if pp.view != self.view:
            return self._drop(pp, f"for view {pp.view}")
        if pp.sender != self.primary():
            return self._drop(pp, "not from the primary")
        if pp.height <= self.executed:
            return self._drop(pp, "height already executed")
        if pp.height <= self.catchup_target:
            # f + 1 replicas (one of them correct), a stable checkpoint or the NEW-VIEW say
            # that height is committed: we fetch that block, we take no other.
            return self._drop(pp, "height committed elsewhere: fetching it")
        if not self.in_watermarks(pp.height):
            return self._drop(pp, "outside the watermarks")
        slot = self.slots.setdefault(pp.height, Slot())
        if slot.pre_prepare is not None or slot.waiting is not None:
            held = slot.pre_prepare or slot.waiting
            assert held is not None
            if self.digest_of(held.block) != self.digest_of(pp.block):
                log.warning("v%d: primary sent two different pre-prepares for height %d",
                            self.view, pp.height)
            return []
        if not self._may_accept(pp.height):
            # Held until we are prepared at its parent, or its parent is executed. One
            # primary's word is not proof that we are behind: f+1 statuses, checkpoints or
            # commits are (see _update_catchup_from).
            slot.waiting = pp
            return []
        return self._accept_pre_prepare(pp, now_ms, fresh=True)

    def _release(self, height: int, now_ms: int) -> list[Effect]:
        """Take the pre-prepare held for ``height`` if it may be taken now.

        Never in a view change: a replica that has sent VIEW-CHANGE votes in no older view.
        (A pre-prepare held for its parent, taken when state transfer executed that parent,
        once had a replica PREPARE and COMMIT in view v after telling the new primary it was
        prepared at nothing — and the new view re-proposed another block at that height.)
        """
        slot = self.slots.get(height)
        if (slot is None or slot.waiting is None or self.vc_target is not None
                or not self._may_accept(height)):
            return []
        waiting, fresh = slot.waiting, not slot.waiting_reproposal
        slot.waiting, slot.waiting_reproposal = None, False
        if waiting.sender != self.primary(waiting.view):
            # Held under the old validator set; the new set has another primary.
            return self._drop(waiting, "its sender is not the primary of the new set")
        return self._accept_pre_prepare(waiting, now_ms, fresh=fresh)

    def _accept_pre_prepare(self, pp: PrePrepare, now_ms: int, fresh: bool) -> list[Effect]:
        """Validate and execute a pre-prepare _may_accept allows; vote PREPARE if we are a
        backup."""
        block, header = pp.block, pp.block.header
        if header.height != pp.height:
            return self._drop(pp, "block height differs from the pre-prepare")
        digest = self.digest_of(block)
        parent = self._parent_for(pp.height)
        parent_time = self._time_of(parent)
        if fresh:
            if header.view != pp.view or header.proposer != pp.sender:
                return self._drop(pp, "block names another view or proposer")
            if header.time <= parent_time:
                return self._drop(pp, "block time is not after its parent's")
            if abs(header.time - now_ms) > self.config.block_time_skew_ms:
                return self._drop(pp, f"block time is {header.time - now_ms} ms off our clock")
        if len(block.txs) > self.config.batch_tx_max:
            return self._drop(pp, "too many transactions")
        voted = self.votes.get(pp.height)
        if voted is not None and voted[0] == self.view and voted[1] != digest:
            return self._drop(pp, "we already voted for another block at this view and height")
        if not all(self.tx_signature_ok(tx) for tx in block.txs):
            return self._drop(pp, "a transaction signature does not verify")
        try:
            pending = self.chain.check_proposal(block, parent, self.tx_signature_ok)
        except InputError as exc:
            return self._drop(pp, str(exc))
        slot = self._take(pp, digest, pending, now_ms)
        self.retransmit_deadline = now_ms + self.config.retransmit_ms
        effects: list[Effect] = []
        if pp.sender != self.me and self.primary() != self.me and self.is_validator:
            effects += self.persist(self._vote_record(pp.height, digest, "prepare"))
            prepare = self._sign(Prepare(self.view, pp.height, digest, b""))
            effects.append(Broadcast(prepare))
            assert isinstance(prepare, Prepare)
            slot.prepares.setdefault(self.view, {})[self.me] = prepare
        return effects + self._check_prepared(pp.height, now_ms)

    def _on_prepare(self, p: Prepare, now_ms: int) -> list[Effect]:
        if self.vc_target is not None or p.view != self.view:
            return self._drop(p, "not for the current view")
        if p.sender == self.primary():
            return self._drop(p, "the primary does not send prepares")
        if not self.in_watermarks(p.height):  # executed heights: dropped by receive()
            return self._drop(p, "height outside the window")
        slot = self.slots.setdefault(p.height, Slot())
        slot.prepares.setdefault(p.view, {}).setdefault(p.sender, p)
        return self._check_prepared(p.height, now_ms)

    def _check_prepared(self, height: int, now_ms: int) -> list[Effect]:
        slot = self.slots.get(height)
        if slot is None or slot.pre_prepare is None or slot.commit_sent_view == self.view:
            return []
        if not self.is_validator:
            return []
        primary = self.primary()
        matching = [p for s, p in slot.prepares.get(self.view, {}).items()
                    if p.digest == slot.digest and s != primary]
        if len(matching) < self.quorum - 1:
            return []
        assert slot.digest is not None
        cert = PreparedCert(slot.pre_prepare, sorted(matching, key=lambda p: p.sender))
        self.prepared[height] = cert
        slot.commit_sent_view = self.view
        commit = self._sign(Commit(self.view, height, slot.digest, b""))
        assert isinstance(commit, Commit)
        slot.commits.setdefault(self.view, {})[self.me] = commit
        effects = self.persist({**self._vote_record(height, slot.digest, "commit"),
                                prepared_key(height): encode_spliced(cert)})
        # Prepared here: the next height may be taken (pipelining, see _may_accept).
        return [*effects, Broadcast(commit), *self._check_committed(height, now_ms),
                *self._release(height + 1, now_ms)]

    def _vote_record(self, height: int, digest: bytes, phase: str) -> dict[bytes, bytes | None]:
        """Note our vote at ``height`` in this view; the Persist changes that record it."""
        self.votes[height] = (self.view, digest, phase)
        return {vote_key(height): encode_value([self.view, height, digest, phase])}

    def _on_commit(self, c: Commit, now_ms: int) -> list[Effect]:
        # receive() has dropped those for heights already executed (_vote_is_moot) and
        # checked the signature, which is the one its certificate will carry.
        # Commits far enough above our head tell us others are ahead (see COMMIT_LEAD).
        if c.height - COMMIT_LEAD > self.executed:
            self.commit_heights[c.sender] = max(self.commit_heights.get(c.sender, 0), c.height)
            self._update_catchup_from(self.commit_heights, offset=-COMMIT_LEAD)
        if self.vc_target is not None or c.view != self.view:
            return self._drop(c, "not for the current view")
        if not self.in_watermarks(c.height):
            return self._drop(c, "outside the watermarks")
        slot = self.slots.setdefault(c.height, Slot())
        slot.commits.setdefault(c.view, {}).setdefault(c.sender, c)
        return self._check_committed(c.height, now_ms)

    def _check_committed(self, height: int, now_ms: int) -> list[Effect]:
        slot = self.slots.get(height)
        if (slot is None or height != self.executed + 1 or slot.pending is None
                or slot.commit_sent_view != self.view):
            return []
        matching = [c for c in slot.commits.get(self.view, {}).values() if c.digest == slot.digest]
        if len(matching) < self.commit_quorum():
            return []
        order = {k: i for i, k in enumerate(self.validators.public_keys())}
        sigs = [CommitSignature(c.sender, c.sig)
                for c in sorted(matching, key=lambda c: order.get(c.sender, 1 << 30))]
        assert slot.digest is not None
        cert = CommitCertificate(height, self.view, slot.digest, sigs)
        return self._execute(slot.pending, cert, now_ms)

    def _execute(self, pending: Pending, cert: CommitCertificate, now_ms: int) -> list[Effect]:
        """The block at executed+1 is committed: append it and move on."""
        height = pending.header.height
        assert height == self.executed + 1
        effects: list[Effect] = [Append(pending, cert)]
        self.executed, self.tip, self.last_cert = height, pending, cert
        slot = self.slots.pop(height, None)
        if slot is not None and slot.pending is not None and slot.digest != cert.block_hash:
            # Another block than the one we took here was committed (state transfer past a
            # faulty primary's): what we took above it extends the wrong parent.
            self._abandon_above(height)
        for done in (self.prepared, self.own_pre_prepares, self.votes):
            for h in [h for h in done if h <= height]:
                del done[h]
        for tx in pending.block.txs:
            tx_id = tx.tx_id(self.suite)
            self.mempool.pop(tx_id, None)
            self.in_flight.pop(tx_id, None)
            # Committed: nothing will need its signature again (a copy is a duplicate),
            # so the record of checks holds what is pending, not the whole recent history.
            self.tx_verified.pop(tx_id + tx.sig, None)
        self._relax_request_timeout(now_ms)
        busy = (self.mempool or self.in_flight) and self.is_validator and self.vc_target is None
        self.request_deadline = now_ms + self.request_timeout if busy else None
        if self.vc_target is None and not self._in_flight_above(height):
            self.retransmit_deadline = None  # nothing in flight any more
        self.commit_heights = {k: h for k, h in self.commit_heights.items()
                               if h - COMMIT_LEAD > height}
        # A checkpoint is signed by the set that voted on its block, before any change
        # that takes effect at the next height.
        voted = self.is_validator
        self._reconfigure(height)
        if height % self.config.checkpoint_interval == 0:
            if voted and not self._checkpoint_is_old_news(height):
                effects.append(self._own_checkpoint(height, pending.header.state_root,
                                                    cert.block_hash))
            effects += self._check_stable(height)
        # The next height: a pre-prepare held for this one's execution, or one taken while
        # this one was in flight whose commit quorum may be complete already.
        effects += self._release(height + 1, now_ms)
        effects += self._check_committed(height + 1, now_ms)
        return effects

    def _backed_off(self) -> int:
        return min(2 * self.request_timeout, self.config.view_change_timeout_max_ms)

    def _relax_request_timeout(self, now_ms: int) -> None:
        """A block committed: if it came within a quarter of the request timeout of the
        timer's start (the previous commit, or the first transaction waiting), halve a
        timeout that view changes raised (each doubles it). Under load that made blocks
        slower than the base timeout, they stay slower than a quarter of the raised one,
        so it holds and views stop churning (PBFT.md: timers that never back off); once
        blocks are quick again it is back to the base in a few of them. Only leaving a
        view raises it, so a faulty primary cannot; after load has raised it, one that
        commits just inside it can keep it there — blocks at most as slow as the raised
        timeout, under twice the slow blocks' time — where the base would have replaced
        it sooner."""
        base = self.config.view_change_timeout_ms  # the chain's settings may have moved
        timeout = max(base, min(self.request_timeout, self.config.view_change_timeout_max_ms))
        if (timeout > base and self.request_deadline is not None
                and 4 * (now_ms - (self.request_deadline - self.request_timeout)) <= timeout):
            timeout = max(base, timeout // 2)
        self.request_timeout = timeout

    def _in_flight_above(self, height: int) -> bool:
        return any((slot := self.slots.get(h)) is not None and slot.pre_prepare is not None
                   for h in range(height + 1, height + 1 + self.config.pipeline_depth))

    def _abandon_above(self, height: int) -> None:
        """Forget the blocks taken above ``height`` (not our votes: those stand)."""
        for h, slot in self.slots.items():
            if h > height and slot.pre_prepare is not None:
                for tx in slot.pre_prepare.block.txs:
                    tx_id = tx.tx_id(self.suite)
                    entry = self.in_flight.pop(tx_id, None)
                    if entry is not None:
                        self.mempool[tx_id] = entry
                        self.mempool.move_to_end(tx_id, last=False)
                slot.pre_prepare = slot.pending = slot.digest = None
                slot.extendable = None

    def _reconfigure(self, height: int) -> None:
        raw = self.chain.reader(self.tip)(b"sys/config")
        if raw is not None and raw != self._config_raw:
            self._config_raw = raw
            self.config = self.config.with_chain_config(decode_value(raw))
        new = self.chain.validators_for(height + 1, self.tip)
        if new.public_keys() != self.validators.public_keys():
            log.info("validator set changes at height %d: %d members", height + 1, new.size)
            self.validators = new

    def _retransmit(self) -> list[Effect]:
        """Resend our latest messages for the heights in flight, or our view change."""
        if self.vc_target is not None:
            return [Broadcast(self._my_view_change(self.vc_target))]
        effects: list[Effect] = []
        for height in range(self.executed + 1, self.executed + 1 + self.config.pipeline_depth):
            slot = self.slots.get(height)
            if slot is None or slot.pre_prepare is None:
                break
            if slot.pre_prepare.sender == self.me:
                effects.append(Broadcast(slot.pre_prepare))
            mine_p = slot.prepares.get(self.view, {}).get(self.me)
            if mine_p is not None:
                effects.append(Broadcast(mine_p))
            mine_c = slot.commits.get(self.view, {}).get(self.me)
            if mine_c is not None:
                effects.append(Broadcast(mine_c))
        return effects

    # -- checkpoints ------------------------------------------------------------------------

    def _on_checkpoint(self, cp: Checkpoint, now_ms: int) -> list[Effect]:
        # receive() has dropped those at or below the stable one and off the interval.
        if self.validators.index_of(cp.sender) is None and (
                cp.height > self.executed + 1
                or self._set_for(cp.height).index_of(cp.sender) is None):
            return self._drop(cp, "not from a validator of that height")
        by_height = self.checkpoints.setdefault(cp.height, {})
        by_height.setdefault(cp.sender, cp)
        # Bound memory per sender (its two highest checkpoints), so one replica sending many
        # far-future checkpoints cannot evict the genuine ones of the others.
        mine = sorted((h for h, msgs in self.checkpoints.items() if cp.sender in msgs),
                      reverse=True)
        for h in mine[2:]:
            del self.checkpoints[h][cp.sender]
            if not self.checkpoints[h]:
                del self.checkpoints[h]
        if cp.height > self.executed:
            heights: dict[bytes, int] = {}
            for h, msgs in self.checkpoints.items():
                for sender in msgs:
                    if self.validators.index_of(sender) is not None:
                        heights[sender] = max(heights.get(sender, 0), h)
            self._update_catchup_from(heights)
        return self._check_stable(cp.height)

    def _sign_recent_checkpoints(self) -> list[Effect]:
        """After a restart: our CHECKPOINTs again for the checkpoint heights of the last
        watermark window that we executed and no stable checkpoint covers.

        Ours from before the stop may never have left (the stop cut the broadcast), and a
        store written before the stable checkpoint was kept (K_STABLE) knows none: if every
        replica restarted so, the watermarks would stop the chain. Signing the last window's
        heights, not only the last one, lets replicas stopped a checkpoint apart still meet
        at a common height; _on_status relays them to replicas still below.
        """
        k = self.config.checkpoint_interval
        effects: list[Effect] = []
        height = self.executed - self.executed % k
        while (height > self.stable and height > self.executed - self.config.watermark_window
               and height > 0):
            header = self.chain.store.get_header(height)
            if (header is not None and self._set_for(height).index_of(self.me) is not None
                    and not self._checkpoint_is_old_news(height)):
                effects.append(self._own_checkpoint(height, header.state_root,
                                                    header.block_hash(self.suite)))
            height -= k
        return effects

    def _own_checkpoint(self, height: int, state_root: bytes, block_hash: bytes) -> Broadcast:
        """Sign our CHECKPOINT for ``height``, count it, and broadcast it."""
        cp = self._sign(Checkpoint(height, state_root, block_hash, b""))
        assert isinstance(cp, Checkpoint)
        self.checkpoints.setdefault(height, {})[self.me] = cp
        return Broadcast(cp)

    def _check_stable(self, height: int) -> list[Effect]:
        msgs = self.checkpoints.get(height, {})
        voters = self._set_for(height)
        groups: dict[tuple[bytes, bytes], list[Checkpoint]] = {}
        for cp in msgs.values():
            if voters.index_of(cp.sender) is not None:
                groups.setdefault((cp.state_root, cp.digest), []).append(cp)
        for (_, digest), proof in groups.items():
            if len(proof) < voters.quorum or height <= self.stable:
                continue
            if height > self.executed:
                self.catchup_target = max(self.catchup_target, height)
                return []
            ours = self.chain.store.get_header(height)
            if ours is not None and ours.block_hash(self.suite) != digest:
                log.critical("stable checkpoint %d disagrees with our block: state diverged",
                             height)
                return []
            self.stable = height
            self.stable_proof = sorted(proof, key=lambda c: c.sender)
            for h in [h for h in self.slots if h <= height]:
                del self.slots[h]
            for h in [h for h in self.checkpoints if h <= height]:
                del self.checkpoints[h]
            # Kept (PBFT.md: "keep them: they are its proof"): a restarted replica's
            # watermarks and VIEW-CHANGEs start from it. Losing this write to a crash only
            # means restarting from the previous one.
            return self.persist({K_STABLE: encode(self.stable_proof)})
        return []

    # -- view change --------------------------------------------------------------------------

    def prepared_for_view_change(self) -> list[PreparedCert]:
        """Seam: the prepared certificates a VIEW-CHANGE carries: ours for the heights
        right above the last executed one, as far as they run without a gap."""
        certs: list[PreparedCert] = []
        height = self.executed + 1
        while height in self.prepared and len(certs) < PREPARED_MAX:
            certs.append(self.prepared[height])
            height += 1
        return certs

    def _my_view_change(self, new_view: int) -> ViewChange:
        vc = self._sign(ViewChange(new_view, self.stable, list(self.stable_proof), self.last_cert,
                                   self.prepared_for_view_change(), b""))
        assert isinstance(vc, ViewChange)
        return vc

    def _start_view_change(self, new_view: int, now_ms: int) -> list[Effect]:
        if not self.is_validator or new_view <= self.view:
            return []
        if self.vc_target is not None and new_view <= self.vc_target:
            return []
        log.info("v%d h%d: view change to %d", self.view, self.executed, new_view)
        self.stats["view_changes"] += 1
        if self.vc_target is None:
            # Leaving a view that made no progress in time, by our timer or with f + 1
            # others: the next view's request timer waits longer (see _relax_request_timeout).
            self.request_timeout = self._backed_off()
        self.vc_target = new_view
        self.request_deadline = None
        self.vc_deadline = None
        self.retransmit_deadline = now_ms + self.config.retransmit_ms
        vc = self._my_view_change(new_view)
        self.view_changes[self.me] = vc
        effects = self.persist(self._view_record())
        effects.append(Broadcast(vc))
        self._note_vc_quorum(now_ms)
        return effects + self._maybe_new_view(now_ms)

    def _vcs_for(self, view: int) -> list[ViewChange]:
        return [vc for vc in self.view_changes.values() if vc.new_view == view]

    def _note_vc_quorum(self, now_ms: int) -> None:
        # The timer for a view change starts once a quorum wants that view (PBFT.md).
        if (self.vc_target is not None and self.vc_deadline is None
                and len(self._vcs_for(self.vc_target)) >= self.quorum):
            self.vc_deadline = now_ms + self.vc_timeout

    def _on_view_change(self, vc: ViewChange, now_ms: int) -> list[Effect]:
        if vc.new_view <= self.view:
            # A peer still asking for a view we already run: show it the NEW-VIEW.
            nv = self.new_view_msg
            if nv is not None and nv.view == self.view and vc.new_view <= self.view:
                return [Send(vc.sender, nv)]
            return self._drop(vc, "for an old view")
        why = check_view_change(vc, self.chain_id, self._set_for, self.suite.verify, self.digest_of,
                                self.body_ok)
        if why:
            return self._drop(vc, why)
        held = self.view_changes.get(vc.sender)
        if held is not None and held.new_view >= vc.new_view:
            return []
        self.view_changes[vc.sender] = vc
        effects: list[Effect] = []
        # Join a higher view only on the word of f+1 others: one replica announcing a huge
        # view number cannot drag anybody along (FISCO-BCOS issue 2211).
        floor = max(self.view, self.vc_target or self.view)
        views = sorted((m.new_view for s, m in self.view_changes.items()
                        if s != self.me and m.new_view > floor), reverse=True)
        if len(views) >= self.f + 1:
            effects += self._start_view_change(views[self.f], now_ms)
        self._note_vc_quorum(now_ms)
        return effects + self._maybe_new_view(now_ms)

    def _maybe_new_view(self, now_ms: int) -> list[Effect]:
        target = self.vc_target
        if target is None or self.primary(target) != self.me:
            return []
        vcs = self._vcs_for(target)
        if len(vcs) < self.quorum:
            return []
        mine = [vc for vc in vcs if vc.sender == self.me]
        others = sorted((vc for vc in vcs if vc.sender != self.me), key=lambda v: v.sender)
        chosen = (mine + others)[: self.quorum]
        sel = select(chosen, self.digest_of)
        pps: list[PrePrepare] = []
        for i, old in enumerate(sel.reproposals):
            signed = self._sign(PrePrepare(target, sel.committed + 1 + i, old.block, b""))
            assert isinstance(signed, PrePrepare)
            pps.append(signed)
        nv = self._sign(NewView(target, chosen, pps, b""))
        assert isinstance(nv, NewView)
        log.info("v%d: new primary announces view %d (committed %d, %d re-proposed)",
                 self.view, target, sel.committed, len(pps))
        return self._install_view(nv, sel, now_ms, broadcast=True)

    def _on_new_view(self, nv: NewView, now_ms: int) -> list[Effect]:
        if nv.view < self.view or (nv.view == self.view and self.vc_target is None):
            return self._drop(nv, "for a view we are already past or in")
        if self.vc_target is not None and nv.view < self.vc_target:
            # We told every replica we are done with the views below vc_target, and our
            # VIEW-CHANGE for it says what we were prepared at then: voting in a lower view
            # now could prepare a block that a NEW-VIEW built on that word leaves out.
            return self._drop(nv, f"below the view {self.vc_target} we asked for")
        if nv.sender != self.primary(nv.view):
            return self._drop(nv, "not from that view's primary")
        senders = set()
        members = set(self.validators.public_keys())
        for vc in nv.view_changes:
            if vc.new_view != nv.view or vc.sender not in members or vc.sender in senders:
                return self._drop(nv, "carries a wrong, foreign or repeated VIEW-CHANGE")
            if not self.verify(vc):
                return self._drop(nv, "carries a VIEW-CHANGE with a bad signature")
            why = check_view_change(vc, self.chain_id, self._set_for, self.suite.verify,
                                    self.digest_of, self.body_ok)
            if why:
                return self._drop(nv, f"carries an invalid VIEW-CHANGE: {why}")
            senders.add(vc.sender)
        if len(senders) < self.quorum:
            return self._drop(nv, "fewer than a quorum of VIEW-CHANGEs")
        sel = select(nv.view_changes, self.digest_of)
        if len(nv.pre_prepares) > len(sel.digests):
            return self._drop(nv, "re-proposes a block no VIEW-CHANGE prepared")
        if len(nv.pre_prepares) < len(sel.digests):
            return self._drop(nv, "leaves out a block the VIEW-CHANGEs require it to re-propose")
        for i, (pp, digest) in enumerate(zip(nv.pre_prepares, sel.digests, strict=True)):
            if (pp.view != nv.view or pp.sender != nv.sender or pp.height != sel.committed + 1 + i
                    or self.digest_of(pp.block) != digest or not self.verify(pp)):
                return self._drop(nv, "its re-proposal differs from what the VIEW-CHANGEs "
                                      "require")
        return self._install_view(nv, sel, now_ms, broadcast=False)

    def _install_view(self, nv: NewView, sel: Selection, now_ms: int,
                      broadcast: bool) -> list[Effect]:
        self.view, self.vc_target, self.vc_deadline = nv.view, None, None
        self.vc_timeout = self.config.view_change_timeout_ms
        self.new_view_msg = nv
        self.view_changes = {s: vc for s, vc in self.view_changes.items() if vc.new_view > nv.view}
        # Votes of older views are void now; keep only messages of this view. The blocks
        # taken in the old view are abandoned: their transactions wait again.
        self._abandon_above(self.executed)
        for slot in self.slots.values():
            slot.pre_prepare = slot.pending = slot.digest = slot.waiting = None
            slot.waiting_reproposal, slot.extendable = False, None
            slot.prepares = {v: m for v, m in slot.prepares.items() if v >= nv.view}
            slot.commits = {v: m for v, m in slot.commits.items() if v >= nv.view}
            slot.commit_sent_view = None
        self.catchup_target = max(self.catchup_target, sel.committed)
        self.request_deadline = now_ms + self.request_timeout if self.mempool else None
        self.retransmit_deadline = now_ms + self.config.retransmit_ms
        effects = self.persist({**self._view_record(), K_NEW_VIEW: encode_spliced(nv)})
        if broadcast:
            effects.append(Broadcast(nv))
        # The re-proposals are taken height by height, each once we are prepared at the one
        # below it (or have executed it): the same rule as for fresh blocks.
        for pp in nv.pre_prepares:
            if pp.height > self.executed:
                slot = self.slots.setdefault(pp.height, Slot())
                slot.waiting, slot.waiting_reproposal = pp, True
        return effects + self._release(self.executed + 1, now_ms)

    # -- state transfer ---------------------------------------------------------------------

    def _checkpoint_is_old_news(self, height: int) -> bool:
        """While catching up, the checkpoints of heights a whole watermark window below
        what f + 1 replicas hold (at least one of them correct) are not signed: that
        replica committed beyond ``height + L`` only within a quorum's watermarks, so a
        quorum holds a stable checkpoint at or above ``height`` and would discard ours
        unread — broadcasting them anyway made catching up cost every other replica one
        signature check per checkpoint."""
        return height + self.config.watermark_window <= self.catchup_target

    def _update_catchup_from(self, heights: dict[bytes, int], offset: int = 0) -> None:
        """Believe we are behind only when f+1 replicas say so (one liar cannot make us chase)."""
        claims = sorted(heights.values(), reverse=True)
        if len(claims) > self.f:
            self.catchup_target = max(self.catchup_target, claims[self.f] + offset)

    def _maybe_fetch(self, now_ms: int) -> list[Effect]:
        if self.catchup_target <= self.executed or self.fetch_deadline is not None:
            return []
        peers = [k for k in self.validators.public_keys() if k != self.me]
        ahead = [k for k in peers if max(self.status_heights.get(k, 0),
                                         self.commit_heights.get(k, 0) - COMMIT_LEAD)
                 > self.executed]
        candidates = ahead or peers
        if not candidates:
            return []
        peer = candidates[self.fetch_turn % len(candidates)]
        self.fetch_turn += 1
        self.fetch_asked, self.fetch_upto = set(), 0
        return self._ask_ahead(peer, self.executed, now_ms)

    def _ask_ahead(self, peer: bytes, held: int, now_ms: int) -> list[Effect]:
        """Ask ``peer`` for the FETCH_WINDOW ranges after height ``held`` not asked for yet."""
        effects: list[Effect] = []
        start = held + 1
        for _ in range(FETCH_WINDOW):
            if start > self.catchup_target:
                break
            upto = min(self.catchup_target, start - 1 + self.config.fetch_blocks_max)
            if start not in self.fetch_asked:
                self.fetch_asked.add(start)
                effects.append(Send(peer, self._sign(FetchBlocks(start, upto, b""))))
            self.fetch_upto = max(self.fetch_upto, upto)
            start = upto + 1
        if effects:
            self.fetch_peer = peer
            self.fetch_deadline = now_ms + self.config.fetch_timeout_ms
        return effects

    def _on_fetch(self, m: FetchBlocks) -> list[Effect]:
        lo = max(1, m.from_height)
        hi = min(m.to_height, self.executed, lo + self.config.fetch_blocks_max - 1)
        blocks: list[CertifiedBlock] = []
        size = 0
        for h in range(lo, hi + 1):
            block, cert = self.chain.store.get_block(h), self.chain.store.get_certificate(h)
            if block is None or cert is None:
                break
            size += len(block.encoded())
            if blocks and size > self.config.batch_bytes_max:
                break
            blocks.append(CertifiedBlock(block, cert))
        if not blocks:
            return [Send(m.sender, self._status())]
        return [Send(m.sender, self._sign(Blocks(blocks, b"")))]

    def _on_blocks(self, m: Blocks, now_ms: int) -> list[Effect]:
        """Apply the blocks that extend our chain, then ask the same peer for what follows;
        the request goes out ahead of the appends (it is the first effect).

        Blocks from any sender are taken (each carries its commit certificate), but only a
        sender whose blocks made progress is asked for more, and only progress moves the
        fetch timer: a peer sending unusable blocks cannot keep us from timing out and
        asking another one.
        """
        run: list[CertifiedBlock] = []
        for cb in m.blocks:
            height = cb.block.header.height
            if height <= self.executed + len(run):
                continue
            if height != self.executed + len(run) + 1:
                break
            run.append(cb)
        if not run:
            return []
        before = self.executed
        effects = self._apply_fetched(run, now_ms)
        if self.executed == before:
            return effects
        self.fetch_asked = {h for h in self.fetch_asked if h > self.executed}
        return self._ask_ahead(m.sender, self.executed, now_ms) + effects

    def _apply_fetched(self, blocks: list[CertifiedBlock], now_ms: int) -> list[Effect]:
        """Check each block's commit certificate, execute it and append it."""
        effects: list[Effect] = []
        before = self.executed
        for cb in blocks:
            header = cb.block.header
            if header.height <= self.executed:
                continue  # committed meanwhile by the normal protocol
            if header.height != self.executed + 1:
                break
            try:
                vs = self.chain.validators_for(header.height, self._parent())
                verify_certificate(self.suite, self.chain_id, header, cb.certificate, vs,
                                   self.sig_ok)
                pending = self._check_certified(cb.block)
            except InputError as exc:
                log.warning("state transfer: block %d rejected: %s", header.height, exc)
                # No request follows: if no usable answer comes, the fetch timer runs out
                # and the next request goes to another peer (asking again at once would
                # loop without bound against a peer that keeps sending unusable blocks).
                break
            self.stats["blocks_fetched"] += 1
            effects += self._execute(pending, cb.certificate, now_ms)
        if self.executed > before and self.fetch_upto <= self.executed:
            self.fetch_deadline = None  # progress and nothing asked for beyond it: ask now
        return effects

    def _check_certified(self, block: Block) -> Pending:
        """Re-execute a fetched block whose commit certificate checked out, first without
        checking its transactions' signatures.

        A quorum committed the block, so at least f + 1 correct replicas checked every one
        of its signatures (a backup refuses a proposal carrying one that does not verify),
        and the header's result and state roots commit to what they found. If our roots
        differ — some transaction was judged otherwise — the block is executed again with
        every signature checked, so the outcome is that of a full check. Only a quorum
        certifying falsely, which PBFT's assumptions exclude, could tell the two apart. The
        certificate's quorum of signature checks is then the whole signature cost of state
        transfer (it was that plus one per transaction).
        """
        parent = self._parent()
        try:
            return self.chain.check_proposal(block, parent, _certified)
        except InputError:
            return self.chain.check_proposal(block, parent, self.tx_signature_ok)

    def _on_status(self, st: Status, now_ms: int) -> list[Effect]:
        effects: list[Effect] = []
        if self.validators.index_of(st.sender) is not None:
            self.status_heights[st.sender] = st.height
            self._update_catchup_from(self.status_heights)
        if st.sender == self.fetch_peer and st.height <= self.executed:
            self.fetch_deadline = None  # that peer has nothing for us: ask another now
        nv = self.new_view_msg
        if st.view < self.view and nv is not None and nv.view == self.view:
            effects.append(Send(st.sender, nv))
        if st.height < self.executed:
            effects.append(Send(st.sender, self._status()))
        if st.stable < self.stable <= st.height:
            # It missed the checkpoint messages: relay the proof (each is signed by its author).
            effects += [Send(st.sender, cp) for cp in self.stable_proof]
        # And our own checkpoints above both stable ones that it has executed: a checkpoint
        # lost on the way (or never sent: see _sign_recent_checkpoints) is sent again.
        floor = max(st.stable, self.stable)
        effects += [Send(st.sender, mine) for h, msgs in sorted(self.checkpoints.items())
                    if floor < h <= st.height and (mine := msgs.get(self.me)) is not None]
        return effects

    def _on_gossip(self, msg: Message, now_ms: int) -> list[Effect]:
        assert isinstance(msg, TxGossip)
        for tx in msg.txs[: self.config.batch_tx_max]:
            tx_id = tx.tx_id(self.suite)
            if self.pool_full():  # before the signature check: dropped anyway
                self.stats["dropped_txs"] += 1
            elif not self.settled(tx_id) and self.tx_signature_ok(tx):
                self._add_to_pool(tx_id, tx, now_ms)
        return []

    # -- progress -----------------------------------------------------------------------------

    def _progress(self, now_ms: int) -> list[Effect]:
        effects = self._maybe_fetch(now_ms)
        effects += self._maybe_propose(now_ms)
        return effects


def _certified(tx: Transaction) -> bool:
    """Signature check for a transaction of a certified block: see Replica._check_certified."""
    return True
