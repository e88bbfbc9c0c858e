"""Deterministic execution of a block over the authenticated state.

Theory of operation
-------------------
``execute_block`` runs a block's transactions in order. Each transaction is
routed by its ``type`` to a handler registered by an application (``ledger``
itself registers ``evidence.anchor``; ``certs``, ``fiscal`` and governance
register theirs). A handler sees an :class:`ExecContext`: the block height
and time, the transaction and its sender, and a read/write view of the state.

Per-transaction isolation: a handler's writes go to a private overlay that
is merged into the block's changes only if the handler returns normally. A
handler rejects a transaction by raising :class:`~ledger.errors.TxRejected`
with the reason; the result records the reason and the state is untouched.
So one failing transaction never leaves a partial write, and the block still
commits.

Before a handler runs, execution itself rejects a transaction that is for
another chain, carries a bad signature, has expired (``valid_until`` before
the block time), has an unknown type, or whose id was already executed —
in an earlier block (asked through ``seen``) or earlier in this block. A
duplicate is reported but not indexed again: the first execution stands.

Determinism: handlers get time only from the block header and never call
the wall clock, ``random`` or IO; results depend on (state, block) only, so
every node computes the same ``result_root`` and ``state_root``.

Two kinds of writes come out: ``state`` (authenticated, in ``state_root``,
provable) and ``index`` (derived lookup tables for queries, e.g. a fund
trail; rebuilt by re-execution, not part of any root). The caller appends
both with the block in one atomic write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.block import Block, TxResult
from ledger.codec import Value
from ledger.crypto import Suite
from ledger.errors import TxRejected
from ledger.tx import Transaction

log = logging.getLogger("govledger.execution")

StateGet = Callable[[bytes], bytes | None]


class StateView:
    """Layered key-value view: local writes over a parent view (None = deleted)."""

    __slots__ = ("_get", "writes")

    def __init__(self, parent_get: StateGet) -> None:
        self._get = parent_get
        self.writes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self._get(key)

    def put(self, key: bytes, value: bytes) -> None:
        assert type(key) is bytes and type(value) is bytes
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        self.writes[key] = None


@dataclass
class ExecContext:
    """What a handler may see and touch while executing one transaction."""

    suite: Suite
    chain_id: str
    height: int
    time_ms: int
    tx: Transaction
    tx_id: bytes
    state: StateView
    index: StateView
    data: dict[str, Value] = field(default_factory=dict)
    registry: Registry | None = None

    @property
    def sender(self) -> bytes:
        return self.tx.sender


Handler = Callable[[ExecContext], None]
BeginBlockHook = Callable[[StateView, int, int], None]
# Admission's early permission check: the reason to refuse the sender (HTTP 403), or None.
# It reads the latest committed state; execution re-checks everything at its own height.
Precheck = Callable[[StateGet, Transaction], str | None]
# Admission's stateless look at a payload: what execution would refuse in it whatever the
# state (a missing field, a value of the wrong type or form; HTTP 400), or None. Execution
# checks the same again: a primary may propose what no admission saw.
PayloadCheck = Callable[[dict[str, Value]], str | None]
# A rule for every transaction's sender at a block height (None: the next block).
SenderCheck = Callable[[StateGet, bytes, int | None], str | None]


# Initial state an application derives from the genesis file (its ``apps`` section).
GenesisHook = Callable[[Any], dict[bytes, bytes | None]]


@dataclass(frozen=True)
class ProposalKind:
    """A kind of committee decision, owned by the application whose state it changes.

    ``check`` validates and normalises the parameters when the proposal is made
    (raise TxRejected); ``apply`` carries the decision out in the block where the
    proposal passes (raise TxRejected if it can no longer be applied).
    """

    name: str
    summary: str
    check: Callable[[StateGet, dict[str, Value]], dict[str, Value]]
    apply: Callable[[ExecContext, dict[str, Value]], None]


class Registry:
    """Transaction types and their handlers, governance proposal kinds, and hooks."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._prechecks: dict[str, Precheck] = {}
        self._payload_checks: dict[str, PayloadCheck] = {}
        self._private: set[str] = set()
        self._begin_hooks: list[BeginBlockHook] = []
        self._genesis_hooks: list[GenesisHook] = []
        self._sender_checks: list[SenderCheck] = []
        self.proposal_kinds: dict[str, ProposalKind] = {}

    def add_sender_check(self, check: SenderCheck) -> None:
        """A rule every transaction's sender must pass (e.g. its key is not revoked)."""
        if check not in self._sender_checks:
            self._sender_checks.append(check)

    def sender_problem(self, state_get: StateGet, sender: bytes, height: int | None = None
                       ) -> str | None:
        """Why ``sender`` may not send a transaction in block ``height`` (None: it may).

        Execution passes the block's height; admission passes None, which means the
        block after the state read (see ledger.acl on key rotation).
        """
        for check in self._sender_checks:
            problem = check(state_get, sender, height)
            if problem:
                return problem
        return None

    def register_kind(self, kind: ProposalKind) -> None:
        assert kind.name not in self.proposal_kinds, f"{kind.name} registered twice"
        self.proposal_kinds[kind.name] = kind

    def on_genesis(self, hook: GenesisHook) -> None:
        self._genesis_hooks.append(hook)

    def genesis_writes(self, genesis: Any) -> dict[bytes, bytes | None]:
        writes: dict[bytes, bytes | None] = {}
        for hook in self._genesis_hooks:
            writes.update(hook(genesis))
        return writes

    def register(self, tx_type: str, handler: Handler, precheck: Precheck | None = None,
                 payload_check: PayloadCheck | None = None, private: bool = False) -> None:
        """``private``: the type's payloads and results are what its app shows only to
        roles it names (fund flows, signed reads), so the public block and transaction
        routes show them as their hashes only (``ledger.api``)."""
        assert tx_type not in self._handlers, f"{tx_type} registered twice"
        self._handlers[tx_type] = handler
        if private:
            self._private.add(tx_type)
        if precheck is not None:
            self._prechecks[tx_type] = precheck
        if payload_check is not None:
            self._payload_checks[tx_type] = payload_check

    def precheck(self, tx_type: str) -> Precheck | None:
        return self._prechecks.get(tx_type)

    def payload_check(self, tx_type: str) -> PayloadCheck | None:
        return self._payload_checks.get(tx_type)

    def is_private(self, tx_type: str) -> bool:
        return tx_type in self._private

    def on_begin_block(self, hook: BeginBlockHook) -> None:
        self._begin_hooks.append(hook)

    def handler(self, tx_type: str) -> Handler | None:
        return self._handlers.get(tx_type)

    def types(self) -> list[str]:
        return sorted(self._handlers)

    def begin_block(self, state: StateView, height: int, time_ms: int) -> None:
        for hook in self._begin_hooks:
            hook(state, height, time_ms)


@dataclass
class BlockExecution:
    results: list[TxResult]
    state_changes: dict[bytes, bytes | None]
    index_changes: dict[bytes, bytes | None]
    # Ids that now count as executed, with their position in the block. A
    # transaction rejected for chain, signature, expiry or duplication is
    # not among them.
    executed: dict[bytes, int]


def _failed(tx_id: bytes, code: str, reason: str) -> TxResult:
    return TxResult(tx_id=tx_id, ok=False, code=code, reason=reason, data={})


def execute_block(
    suite: Suite,
    chain_id: str,
    block: Block,
    state_get: StateGet,
    index_get: StateGet,
    registry: Registry,
    seen: Callable[[bytes], bool],
    signature_ok: Callable[[Transaction], bool] | None = None,
) -> BlockExecution:
    """Execute ``block`` over the state read through ``state_get``.

    ``seen(tx_id)`` answers whether a transaction id was executed in an
    earlier block. ``signature_ok`` may be given by a caller that already
    verified the signatures (e.g. through a cache); by default each
    signature is checked here.
    """
    check_sig = signature_ok or (lambda tx: tx.signature_ok(suite))
    header = block.header
    block_state = StateView(state_get)
    block_index = StateView(index_get)
    registry.begin_block(block_state, header.height, header.time)
    results: list[TxResult] = []
    executed: dict[bytes, int] = {}
    for position, tx in enumerate(block.txs):
        tx_id = tx.tx_id(suite)
        result = _execute_one(
            suite, chain_id, header.height, header.time, tx, tx_id, block_state, block_index,
            registry, seen, executed, check_sig,
        )
        if _consumes_id(result):
            executed[tx_id] = position
        results.append(result)
    return BlockExecution(results, block_state.writes, block_index.writes, executed)


def _consumes_id(result: TxResult) -> bool:
    return result.code not in ("wrong_chain", "bad_signature", "expired", "duplicate")


def _execute_one(
    suite: Suite,
    chain_id: str,
    height: int,
    time_ms: int,
    tx: Transaction,
    tx_id: bytes,
    block_state: StateView,
    block_index: StateView,
    registry: Registry,
    seen: Callable[[bytes], bool],
    in_block: Mapping[bytes, int],
    check_sig: Callable[[Transaction], bool],
) -> TxResult:
    # Checks that do not consume the id: a forged copy of someone's transaction
    # (bad signature) or a stale one must not block the genuine one later.
    if tx.chain_id != chain_id:
        return _failed(tx_id, "wrong_chain", f"transaction is for chain {tx.chain_id!r}")
    if not check_sig(tx):
        return _failed(tx_id, "bad_signature", "signature does not verify for the sender key")
    if tx.valid_until < time_ms:
        return _failed(
            tx_id, "expired", f"valid_until {tx.valid_until} is before block time {time_ms}"
        )
    if tx_id in in_block or seen(tx_id):
        return _failed(tx_id, "duplicate", "transaction id was already executed")
    # From here on the id counts as executed, whatever the handler decides.
    handler = registry.handler(tx.type)
    if handler is None:
        return _failed(tx_id, "unknown_type", f"no handler for transaction type {tx.type!r}")
    problem = registry.sender_problem(block_state.get, tx.sender, height)
    if problem:
        return _failed(tx_id, "forbidden", problem)
    ctx = ExecContext(
        suite=suite, chain_id=chain_id, height=height, time_ms=time_ms, tx=tx, tx_id=tx_id,
        state=StateView(block_state.get), index=StateView(block_index.get), registry=registry,
    )
    try:
        handler(ctx)
    except TxRejected as exc:
        return _failed(tx_id, exc.code, str(exc))
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:  # a handler bug must not halt the whole consortium
        log.exception("handler for %s failed on tx %s", tx.type, tx_id.hex())
        return _failed(tx_id, "handler_error", f"{type(exc).__name__} in {tx.type} handler")
    block_state.writes.update(ctx.state.writes)
    block_index.writes.update(ctx.index.writes)
    return TxResult(tx_id=tx_id, ok=True, code="ok", reason="", data=ctx.data)


def merged(*layers: Mapping[bytes, bytes | None]) -> dict[bytes, bytes | None]:
    """Later layers win; used to stack speculative blocks."""
    out: dict[bytes, bytes | None] = {}
    for layer in layers:
        out.update(layer)
    return out
