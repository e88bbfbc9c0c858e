"""The chain: execution, state roots and storage composed for one node.

Theory of operation
-------------------
:class:`Chain` is what the consensus driver and the HTTP queries talk to. It
owns no IO of its own beyond the injected :class:`~ledger.store.Store`.

- **Propose / check.** A proposer calls :meth:`Chain.propose` with a batch,
  a block time, its view and its key; the chain executes the batch on top of
  the committed head (or on top of a still-pending parent, so consensus can
  pipeline several heights) and returns a :class:`Pending` block whose header
  carries the resulting ``tx_root``, ``result_root`` and ``state_root``. A
  backup calls :meth:`Chain.check_proposal` with the proposed block; it
  re-executes and rejects the block unless every root matches — the header
  digest that PBFT agrees on therefore fixes the outcome of execution too.
- **Append.** Once the block has a commit certificate, :meth:`Chain.append`
  writes block, certificate, results, state changes, new state-tree nodes and
  indexes in one atomic store write.
- **Validator sets.** The set that must certify block ``h`` is read from the
  state after block ``h-1``: ``sys/validators/next`` if it exists and its
  ``effective_height`` is ``<= h``, else ``sys/validators``. A begin-block
  hook promotes ``next`` to current at its effective height, so the rule is
  a pure function of certified state and an offline verifier can follow it.

:func:`verify_chain` replays a whole store from genesis into a scratch chain
and re-checks every link, root, commit certificate and the final state.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import zip_longest
from typing import Protocol

from ledger.block import (
    Block,
    BlockHeader,
    CommitCertificate,
    TxResult,
    ValidatorSet,
    result_root,
    tx_root,
    verify_certificate,
)
from ledger.codec import decode, decode_value, encode_value, to_value
from ledger.errors import CorruptionError, DecodeError, InputError, TxRejected
from ledger.execution import BlockExecution, Registry, StateView, execute_block
from ledger.genesis import Genesis, genesis_block, initial_state
from ledger.state import CACHE_BYTES_DEFAULT, EMPTY_ROOT, SparseMerkleTree
from ledger.store import BlockCommit, MemoryStore, Store
from ledger.tx import Transaction

# How many heights' validator sets validators_for remembers (a few checkpoint windows).
_COMMITTED_SETS_MAX = 256
VALIDATORS_KEY = b"sys/validators"
NEXT_VALIDATORS_KEY = b"sys/validators/next"
# Effective heights of every validator-set change so far (a list, canonical msgpack).
HISTORY_KEY = b"sys/validators/history"


@dataclass
class Pending:
    """A block executed speculatively, not yet appended."""

    block: Block
    execution: BlockExecution
    state_nodes: dict[bytes, bytes]
    parent: Pending | None
    # Nodes of the parent's state tree that this block's update replaced (internal nodes
    # on changed paths, leaves of changed keys): the tree's cache drops them once the
    # block is appended.
    superseded_nodes: set[bytes] = field(default_factory=set)

    @property
    def header(self) -> BlockHeader:
        return self.block.header


class _Nodes:
    """Node reader: pending blocks' new nodes over the store's.

    One instance (and one tree, with its node cache) serves the whole chain;
    :meth:`Chain.tree` points it at the pending layers a call needs. Nodes are
    content-addressed, so a cached node from a pending block is never wrong.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.layers: list[dict[bytes, bytes]] = []

    def use(self, pending: Pending | None) -> None:
        self.layers = []
        while pending is not None:
            self.layers.append(pending.state_nodes)
            pending = pending.parent

    def get_node(self, node_hash: bytes, height: int | None) -> bytes | None:
        for layer in self.layers:
            if node_hash in layer:
                return layer[node_hash]
        return self.store.get_node(node_hash, height)

    def is_pending(self, node_hash: bytes) -> bool:
        """Whether ``node_hash`` is read from a pending block (the tree does not cache it)."""
        return any(node_hash in layer for layer in self.layers)


def promote_validators(state: StateView, height: int, time_ms: int) -> None:
    """Begin-block hook: a scheduled validator set becomes current at its height."""
    raw = state.get(NEXT_VALIDATORS_KEY)
    if raw is None:
        return
    value = decode_value(raw)
    assert isinstance(value, dict)
    effective = value["effective_height"]
    assert isinstance(effective, int)
    if effective <= height:
        state.put(VALIDATORS_KEY, _encode_set(value["validators"]))
        state.delete(NEXT_VALIDATORS_KEY)
        state.put(HISTORY_KEY, encode_value([*validator_history(state.get), height]))


def effective_height(commit_height: int, checkpoint_interval: int) -> int:
    """Where a validator-set change committed at ``commit_height`` takes effect.

    The first height after the next checkpoint: every replica derives the same
    number from the block alone, and the old set has certified a checkpoint
    of the state that schedules the change before the new set starts voting.
    """
    return (commit_height // checkpoint_interval + 1) * checkpoint_interval + 1


def schedule_validator_change(
    state: StateView, validators: ValidatorSet, commit_height: int, checkpoint_interval: int,
    replace: bool = False,
) -> int:
    """Write ``sys/validators/next``; return its effective height.

    TxRejected if a change is already scheduled, unless ``replace``: then ``validators``
    (which the caller built on top of the scheduled set) supersedes it, effective at the
    height computed here — never earlier than the one it replaces, and before that
    height no replica has switched, so every replica still switches at the same block.
    """
    if state.get(NEXT_VALIDATORS_KEY) is not None and not replace:
        raise TxRejected("a validator-set change is already scheduled")
    try:
        validators.validate()
    except DecodeError as exc:
        raise TxRejected(str(exc)) from None
    height = effective_height(commit_height, checkpoint_interval)
    state.put(NEXT_VALIDATORS_KEY, encode_value(
        {"validators": to_value(validators)["validators"],  # type: ignore[index, call-overload]
         "effective_height": height}))
    return height


def validator_history(state_get: Callable[[bytes], bytes | None]) -> list[int]:
    """Heights at which the validator set changed, oldest first."""
    raw = state_get(HISTORY_KEY)
    if raw is None:
        return []
    value = decode_value(raw)
    if not isinstance(value, list) or not all(isinstance(h, int) for h in value):
        raise CorruptionError("validator history in state is unreadable")
    return [h for h in value if isinstance(h, int)]


def _encode_set(validators: object) -> bytes:
    return encode_value({"validators": validators})  # type: ignore[dict-item]


def validators_from_state(state_get: Callable[[bytes], bytes | None], height: int) -> ValidatorSet:
    """The set that must certify block ``height``, given the state after ``height-1``."""
    raw_next = state_get(NEXT_VALIDATORS_KEY)
    try:
        if raw_next is not None:
            value = decode_value(raw_next)
            assert isinstance(value, dict)
            effective = value["effective_height"]
            assert isinstance(effective, int)
            if effective <= height:
                return _decode_set(_encode_set(value["validators"]))
        raw = state_get(VALIDATORS_KEY)
        if raw is None:
            raise CorruptionError("state has no validator set")
        return _decode_set(raw)
    except (DecodeError, AssertionError, KeyError) as exc:
        raise CorruptionError(f"validator set in state is unreadable: {exc}") from None


def scheduled_validators(state_get: Callable[[bytes], bytes | None]) -> ValidatorSet | None:
    """The set scheduled to take over (``sys/validators/next``), or None."""
    raw = state_get(NEXT_VALIDATORS_KEY)
    if raw is None:
        return None
    try:
        value = decode_value(raw)
        assert isinstance(value, dict)
        return _decode_set(_encode_set(value["validators"]))
    except (DecodeError, AssertionError, KeyError) as exc:
        raise CorruptionError(f"scheduled validator set in state is unreadable: {exc}") from None


@functools.lru_cache(maxsize=64)
def _decode_set(raw: bytes) -> ValidatorSet:
    """Memoised by the stored bytes: every block's certificate check reads the set, and it
    changes only by governance (new bytes). Sets are frozen and never changed in place."""
    return decode(raw, ValidatorSet)


class Chain:
    def __init__(self, store: Store, genesis: Genesis, registry: Registry,
                 state_cache_bytes: int = CACHE_BYTES_DEFAULT) -> None:
        self.store = store
        self.genesis = genesis
        self.suite = genesis.crypto
        self.chain_id = genesis.chain_id
        self.registry = registry
        self._nodes = _Nodes(store)
        self._tree = SparseMerkleTree(self.suite.hash, self._nodes,
                                      cache_bytes_max=state_cache_bytes)
        # height -> the set certifying it, for heights whose parent is committed.
        self._committed_sets: OrderedDict[int, ValidatorSet] = OrderedDict()
        if promote_validators not in registry._begin_hooks:
            registry.on_begin_block(promote_validators)
        expected = genesis_block(genesis, self._genesis_root())
        if store.head_height() < 0:
            self._append_genesis(expected)
        else:
            stored = store.get_header(0)
            if stored != expected.header:
                raise CorruptionError(
                    "the data directory belongs to a different genesis (height 0 differs)"
                )

    # -- genesis ------------------------------------------------------------------------

    def _genesis_root(self) -> bytes:
        root, _ = self.tree().update(EMPTY_ROOT, initial_state(self.genesis, self.registry),
                                     height=0)
        return root

    def _append_genesis(self, block: Block) -> None:
        changes = initial_state(self.genesis, self.registry)
        root, nodes = self.tree().update(EMPTY_ROOT, changes, height=0)
        assert root == block.header.state_root
        self.store.append(BlockCommit(block, None, [], {}, changes, nodes, {}))

    # -- reading ------------------------------------------------------------------------

    @property
    def height(self) -> int:
        return self.store.head_height()

    def head(self) -> BlockHeader:
        header = self.store.get_header(self.store.head_height())
        assert header is not None
        return header

    def state_get(self, key: bytes) -> bytes | None:
        return self.store.get_state(key)

    def tree(self, pending: Pending | None = None) -> SparseMerkleTree:
        """The state tree, reading nodes of ``pending`` (and its parents) before the store's."""
        self._nodes.use(pending)
        return self._tree

    def state_at(self, height: int, key: bytes) -> bytes | None:
        header = self.store.get_header(height)
        if header is None:
            raise InputError(f"no block at height {height}")
        return self.tree().get(header.state_root, key, height)

    def validators_for(self, height: int, parent: Pending | None = None) -> ValidatorSet:
        """The validator set that certifies block ``height`` (see the module docstring).

        ``parent`` may be a chain of pending blocks; the one at ``height - 1`` is used.
        """
        while parent is not None and parent.header.height > height - 1:
            parent = parent.parent
        if parent is not None and parent.header.height == height - 1:
            return validators_from_state(self._layered_get(parent), height)
        # From committed state, which never changes: remembered per height. Every vote's
        # check asks, and a late vote for an older height read the set through the state
        # tree of that height's parent.
        known = self._committed_sets.get(height)
        if known is not None:
            return known
        if height - 1 == self.store.head_height():
            found = validators_from_state(self.store.get_state, height)
        else:
            header = self.store.get_header(height - 1)
            if header is None:
                raise InputError(f"no block at height {height - 1}")
            tree = self.tree()
            found = validators_from_state(
                lambda k: tree.get(header.state_root, k, height - 1), height)
        self._committed_sets[height] = found
        if len(self._committed_sets) > _COMMITTED_SETS_MAX:
            self._committed_sets.popitem(last=False)
        return found

    def reader(self, pending: Pending | None = None) -> Callable[[bytes], bytes | None]:
        """Read the latest state as of ``pending`` (the committed head when None)."""
        return self._layered_get(pending)

    def _layered_get(self, pending: Pending | None) -> Callable[[bytes], bytes | None]:
        layers: list[dict[bytes, bytes | None]] = []
        while pending is not None:
            layers.append(pending.execution.state_changes)
            pending = pending.parent
        store_get = self.store.get_state

        def get(key: bytes) -> bytes | None:
            for layer in layers:
                if key in layer:
                    return layer[key]
            return store_get(key)

        return get

    def _layered_index(self, pending: Pending | None) -> Callable[[bytes], bytes | None]:
        layers: list[dict[bytes, bytes | None]] = []
        while pending is not None:
            layers.append(pending.execution.index_changes)
            pending = pending.parent
        store_get = self.store.get_index

        def get(key: bytes) -> bytes | None:
            for layer in layers:
                if key in layer:
                    return layer[key]
            return store_get(key)

        return get

    def _layered_seen(self, pending: Pending | None) -> Callable[[bytes], bool]:
        layers: list[dict[bytes, int]] = []
        while pending is not None:
            layers.append(pending.execution.executed)
            pending = pending.parent
        location = self.store.get_tx_location
        return lambda tx_id: any(tx_id in layer for layer in layers) or location(tx_id) is not None

    # -- execution ----------------------------------------------------------------------

    def _parent_header(self, parent: Pending | None) -> BlockHeader:
        return parent.header if parent is not None else self.head()

    def execute(
        self,
        block: Block,
        parent: Pending | None = None,
        signature_ok: Callable[[Transaction], bool] | None = None,
    ) -> tuple[Pending, bytes, bytes]:
        """Execute ``block`` over its parent; return (pending, result_root, state_root)."""
        base = self._parent_header(parent)
        execution = execute_block(
            self.suite, self.chain_id, block, self._layered_get(parent),
            self._layered_index(parent), self.registry, self._layered_seen(parent), signature_ok,
        )
        superseded: set[bytes] = set()
        state_root, nodes = self.tree(parent).update(
            base.state_root, execution.state_changes, superseded,
            height=block.header.height, root_height=base.height)
        pending = Pending(block=block, execution=execution, state_nodes=nodes, parent=parent,
                          superseded_nodes=superseded)
        return pending, result_root(self.suite, execution.results), state_root

    def propose(
        self,
        txs: list[Transaction],
        time_ms: int,
        view: int,
        proposer: bytes,
        parent: Pending | None = None,
        signature_ok: Callable[[Transaction], bool] | None = None,
    ) -> Pending:
        """Build and execute the next block from ``txs`` (its header carries the roots)."""
        base = self._parent_header(parent)
        height = base.height + 1
        draft = BlockHeader(
            height=height,
            prev_hash=base.block_hash(self.suite),
            tx_root=tx_root(self.suite, txs),
            result_root=bytes(32),
            state_root=bytes(32),
            time=time_ms,
            view=view,
            proposer=proposer,
            validator_set_hash=self.validators_for(height, parent).set_hash(self.suite),
        )
        pending, results_root, state_root = self.execute(Block(draft, txs), parent, signature_ok)
        header = replace(draft, result_root=results_root, state_root=state_root)
        pending.block = Block(header, txs)
        return pending

    def check_proposal(
        self,
        block: Block,
        parent: Pending | None = None,
        signature_ok: Callable[[Transaction], bool] | None = None,
    ) -> Pending:
        """Re-execute a proposed block; InputError unless it extends the parent exactly."""
        header = block.header
        base = self._parent_header(parent)
        if header.height != base.height + 1:
            raise InputError(f"proposal height {header.height} does not follow {base.height}")
        if header.prev_hash != base.block_hash(self.suite):
            raise InputError(f"proposal {header.height} does not link to the parent block")
        if header.validator_set_hash != self.validators_for(header.height, parent).set_hash(
            self.suite
        ):
            raise InputError(f"proposal {header.height} names the wrong validator set")
        if header.tx_root != tx_root(self.suite, block.txs):
            raise InputError(f"proposal {header.height}: tx_root does not match its transactions")
        pending, results_root, state_root = self.execute(block, parent, signature_ok)
        if results_root != header.result_root:
            raise InputError(f"proposal {header.height}: result_root differs from execution")
        if state_root != header.state_root:
            raise InputError(f"proposal {header.height}: state_root differs from execution")
        return pending

    def append(self, pending: Pending, certificate: CommitCertificate) -> None:
        """Durably append a pending block whose parent is the head."""
        self.append_many([(pending, certificate)])

    def append_many(self, blocks: list[tuple[Pending, CommitCertificate]]) -> None:
        """Durably append consecutive pending blocks, the first on the head, in one write."""
        assert not blocks or blocks[0][0].header.height == self.store.head_height() + 1
        commits = []
        for pending, certificate in blocks:
            e = pending.execution
            commits.append(BlockCommit(
                block=pending.block, certificate=certificate, results=e.results,
                executed=e.executed, state_changes=e.state_changes,
                state_nodes=pending.state_nodes, index_changes=e.index_changes,
            ))
        self.store.append_many(commits)
        for pending, _ in blocks:
            self._tree.remember_persisted(pending.state_nodes, pending.superseded_nodes)

    def result_of(self, tx_id: bytes) -> tuple[int, int, TxResult] | None:
        loc = self.store.get_tx_location(tx_id)
        if loc is None:
            return None
        results = self.store.get_results(loc[0])
        if results is None:
            raise CorruptionError(f"height {loc[0]}: results missing for an indexed transaction")
        return loc[0], loc[1], results[loc[1]]


# -- whole-chain audit ------------------------------------------------------------------


@dataclass
class ChainReport:
    ok: bool
    checked_height: int
    broken_height: int | None
    reason: str


class BlockSource(Protocol):
    """Where :func:`verify_blocks` reads a chain from: a node's store, or a node's HTTP API
    (``govledger audit verify-chain --node``); nothing it says is trusted."""

    def head_height(self) -> int: ...
    def get_header(self, height: int) -> BlockHeader | None: ...
    def get_block(self, height: int) -> Block | None: ...
    def get_certificate(self, height: int) -> CommitCertificate | None: ...
    def get_results(self, height: int) -> list[TxResult] | None: ...


def verify_chain(
    store: Store,
    genesis: Genesis,
    registry_factory: Callable[[], Registry],
    progress: Callable[[int, int], None] | None = None,
) -> ChainReport:
    """Re-check every link, Merkle root and commit certificate from genesis, and
    recompute the state by replaying every block into a scratch chain.

    ``registry_factory`` builds the same handlers the network runs. Reports the
    first broken height, if any, and why.
    """
    report, replay = verify_blocks(store, genesis, registry_factory, progress)
    if report.ok:
        problem = _compare_state(store, replay.store)
        if problem:
            return ChainReport(False, report.checked_height, report.checked_height, problem)
    return report


def verify_blocks(
    source: BlockSource,
    genesis: Genesis,
    registry_factory: Callable[[], Registry],
    progress: Callable[[int, int], None] | None = None,
    head: int | None = None,
) -> tuple[ChainReport, Chain]:
    """:func:`verify_chain`'s replay, up to ``head`` (default: the source's head), over
    any :class:`BlockSource`: every block's link, Merkle roots, commit certificate
    (against the validator set the replay itself derives from genesis) and its results
    and state root, recomputed. Returns the report and the replayed chain."""
    suite = genesis.crypto
    replay = Chain(MemoryStore(suite), genesis, registry_factory())
    head = source.head_height() if head is None else head
    if head < 0:
        return ChainReport(False, -1, 0, "the store is empty"), replay
    if source.get_header(0) != replay.head():
        return ChainReport(False, -1, 0, "block 0 does not match the genesis file"), replay
    for height in range(1, head + 1):
        try:
            _verify_height(source, replay, height)
        except (InputError, CorruptionError) as exc:
            return ChainReport(False, height - 1, height, str(exc)), replay
        if progress is not None:
            progress(height, head)
    return ChainReport(True, head, None, ""), replay


def _verify_height(store: BlockSource, replay: Chain, height: int) -> None:
    suite = replay.suite
    block = store.get_block(height)
    header = store.get_header(height)
    cert = store.get_certificate(height)
    results = store.get_results(height)
    if block is None or header is None or cert is None or results is None:
        raise CorruptionError(f"height {height}: block, header, certificate or results missing")
    if block.header != header:
        raise CorruptionError(f"height {height}: stored block and header disagree")
    prev = replay.head()
    if header.prev_hash != prev.block_hash(suite):
        raise CorruptionError(f"height {height}: prev_hash does not link to height {height - 1}")
    validators = replay.validators_for(height)
    verify_certificate(suite, replay.chain_id, header, cert, validators)
    pending = replay.check_proposal(block)
    if result_root(suite, results) != header.result_root or results != pending.execution.results:
        raise CorruptionError(f"height {height}: stored results differ from re-execution")
    replay.append(pending, cert)


def _compare_state(store: Store, replayed: Store) -> str:
    for a, b in zip_longest(store.iter_state(b""), replayed.iter_state(b"")):
        if a is None or b is None:
            return "stored state has a different set of keys than the replayed state"
        if a != b:
            return f"stored state differs from the replayed state at key {min(a[0], b[0])!r}"
    return ""
