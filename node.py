#!/usr/bin/env python3
"""govledger node: ``python node.py init | join | run | up | demo``.

Theory of operation
-------------------
One process runs one validator node. :class:`Node` composes it: the genesis
file and the node's key, the LevelDB store, the chain with the applications'
transaction handlers, the PBFT replica, the encrypted peer transport, the
admission pipeline and the HTTP API, all on one asyncio event loop.

The replica is pure (``consensus.replica``); this module is the thin driver
around it (STYLE.md §2). One task owns the replica and reads a bounded queue
of inputs — peer messages, admitted transactions and timer ticks; with a
single writer there are no locks. After each call it carries out the
returned effects in order: ``Persist`` is a synced LevelDB write of the
replica's votes, done before any later message leaves; ``Append`` is the
block's single atomic synced write, after which waiting clients are
answered; ``Send``/``Broadcast`` hand canonical bytes to the transport. Then
it re-arms one timer at the replica's next deadline.

HTTP handlers only decode, check, enqueue and reply. Signature checks —
for submitted and for gossiped transactions — run in a worker process in
small batches so the event loop stays responsive. SIGTERM or Ctrl-C stops
accepting work, lets the replica finish the input in hand, stops the
transport and closes the store.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import functools
import gc
import importlib
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from consensus.effects import Append, Broadcast, Effect, Persist, Send
from consensus.messages import (
    Blocks,
    Message,
    PrePrepare,
    TxGossip,
    decode_message,
    encode_message,
)
from consensus.replica import Replica, ReplicaConfig
from consensus.transport import PeerTransport
from ledger import acl, api, api_gov, evidence, governance, reads, software_version
from ledger.admission import Admission, Limits, Rejection, verify_batch
from ledger.block import certificate_signatures
from ledger.chain import Chain, scheduled_validators
from ledger.codec import decode_value
from ledger.crypto import load_private_key_file, sm2_backend_name
from ledger.errors import CorruptionError, DecodeError, GovledgerError, InputError
from ledger.execution import Registry
from ledger.genesis import Genesis, load_genesis
from ledger.network import NodeConfig, init_network, join_network, load_node_config
from ledger.privacy import load_consortium_key
from ledger.sigworker import SigWorker
from ledger.store import (
    LevelDBStore,
    older_store_format,
    raise_open_files_limit,
    tables_open_budget,
)
from ledger.tx import TX_PURPOSE, Transaction

log = logging.getLogger("govledger.node")
ROOT = Path(__file__).resolve().parent
VERSION = software_version()  # in /v1/status: which nodes run which release
INBOX_MAX = 50_000
WAIT_COMMIT_S = 30.0
LISTEN_BACKLOG = 1024  # pending connections; the bench opens hundreds at once


def now_ms() -> int:
    return int(time.time() * 1000)


# Applications plug in through one module each, exposing register(registry),
# add_routes(app), OPENAPI (paths) and load_samples(directory, client) -> str.
APP_MODULES = ("certs.app", "fiscal.app")


def app_modules() -> list[Any]:
    found = []
    for name in APP_MODULES:
        if importlib.util.find_spec(name) is not None:
            found.append(importlib.import_module(name))
    return found


def build_registry() -> Registry:
    """Every application's transaction handlers (the same on every node)."""
    registry = Registry()
    evidence.register(registry)
    governance.register(registry)
    reads.register(registry)
    for app in app_modules():
        app.register(registry)
    return registry


class BatchVerifier:
    """Signature checks in small batches, in worker processes when there are any (round
    robin). A check that cannot be made there (the worker died) resolves None: the caller
    checks that signature itself. A dead worker is replaced, at most once per
    ``RESPAWN_S``.

    Batches form naturally: while no batch is out, what was asked for in this turn of the
    event loop leaves at the end of the turn; while one is out, new checks wait for its
    answer (at most ``linger_s``) and then leave together. An idle worker so costs a check
    no wait, and a busy one still gets large batches. (A fixed linger added its whole 2 ms
    to every check at moderate load, where a batch held one or two signatures: twice per
    transaction, at its entry node and again at the primary.)"""

    RESPAWN_S = 5.0

    def __init__(self, suite_name: str, workers: int = 0, batch_max: int = 256,
                 linger_s: float = 0.002) -> None:
        self.suite_name = suite_name
        self.batch_max, self.linger_s = batch_max, linger_s
        self.workers = [SigWorker(suite_name) for _ in range(workers)]
        self._next = 0
        self._respawned_at = 0.0
        self._closed = False
        self._items: list[tuple[bytes, str, bytes, bytes]] = []
        self._futures: list[asyncio.Future[bool | None]] = []
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._out = 0  # batches sent to workers and not answered yet

    def verify(self, tx: Transaction) -> asyncio.Future[bool | None]:
        return self.verify_sig(tx.sender, TX_PURPOSE, tx.body_bytes(), tx.sig)

    def verify_sig(self, key: bytes, purpose: str, message: bytes, sig: bytes
                   ) -> asyncio.Future[bool | None]:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool | None] = loop.create_future()
        self._items.append((key, purpose, message, sig))
        self._futures.append(fut)
        if len(self._items) >= self.batch_max:
            self._flush()
        elif self._timer is None:
            self._timer = (loop.call_soon(self._flush) if self._out == 0
                           else loop.call_later(self.linger_s, self._flush))
        return fut

    def _worker(self) -> SigWorker | None:
        if not self.workers:
            return None
        self._next = (self._next + 1) % len(self.workers)
        worker = self.workers[self._next]
        now = time.monotonic()
        if worker.dead and not self._closed and now - self._respawned_at >= self.RESPAWN_S:
            self._respawned_at = now
            log.warning("starting a new signature worker in place of pid %s", worker.pid)
            worker = self.workers[self._next] = SigWorker(self.suite_name)
        return worker

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, futures = self._items, self._futures
        self._items, self._futures = [], []
        if not items:
            return
        worker = self._worker()
        if worker is None:
            self._resolve(futures, verify_batch(self.suite_name, items))
            return
        self._out += 1
        worker.check(items).add_done_callback(
            lambda t: self._answered(futures, None if t.cancelled() else t.result()))

    def _answered(self, futures: list[asyncio.Future[bool | None]], results: list[bool] | None
                  ) -> None:
        self._out -= 1
        self._resolve(futures, results)
        if self._out == 0 and self._items:
            self._flush()  # what waited for this answer leaves now

    async def close(self) -> None:
        """Send what is waiting for company now, then stop the workers once they answered."""
        self._flush()
        self._closed = True
        await asyncio.gather(*(w.close() for w in self.workers))

    @staticmethod
    def _resolve(futures: list[asyncio.Future[bool | None]], results: list[bool] | None
                 ) -> None:
        for i, fut in enumerate(futures):
            if not fut.done():
                fut.set_result(results[i] if results is not None else None)


class Node:
    """One running validator node (see the module docstring)."""

    def __init__(self, config: NodeConfig, verify_workers: int = 1) -> None:
        self.config = config
        self.name = config.name
        self.genesis: Genesis = load_genesis(config.genesis)
        self.suite = self.genesis.crypto
        self.key = load_private_key_file(config.key, self.genesis.suite)
        # For HMAC lookups of personal identifiers (see ledger.privacy); None: not offered.
        self.consortium_key = (load_consortium_key(config.consortium_key)
                               if config.consortium_key else None)
        self.me = self.key.public_key().raw
        self.store = LevelDBStore(str(config.data_dir / "ledger"), self.suite,
                                  compression=config.compression,
                                  write_buffer_bytes=config.write_buffer_mb << 20)
        try:
            self.registry = build_registry()
            self.chain = Chain(self.store, self.genesis, self.registry,
                               state_cache_bytes=config.state_cache_mb << 20)
            self.replica = Replica(self.chain, self.key, ReplicaConfig.from_genesis(
                self.genesis, mempool_max=config.mempool_max,
                pipeline_depth=config.pipeline_depth))
        except BaseException:
            self.store.close()
            raise
        self.limits = Limits(tx_bytes_max=config.tx_bytes_max,
                             sender_rate_per_s=config.sender_rate_per_s,
                             sender_burst=config.sender_burst)
        self._apply_chain_config()
        self.admission = Admission(self.genesis.chain_id, self.registry, self.limits)
        self.verify_workers = verify_workers
        self.catchup_verifier: BatchVerifier | None = None  # see _verifiers_for
        self._closing: set[asyncio.Task[None]] = set()  # catch-up verifiers stopping
        self.verifier = BatchVerifier(self.genesis.suite)  # workers start with the app
        self._dial_peers, self._allowed_peers = self._peer_plan()
        self.transport = PeerTransport(self.suite, self.key, self.genesis.chain_id,
                                       self._dial_peers, self._on_peer_message,
                                       allowed=self._peer_allowed)
        self.inbox: asyncio.Queue[tuple[str, Any]] | None = None
        self.waiters: dict[bytes, list[asyncio.Future[dict[str, Any]]]] = {}
        self.submitted_at: OrderedDict[bytes, float] = OrderedDict()
        self.recent_latency: deque[float] = deque(maxlen=500)
        self.admitting = 0  # submissions past the queue check, their signature being checked
        self.openapi_paths: dict[str, Any] = {**api.LEDGER_OPENAPI, **api_gov.GOV_OPENAPI}
        for app in app_modules():
            self.openapi_paths.update(app.OPENAPI)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.failed = False  # the consensus loop stopped on an error: exit non-zero
        self._setup_metrics()

    # -- metrics ------------------------------------------------------------------------

    def _setup_metrics(self) -> None:
        r = self.metrics_registry = CollectorRegistry()
        self.m_height = Gauge("govledger_height", "Height of the last appended block", registry=r)
        self.m_view = Gauge("govledger_view", "Current PBFT view", registry=r)
        self.m_mempool = Gauge("govledger_mempool", "Transactions waiting to be ordered",
                               registry=r)
        self.m_peers = Gauge("govledger_peers", "Connected validator peers", registry=r)
        self.m_view_changes = Gauge("govledger_view_changes", "View changes started",
                                    registry=r)
        self.m_latency = Histogram(
            "govledger_commit_latency_seconds", "Submit to commit, for transactions admitted here",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        self.m_rejected = Counter("govledger_rejected_requests", "Requests refused, by reason",
                                  ["reason"], registry=r)
        self.m_txs = Counter("govledger_committed_transactions", "Transactions in appended blocks",
                             registry=r)
        self.m_dropped = Counter("govledger_dropped_peer_messages",
                                 "Peer messages dropped before consensus", ["reason"], registry=r)

    def _recent_latency_ms(self) -> dict[str, int] | None:
        """p50 / p90 of submit-to-commit over the last transactions admitted here, in whole
        ms (the canonical msgpack an API client may ask for carries no floats)."""
        if not self.recent_latency:
            return None
        ordered = sorted(self.recent_latency)

        def pick(q: float) -> int:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))])

        return {"p50": pick(0.5), "p90": pick(0.9), "samples": len(ordered)}

    def count_rejection(self, code: str) -> None:
        self.m_rejected.labels(reason=code).inc()

    def _refresh_gauges(self) -> None:
        self.m_height.set(self.chain.height)
        self.m_view.set(self.replica.view)
        self.m_mempool.set(len(self.replica.mempool))
        self.m_peers.set(len(self.transport.connected()))
        self.m_view_changes.set(self.replica.stats["view_changes"])

    # -- API surface used by ledger.api --------------------------------------------------------

    def parse_limits(self) -> Limits:
        return self.limits

    def is_pending(self, tx_id: bytes) -> bool:
        return self.replica.holds(tx_id)

    def status(self) -> dict[str, Any]:
        self._refresh_gauges()
        r = self.replica
        names = {v.public_key: v.name for v in r.validators.validators}
        head = self.chain.head()
        return {
            "node": self.name, "chain_id": self.genesis.chain_id, "suite": self.genesis.suite,
            "sm2_backend": sm2_backend_name() if self.genesis.suite == "sm" else None,
            "height": self.chain.height, "head_hash": head.block_hash(self.suite),
            "head_time": head.time, "view": r.view, "in_view_change": r.vc_target is not None,
            "primary": names.get(r.primary(), r.primary().hex()),
            "is_validator": r.is_validator,
            "validators": [v.name for v in r.validators.validators],
            "validator_keys": {v.name: v.public_key.hex() for v in r.validators.validators},
            "commit_latency_ms": self._recent_latency_ms(),
            "peers": len(self.transport.connected()),
            "peers_connected": sorted(names.get(k, k.hex()[:16]) for k in
                                      self.transport.connected()),
            "mempool": r.pool_size, "stable_checkpoint": r.stable,
            "view_changes": r.stats["view_changes"], "time": now_ms(),
            "version": VERSION,
        }

    def admit_max(self) -> int:
        """How many transactions may wait to be ordered before this node refuses new ones
        (503 busy): two blocks' worth, enough to fill the next block while one is in flight
        and to shed an overload in seconds, not minutes; at most half the pool, whose other
        half takes what the other nodes admitted."""
        return max(1, min(self.config.mempool_max // 2, 2 * self.replica.config.batch_tx_max))

    def check_capacity(self) -> None:
        """Refuse a new transaction (503 busy, Retry-After) while ``admit_max`` wait here:
        before decoding it and checking its signature, which is what an overloaded network
        can least spare (each transaction admitted costs every node one). Taking all that
        came until the pool was full left the nodes verifying transactions instead of
        ordering them: 900 tx/s offered where ~500 commit, 8 - 30 committed per second and
        a view change every few seconds (bench/RESULTS.md, session 19)."""
        # Pooled, being checked, or checked and queued for the replica (the inbox also
        # carries peer messages: a full inbox is a busy node too).
        queued = self.inbox.qsize() if self.inbox is not None else 0
        waiting = len(self.replica.mempool) + self.admitting + queued
        if waiting >= self.admit_max():
            raise Rejection(503, "busy", f"{waiting} transactions are waiting to be ordered "
                                         "here; retry in a second", retry_after_s=1)

    async def submit(self, tx: Transaction, wait: bool) -> dict[str, Any]:
        if self._stopping or self.inbox is None:
            raise Rejection(503, "unavailable", "the node is shutting down")
        self._require_validator()
        tx_id = tx.tx_id(self.suite)
        self.admission.check(
            tx, tx_id, now_ms(), self.chain.state_get,
            executed=lambda i: self.store.get_tx_location(i) is not None,
            pending=lambda i: self.replica.holds(i) or i in self.submitted_at)
        self.admitting += 1  # the route checked capacity (check_capacity) before decoding
        try:
            if not await self._signature_ok(tx):
                raise Rejection(401, "bad_signature",
                                "the signature does not verify for the sender key")
        finally:
            self.admitting -= 1
        self.replica.note_verified(tx)  # so proposing or re-executing it does not check again
        future: asyncio.Future[dict[str, Any]] | None = None
        if wait:
            future = asyncio.get_running_loop().create_future()
            self.waiters.setdefault(tx_id, []).append(future)
        self.submitted_at[tx_id] = time.monotonic()
        while len(self.submitted_at) > 4 * self.config.mempool_max:
            self.submitted_at.popitem(last=False)
        try:
            self.inbox.put_nowait(("submit", tx))
        except asyncio.QueueFull:
            self.submitted_at.pop(tx_id, None)
            raise Rejection(503, "busy", "the node is overloaded; retry shortly") from None
        if future is None:
            return {"tx_id": tx_id, "status": "pending"}
        try:
            return await asyncio.wait_for(asyncio.shield(future), WAIT_COMMIT_S)
        except TimeoutError:
            return {"tx_id": tx_id, "status": "pending",
                    "detail": f"not committed within {WAIT_COMMIT_S:.0f} s; poll "
                              f"GET /v1/tx/{tx_id.hex()}"}

    async def authorize_read(self, request: web.Request, roles: tuple[str, ...]
                             ) -> acl.AccountRecord:
        """Check a signed read (see ledger.reads) for this request, then log it on the ledger."""
        tx = reads.parse_header(request.headers.get(reads.HEADER), roles)
        self._require_validator()  # else the read could not be logged
        tx_id = tx.tx_id(self.suite)
        wanted = reads.ReadRequest(request.method, request.path, list(request.query.items()))
        reads.check_request(tx, wanted, self.genesis.chain_id, now_ms(), self._read_used, tx_id)
        if not await self._signature_ok(tx):
            raise Rejection(401, "bad_signature", "the signed read's signature does not verify")
        account = reads.check_reader(self.chain.state_get, tx, roles)
        if self._read_used(tx_id):  # the same read raced in while its signature was checked
            raise Rejection(409, "replayed", "this signed read was used before")
        self.submitted_at[tx_id] = time.monotonic()
        self._enqueue("submit", tx)
        return account

    async def _signature_ok(self, tx: Transaction) -> bool:
        """The worker's verdict on ``tx``'s signature; checked here if the worker gave none."""
        ok = await self.verifier.verify(tx)
        if ok is None:
            return self.suite.verify(tx.sender, TX_PURPOSE, tx.body_bytes(), tx.sig)
        return ok

    def _require_validator(self) -> None:
        """Only a validator can get a transaction ordered: the others drop gossip from a
        non-validator, so what a joining (or removed) node accepted would never commit."""
        if self.replica.is_validator:
            return
        urls = ", ".join(f"http://{v.address}" for v in self.replica.validators.validators[:4])
        raise Rejection(503, "not_a_validator",
                        f"{self.name} is not a validator (yet, or any more), so it cannot have "
                        f"transactions or signed reads ordered; send them to a validator: {urls}")

    def _read_used(self, tx_id: bytes) -> bool:
        return (self.store.get_tx_location(tx_id) is not None or self.replica.holds(tx_id)
                or tx_id in self.submitted_at)

    # -- peers -----------------------------------------------------------------------------------

    def _peer_plan(self) -> tuple[dict[bytes, str], set[bytes]]:
        """Whom to dial, and whom to accept: the validators of the next block and those
        scheduled to join (or leave) at a later height.

        Validators dial a scheduled newcomer as soon as the decision is appended, so it
        catches up by state transfer before it has to vote. A node that is in neither set
        (a newcomer not yet added, or a validator that was removed) dials nobody — it
        would only be refused — and accepts the validators it knows of, which dial it
        once they have scheduled it.
        """
        known = {v.public_key: v.address for v in self.replica.validators.validators}
        scheduled = scheduled_validators(self.chain.state_get)
        if scheduled is not None:
            known.update((v.public_key, v.address) for v in scheduled.validators)
        member = known.pop(self.me, None) is not None
        return (known if member else {}), set(known)

    def _peer_allowed(self, key: bytes) -> bool:
        return key in self._allowed_peers

    def _refresh_peers(self) -> None:
        dial, allowed = self._peer_plan()
        if (dial, allowed) != (self._dial_peers, self._allowed_peers):
            log.info("peers change: dialling %d, accepting %d", len(dial), len(allowed))
            self._dial_peers, self._allowed_peers = dial, allowed
            self.transport.set_peers(dial)

    def _apply_chain_config(self) -> None:
        """Admission follows the committee's on-chain settings (the replica does too)."""
        raw = self.chain.state_get(b"sys/config")
        config = decode_value(raw) if raw is not None else {}
        window = config.get("tx_valid_window_ms") if isinstance(config, dict) else None
        self.limits.valid_window_ms = (window if isinstance(window, int) and window > 0
                                       else Limits.valid_window_ms)

    def _on_peer_message(self, peer: bytes, payload: bytes) -> None:
        try:
            msg = decode_message(payload)
        except DecodeError as exc:
            self.m_dropped.labels(reason="undecodable").inc()
            log.warning("dropping an undecodable message from peer %s: %s", peer.hex()[:16], exc)
            return
        # Signatures are checked in the worker process before the replica sees the message,
        # off the event loop: transactions' (gossip, proposals) and the commit certificates
        # of fetched blocks (state transfer is otherwise mostly SM2; the transactions of a
        # certified block are not checked again — Replica._check_certified says why).
        sigs: list[tuple[bytes, str, bytes, bytes]] = []
        txs: list[Transaction] = []
        if isinstance(msg, TxGossip):
            txs = list(msg.txs)
        elif isinstance(msg, PrePrepare):
            txs = list(msg.block.txs)
        elif isinstance(msg, Blocks):
            sigs = [s for cb in msg.blocks for s in certificate_signatures(
                self.suite, self.genesis.chain_id, cb.block.header, cb.certificate)]
        unseen = [t for t in txs if not self.replica.is_verified(t)]
        if isinstance(msg, TxGossip):  # late gossip of what we hold or committed: no check,
            # nor of what a full pool would drop (the replica drops it unchecked)
            unseen = [] if self.replica.pool_full() else [
                t for t in unseen if not self.replica.settled(t.tx_id(self.suite))]
        if unseen or sigs:
            asyncio.get_running_loop().create_task(self._verify_then_enqueue(msg, unseen, sigs))
        else:
            self._enqueue("msg", msg)

    def _verifiers_for(self, msg: Message) -> list[BatchVerifier]:
        """The verifiers to spread ``msg``'s signature checks over. A node far behind gets
        a worker more for state transfer — four SM2 checks per fetched block are most of
        its work — which it stops once caught up (at the normal load one worker is
        cheaper: fewer, larger batches). A node that checks in its event loop (run with
        no worker, as on a machine its network's nodes fill) takes that worker too, and
        checks fetched blocks there alone: while it catches up the others mostly wait,
        so there is a core to spare (bench/RESULTS.md, session 15)."""
        far = (isinstance(msg, Blocks) and
               self.replica.catchup_target - self.replica.executed
               > 2 * self.replica.config.fetch_blocks_max)
        if far and self.catchup_verifier is None:
            self.catchup_verifier = BatchVerifier(self.genesis.suite, workers=1)
        if far and self.catchup_verifier is not None:
            if not self.verifier.workers:
                return [self.catchup_verifier]
            return [self.verifier, self.catchup_verifier]
        return [self.verifier]

    async def _verify_then_enqueue(self, msg: Message, txs: list[Transaction],
                                   sigs: list[tuple[bytes, str, bytes, bytes]]) -> None:
        checks = [(t.sender, TX_PURPOSE, t.body_bytes(), t.sig) for t in txs] + sigs
        verifiers = self._verifiers_for(msg)
        share = -(-len(checks) // len(verifiers))
        results = await asyncio.gather(*(verifiers[i // share].verify_sig(*c)
                                         for i, c in enumerate(checks)))
        for tx, ok in zip(txs, results, strict=False):
            if ok:
                self.replica.note_verified(tx)
        for sig, ok in zip(sigs, results[len(txs):], strict=True):
            if ok:
                self.replica.note_sig_verified(*sig)
        self._enqueue("msg", msg)

    def _enqueue(self, kind: str, data: Any) -> None:
        if self.inbox is None or self._stopping:
            return
        try:
            self.inbox.put_nowait((kind, data))
        except asyncio.QueueFull:
            self.m_dropped.labels(reason="inbox_full").inc()

    # -- the consensus task ------------------------------------------------------------------

    async def _consensus_loop(self) -> None:
        assert self.inbox is not None
        if not self._step(self.replica.start):
            return
        while True:
            kind, data = await self.inbox.get()
            if kind == "stop":
                return
            if kind == "msg":
                ok = self._step(functools.partial(self.replica.receive, data))
            elif kind == "submit":
                ok = self._step(functools.partial(self.replica.submit, data))
            else:
                ok = self._step(self.replica.on_timer)
            if not ok:
                return

    def _step(self, call: Callable[[int], list[Effect]]) -> bool:
        """One input to the replica and its effects carried out; False if the node must
        stop."""
        assert self.inbox is not None
        try:
            self._apply(call(now_ms()))
            if self.inbox.empty() and self.replica.gossip_out:
                self._apply(self.replica.flush_gossip())  # idle: no company is coming
        except CorruptionError:
            log.critical("storage is corrupted; stopping the node", exc_info=True)
            self._fail_stop()
            return False
        except Exception:
            # A synced write that failed (a full or failing disk) or a bug: the replica
            # may now be ahead of what is on disk, so it must not go on — and a node
            # serving HTTP with its consensus dead would look healthy. Stop (exit 1, for a
            # supervisor to restart it); a restart recovers from the store, which holds
            # everything acknowledged.
            log.critical("the consensus loop failed; stopping the node", exc_info=True)
            self._fail_stop()
            return False
        return True

    def _fail_stop(self) -> None:
        self.failed = True
        os.kill(os.getpid(), signal.SIGTERM)

    def _apply(self, effects: list[Effect]) -> None:
        appends: list[Append] = []  # consecutive appends share one synced write
        for i, effect in enumerate(effects):
            if isinstance(effect, Append):
                appends.append(effect)
                if i + 1 < len(effects) and isinstance(effects[i + 1], Append):
                    continue
                self._append(appends)
                appends = []
            elif isinstance(effect, Persist):
                self.store.put_consensus(effect.changes)
            elif isinstance(effect, Send):
                self.transport.send(effect.to, encode_message(effect.message))
            elif isinstance(effect, Broadcast):
                self.transport.broadcast(encode_message(effect.message))
        self._arm_timer()

    def _append(self, effects: list[Append]) -> None:
        self.chain.append_many([(e.pending, e.certificate) for e in effects])
        for effect in effects:
            self._appended(effect)
        if (self.catchup_verifier is not None
                and self.replica.catchup_target <= self.replica.executed):
            # Caught up: back to one worker (the second stops once it has answered).
            task = asyncio.get_running_loop().create_task(self.catchup_verifier.close())
            self._closing.add(task)  # held until done (the loop keeps only weak references)
            task.add_done_callback(self._closing.discard)
            self.catchup_verifier = None
        self._refresh_peers()
        if any(b"sys/config" in e.pending.execution.state_changes for e in effects):
            self._apply_chain_config()

    def _appended(self, effect: Append) -> None:
        """Answer the clients waiting for the transactions of a block just appended."""
        block = effect.pending.block
        height = block.header.height
        results = effect.pending.execution.results
        self.m_txs.inc(len(block.txs))
        log.debug("appended block %d with %d transactions", height, len(block.txs))
        for index, result in enumerate(results):
            tx_id = result.tx_id
            started = self.submitted_at.pop(tx_id, None)
            if started is not None:
                self.m_latency.observe(time.monotonic() - started)
                self.recent_latency.append((time.monotonic() - started) * 1000)
            for fut in self.waiters.pop(tx_id, []):
                if not fut.done():
                    fut.set_result({"tx_id": tx_id, "status": "committed", "height": height,
                                    "index": index, "result": result})

    def _arm_timer(self) -> None:
        """Wake the replica at its next deadline. Most messages leave the deadline as it
        was; re-arming only when it moves spares a cancelled timer per message (5 % of the
        event loop at light load, where each block is a dozen messages)."""
        deadline = self.replica.next_deadline_ms()
        if deadline == self._timer_deadline and (deadline is None or self._timer is not None):
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_deadline = deadline
        if deadline is None:
            return
        delay = max(0.0, (deadline - now_ms()) / 1000.0)
        self._timer = asyncio.get_running_loop().call_later(delay, self._timer_fired)

    def _timer_fired(self) -> None:
        # Forget the fired timer, so the next _arm_timer sets one even for the same deadline
        # (the loop may wake a little before it, or the inbox may have been full).
        self._timer, self._timer_deadline = None, None
        self._enqueue("timer", None)

    # -- lifecycle ---------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        # A signed read travels hex-encoded in one header (ledger.reads): allow that header
        # its full length, which is over aiohttp's default limit of 8190 bytes per field.
        app = web.Application(middlewares=[api.error_middleware, api.read_limit_middleware],
                              client_max_size=self.config.tx_bytes_max * 3 + 4096,
                              handler_args={"max_field_size": reads.HEADER_CHARS_MAX + 256})
        app[api.NODE_KEY] = self
        if self.config.reads_per_s:
            app[api.READ_LIMIT_KEY] = api.ReadLimit(self.config.reads_per_s,
                                                    self.config.read_burst)
        logging.getLogger("aiohttp.server").addFilter(api.CLIENT_FAULT_LOG)  # once
        api.add_routes(app)
        api_gov.add_routes(app)
        for module in app_modules():
            module.add_routes(app)
        self.transport.add_routes(app)
        web_root = ROOT / "web"
        if (web_root / "index.html").exists():
            async def dashboard(_: web.Request) -> web.FileResponse:
                return web.FileResponse(web_root / "index.html")

            # The dashboard's files by name; any other name is a JSON 404 without a look at
            # the file system (aiohttp's add_static answered a missing file with an empty
            # 404, and a name too long for the file system with a 500).
            files = {p.relative_to(web_root).as_posix() for p in web_root.rglob("*")
                     if p.is_file()}

            async def static_file(request: web.Request) -> web.StreamResponse:
                name = request.match_info["filename"]
                if name not in files:
                    return api.error(404, "not_found", f"the dashboard has no file {name}")
                return web.FileResponse(web_root / name)

            app.router.add_get("/", dashboard)
            app.router.add_get("/static/{filename:.+}", static_file)
        app.cleanup_ctx.append(self._lifecycle)
        return app

    async def _lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        self.verifier = BatchVerifier(self.genesis.suite, self.verify_workers)
        # Started now and waited for (a fresh interpreter imports the crypto suite), so the
        # first transaction does not wait for it.
        await asyncio.gather(*(w.check([]) for w in self.verifier.workers))
        self.inbox = asyncio.Queue(maxsize=INBOX_MAX)
        self._task = asyncio.get_running_loop().create_task(self._consensus_loop())
        await self.transport.start()
        log.info("node %s serving on http://%s:%d (chain %s, height %d, view %d)", self.name,
                 self.config.host, self.config.port, self.genesis.chain_id, self.chain.height,
                 self.replica.view)
        try:
            yield
        finally:
            await self.shutdown()

    async def shutdown(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        log.info("node %s stopping", self.name)
        if self._timer is not None:
            self._timer.cancel()
        if self.inbox is not None and self._task is not None:
            # Drain: the replica finishes what it has in hand, then stops.
            while not self.inbox.empty():
                self.inbox.get_nowait()
            self.inbox.put_nowait(("stop", None))
            try:
                await asyncio.wait_for(self._task, 10)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        await self.transport.stop()
        await self.verifier.close()
        if self.catchup_verifier is not None:
            await self.catchup_verifier.close()
        await asyncio.gather(*self._closing)
        for futures in self.waiters.values():
            for fut in futures:
                if not fut.done():
                    fut.cancel()
        self.store.close()
        log.info("node %s stopped cleanly", self.name)


# -- logging ----------------------------------------------------------------------------------


class _NodeContext(logging.Filter):
    """Adds node, view and height to every log line (one line per event)."""

    def __init__(self) -> None:
        super().__init__()
        self.node: Node | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        n = self.node
        record.node = n.name if n else "-"
        record.view = n.replica.view if n else "-"
        record.height = n.chain.height if n else "-"
        return True


def setup_logging(level: str) -> _NodeContext:
    context = _NodeContext()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(context)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s node=%(node)s view=%(view)s height=%(height)s "
        "%(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    return context


# -- commands -----------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    layout = init_network(Path(args.dir), args.nodes, suite=args.suite, base_port=args.base_port,
                          with_sample_orgs=args.with_sample_orgs, force=args.force,
                          chain_id=args.chain_id, time_ms=now_ms())
    print(f"initialised {args.nodes}-node network {layout.genesis.chain_id!r} "
          f"(suite {args.suite}) in {layout.directory}")
    faults = (args.nodes - 1) // 3
    if faults == 0 and args.nodes > 1:  # 2 or 3 nodes: every one of them is needed
        print(f"note: {args.nodes} nodes keep working only while all of them are up and "
              "honest; PBFT needs 3f+1 nodes to survive f faulty ones (4 for one)")
    else:
        print(f"it keeps working with up to {faults} node{'s' if faults > 1 else ''} down or "
              f"malicious" if faults else "a single node: for development (no fault tolerance)")
    for path in layout.node_configs:
        print(f"  python node.py run --config {path}")
    if layout.orgs:
        print(f"  sample organisations and their keys: {layout.directory / 'keys' / 'README.md'}")
    print(f"or start them all: python node.py up --dir {layout.directory}")
    return 0


def cmd_join(args: argparse.Namespace) -> int:
    layout = join_network(Path(args.dir), args.name, port=args.port, host=args.host)
    key_hex = layout.public_key.hex()
    key_file = str(layout.committee_key) if layout.committee_key else "COMMITTEE_MEMBER_KEY.pem"
    print(f"created {args.name} in {layout.config_path.parent} (not a validator yet)")
    print(f"  public key: {key_hex}")
    print(f"  address:    {layout.address}")
    print("1. start it (it waits, then catches up by state transfer once it is added):")
    print(f"   python node.py run --config {layout.config_path}")
    print("2. a committee member proposes adding it:")
    print(f"   govledger --node {layout.node_url} gov propose add_validator name={args.name} "
          f"public_key={key_hex} address={layout.address} --key {key_file}")
    print("3. the other members vote until two thirds approve:")
    print(f"   govledger --node {layout.node_url} gov vote PROPOSAL_ID approve "
          "--key MEMBER_KEY.pem")
    print("It votes from the first height after the next checkpoint once the proposal passes.")
    return 0


# Garbage-collector thresholds for a running node (CPython's defaults: 700, 10, 10). A
# node allocates and frees a block's worth of decoded transactions, votes and tree nodes
# many times a second; with the defaults a young-generation collection ran every few
# milliseconds, traversing objects about to die anyway, and full collections walked the
# whole heap: 7 - 8 % of a node's busy time under load, and pauses in the tail latency
# (bench/RESULTS.md, session 11). Reference counting frees all but cycles at once, so
# larger thresholds only delay the collection of cyclic garbage.
GC_THRESHOLDS = (20_000, 20, 10)


def tune_gc() -> None:
    """Set the node's collector thresholds, and move everything built at start-up (the
    configuration, genesis, registries, imported modules) out of the collector's sight:
    it lives as long as the process, and every full collection would walk it again."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def cmd_run(args: argparse.Namespace) -> int:
    config = load_node_config(Path(args.config))
    context = setup_logging(args.log_level or config.log_level)
    open_files = raise_open_files_limit()  # before the store sizes its table cache on it
    log.info("open files limit %d: LevelDB keeps up to %d tables open", open_files,
             tables_open_budget(open_files))
    # Bound before anything else is opened, so a port in use is one clear line and not a
    # node that opened its store, dialled its peers and logged "serving" first.
    listener = listen_socket(config.host, config.port)
    node = Node(config, verify_workers=args.verify_workers)
    context.node = node
    tune_gc()
    web.run_app(node.build_app(), sock=listener, print=None,
                handle_signals=True, shutdown_timeout=5, access_log=None)
    return 1 if node.failed else 0


def listen_socket(host: str, port: int) -> socket.socket:
    """The node's listening TCP socket (HTTP API and peer WebSocket) on ``host:port``."""
    try:
        # The family of the address the host names (an IPv6 literal such as "::" too).
        family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                    flags=socket.AI_PASSIVE)[0][0]
        return socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
    except OSError as exc:
        if isinstance(exc, socket.gaierror):  # the host name does not resolve
            reason = exc.strerror or str(exc)
        else:  # the errno's own words, without asyncio's "(while attempting to bind …)"
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
        hint = ("is another node or program using it? " if exc.errno == errno.EADDRINUSE
                else "")
        raise InputError(f"cannot listen on {host}:{port}: {reason} ({hint}the address is "
                         "[http] host and port in node.toml)") from None


def node_configs(directory: Path) -> list[Path]:
    configs = sorted(directory.glob("node*/node.toml"),
                     key=lambda p: int("".join(c for c in p.parent.name if c.isdigit()) or 0))
    if not configs:
        raise GovledgerError(f"no node*/node.toml under {directory}; run "
                             f"`python node.py init --dir {directory}` first")
    return configs


def colocated_verify_workers(nodes: int, cores: int | None = None) -> int:
    """Signature worker processes per node for ``nodes`` validators run on one machine.

    A worker lets a node's signature checks run on another core while its event loop goes
    on. Where the nodes are at least as many as the cores, every core already has event
    loops to run, and a worker per node only adds processes: each batch crosses a socket
    both ways, and twice the processes share the cores' time and caches. Four nodes on
    two cores, eight interleaved pairs of ``python -m bench throughput``: CPU per committed
    transaction 12 % lower and committed tx/s 15 % higher with the checks in the event loops
    (means; bench/RESULTS.md, session 15). So 0 then, and the node's default of 1 otherwise.
    """
    cores = cores or os.cpu_count() or 1
    return 0 if nodes >= cores else 1


class Cluster:
    """Child node processes of a local network, their logs forwarded with a node prefix."""

    def __init__(self, directory: Path, log_level: str | None = None) -> None:
        self.configs = node_configs(directory)
        self.procs: list[subprocess.Popen[str]] = []
        self.log_level = log_level

    def start(self) -> None:
        for config in self.configs:
            # Absolute: the children run in the repository, the folder may be relative to
            # the operator's working directory (`node.py demo` makes ./govledger-demo).
            cmd = [sys.executable, str(ROOT / "node.py"), "run", "--config", str(config.resolve()),
                   "--verify-workers", str(colocated_verify_workers(len(self.configs)))]
            if self.log_level:
                cmd += ["--log-level", self.log_level]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, bufsize=1, cwd=ROOT)
            self.procs.append(proc)
            threading.Thread(target=self._forward, args=(config.parent.name, proc),
                             daemon=True).start()

    @staticmethod
    def _forward(name: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(f"[{name}] {line}")
            sys.stdout.flush()

    def urls(self) -> list[str]:
        return [f"http://{c.host}:{c.port}" for c in map(load_node_config, self.configs)]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def wait_ready(self, timeout_s: float = 60) -> dict[str, str]:
        """Wait until every node answers ``/v1/status`` or has exited, at most ``timeout_s``;
        each node's folder name → ``"up"``, ``"exited with status N"`` or
        ``"not answering"``."""
        import http.client
        import urllib.request

        deadline = time.monotonic() + timeout_s
        names = [c.parent.name for c in self.configs]
        urls = dict(zip(names, self.urls(), strict=True))
        states = dict.fromkeys(names, "not answering")
        while time.monotonic() < deadline:
            for name, proc in zip(names, self.procs, strict=True):
                if states[name] != "not answering":
                    continue
                if proc.poll() is not None:
                    states[name] = f"exited with status {proc.returncode}"
                    continue
                try:
                    with urllib.request.urlopen(urls[name] + "/v1/status", timeout=2) as resp:
                        if resp.status == 200:
                            states[name] = "up"
                except (OSError, http.client.HTTPException):
                    # Not listening yet; a connect to a free local port can even reach
                    # itself (TCP self-connect) and read back its own request.
                    pass
            if "not answering" not in states.values():
                break
            time.sleep(0.2)
        return states


def _not_up(states: dict[str, str]) -> str:
    return "; ".join(f"{name} {state}" for name, state in states.items() if state != "up")


def _wait_for_interrupt(cluster: Cluster, prompt: str) -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(prompt, flush=True)  # after the handlers: a Ctrl-C that follows it is a clean stop
    while not stop.is_set():
        if all(p.poll() is not None for p in cluster.procs):
            print("all nodes have exited")
            return
        stop.wait(0.5)


def cmd_up(args: argparse.Namespace) -> int:
    cluster = Cluster(Path(args.dir), args.log_level)
    cluster.start()
    try:
        states = cluster.wait_ready()
        up = [url for state, url in zip(states.values(), cluster.urls(), strict=True)
              if state == "up"]
        if len(up) == len(states):
            print("nodes are up: " + "  ".join(up), flush=True)
        else:
            print(f"{len(up)} of {len(states)} nodes are up: {'  '.join(up) or '-'}; "
                  f"{_not_up(states)} (see the node logs above)", flush=True)
        _wait_for_interrupt(cluster, "press Ctrl-C to stop them all")
    except KeyboardInterrupt:  # before the nodes were up: stop them all the same
        print("interrupted: stopping the nodes", file=sys.stderr)
        return 130
    finally:
        cluster.stop()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ledger.samples import load_samples

    directory = Path(args.dir)
    if not (directory / "genesis.json").exists():
        init_network(directory, 4, base_port=args.base_port, with_sample_orgs=True,
                     chain_id="govledger-demo", time_ms=now_ms())
        print(f"created a 4-node demo network in {directory}")
    older = [c.parent.name for c in node_configs(directory)
             if older_store_format(load_node_config(c).data_dir / "ledger") is not None]
    if older:
        print(f"{directory} was made by an older govledger: the stores of "
              f"{', '.join(older)} hold commit certificates that do not name their view, which "
              f"this version refuses. The demo network is disposable: remove the folder "
              f"(rm -r {directory}) and run the demo again for a new one.", file=sys.stderr)
        return 1
    cluster = Cluster(directory, args.log_level or "WARNING")
    cluster.start()
    try:
        states = cluster.wait_ready()
        if _not_up(states):
            print(f"the demo network did not come up: {_not_up(states)}; see the node logs "
                  "above", file=sys.stderr)
            return 1
        urls = cluster.urls()
        marker = directory / ".samples-loaded"
        if not marker.exists():
            summary = load_samples(directory, urls)
            marker.write_text(summary + "\n", encoding="utf-8")
            print(summary)
        else:
            print(f"sample data was loaded before ({marker.read_text().strip()})")
        print(f"\ngovledger demo is running: dashboard {urls[0]}/   API {urls[0]}/v1/status")
        print("nodes: " + "  ".join(urls))
        if args.check:
            return 0
        _wait_for_interrupt(cluster, "press Ctrl-C to stop the network")
    except KeyboardInterrupt:  # while starting or loading the samples
        print("interrupted: stopping the demo network", file=sys.stderr)
        return 130
    finally:
        cluster.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="node.py", description="govledger node operator commands")
    parser.add_argument("--version", action="version", version=f"govledger {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("init", help="create keys, genesis.json and one node.toml per node")
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--dir", required=True)
    p.add_argument("--suite", choices=("sm", "intl"), default="sm")
    p.add_argument("--base-port", type=int, default=7700)
    p.add_argument("--with-sample-orgs", action="store_true")
    p.add_argument("--chain-id", default="govledger-local")
    p.add_argument("--force", action="store_true", help="overwrite an existing network")
    p = sub.add_parser("join", help="create the folder of a new node (not a validator yet) "
                                    "and print the add_validator proposal to make")
    p.add_argument("--dir", required=True, help="the network folder (holds genesis.json)")
    p.add_argument("--name", required=True, help="node name and folder, e.g. node4")
    p.add_argument("--port", type=int, help="HTTP and peer port (default: the network's "
                                            "highest + 1)")
    p.add_argument("--host", default="127.0.0.1", help="address it serves on and others dial")
    p = sub.add_parser("run", help="run one node in the foreground")
    p.add_argument("--config", required=True)
    p.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.add_argument("--verify-workers", type=int, default=1,
                   help="worker processes for signature checks (0: in the event loop); a "
                        "node far behind adds one more while it catches up")
    p = sub.add_parser("up", help="start every node of a local network")
    p.add_argument("--dir", required=True)
    p.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p = sub.add_parser("demo", help="create (if missing) and run a 4-node demo network")
    p.add_argument("--dir", default="govledger-demo")
    p.add_argument("--base-port", type=int, default=7700)
    p.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.add_argument("--check", action="store_true", help="load the samples, then stop (for CI)")
    args = parser.parse_args(argv)
    commands = {"init": cmd_init, "join": cmd_join, "run": cmd_run, "up": cmd_up,
                "demo": cmd_demo}
    try:
        return commands[args.command](args)
    except GovledgerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, CorruptionError) else 2


if __name__ == "__main__":
    sys.exit(main())
