"""Admission: what a node checks before a transaction may reach consensus.

Order of checks, cheapest first, each rejection a :class:`Rejection` with an
HTTP status, a stable code and a sentence saying what is wrong:

1. size (413) and canonical decoding of the envelope (400);
2. chain id (400), ``valid_until`` not already past and not further ahead
   than the chain's ``tx_valid_window_ms`` (400);
3. a known transaction type (400), and a payload of the form its type takes, through
   the type's stateless payload check (400 ``bad_payload``: a field missing, unknown, or
   of the wrong type or form), so a malformed transaction never reaches a block;
4. not a replay: the id was never executed and is not already pending (409);
5. the sender's permission, through the type's pre-check hook, against the
   latest committed state (403) — execution checks again at its own height;
6. a per-sender token bucket (429);
7. the signature (401) — the only expensive step, done by the caller in a
   worker process (:func:`verify_batch`) so the event loop never stalls.

Nothing here changes state; a rejected transaction leaves no trace but a
metric.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ledger.codec import decode, from_json
from ledger.crypto import get_suite
from ledger.errors import DecodeError, InputError
from ledger.execution import Registry, StateGet
from ledger.tx import TX_BYTES_MAX, Transaction


class Rejection(InputError):
    """A request refused with ``status``; ``retry_after_s`` goes out as Retry-After."""

    def __init__(self, status: int, code: str, detail: str,
                 retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s


@dataclass
class Limits:
    tx_bytes_max: int = TX_BYTES_MAX
    valid_window_ms: int = 24 * 3600 * 1000
    sender_rate_per_s: float = 200.0
    sender_burst: float = 400.0
    senders_tracked_max: int = 100_000


class TokenBuckets:
    """Per-sender rate limit with bounded memory (least recently seen senders are forgotten)."""

    def __init__(self, rate_per_s: float, burst: float, tracked_max: int) -> None:
        self.rate, self.burst, self.tracked_max = rate_per_s, burst, tracked_max
        self._buckets: OrderedDict[bytes, tuple[float, int]] = OrderedDict()

    def take(self, sender: bytes, now_ms: int) -> bool:
        tokens, last = self._buckets.pop(sender, (self.burst, now_ms))
        tokens = min(self.burst, tokens + (now_ms - last) * self.rate / 1000.0)
        ok = tokens >= 1.0
        self._buckets[sender] = (tokens - 1.0 if ok else tokens, now_ms)
        if len(self._buckets) > self.tracked_max:
            self._buckets.popitem(last=False)
        return ok


def parse_tx(body: bytes, content_type: str, limits: Limits) -> Transaction:
    """Decode a submitted transaction.

    Either the canonical msgpack bytes (``Content-Type: application/msgpack``)
    or JSON ``{"tx": "<hex of those bytes>"}``. JSON cannot tell bytes from
    text inside a free-form payload, so the signed bytes travel as they are.
    """
    if len(body) > limits.tx_bytes_max * 2 + 64:
        raise Rejection(413, "too_large", f"request body of {len(body)} bytes is too large")
    if content_type != "application/msgpack":
        try:
            envelope = from_json(_TxEnvelope, body, max_size=limits.tx_bytes_max * 2 + 64)
        except DecodeError as exc:
            raise Rejection(400, "bad_encoding", 'expected JSON {"tx": "<hex of the canonical '
                                                 f'msgpack transaction>"}}: {exc}') from None
        body = envelope.tx
    if len(body) > limits.tx_bytes_max:
        raise Rejection(413, "too_large",
                        f"transaction of {len(body)} bytes exceeds {limits.tx_bytes_max}")
    try:
        return decode(body, Transaction, max_size=limits.tx_bytes_max)
    except DecodeError as exc:
        raise Rejection(400, "bad_encoding", f"transaction does not decode: {exc}") from None


@dataclass(frozen=True, slots=True)
class _TxEnvelope:
    tx: bytes


class Admission:
    def __init__(self, chain_id: str, registry: Registry, limits: Limits) -> None:
        self.chain_id = chain_id
        self.registry = registry
        self.limits = limits
        self.buckets = TokenBuckets(limits.sender_rate_per_s, limits.sender_burst,
                                    limits.senders_tracked_max)

    def check(
        self,
        tx: Transaction,
        tx_id: bytes,
        now_ms: int,
        state_get: StateGet,
        executed: Callable[[bytes], bool],
        pending: Callable[[bytes], bool],
    ) -> None:
        """Every check but the signature; raises Rejection."""
        if len(tx.encoded()) > self.limits.tx_bytes_max:
            raise Rejection(413, "too_large",
                            f"transaction exceeds {self.limits.tx_bytes_max} bytes")
        if tx.chain_id != self.chain_id:
            raise Rejection(400, "wrong_chain",
                            f"transaction is for chain {tx.chain_id!r}, this is {self.chain_id!r}")
        if tx.valid_until < now_ms:
            raise Rejection(400, "expired", f"valid_until {tx.valid_until} is in the past "
                                            f"(now {now_ms})")
        if tx.valid_until > now_ms + self.limits.valid_window_ms:
            raise Rejection(400, "too_far_ahead",
                            f"valid_until may be at most {self.limits.valid_window_ms} ms ahead")
        if self.registry.handler(tx.type) is None:
            raise Rejection(400, "unknown_type", f"unknown transaction type {tx.type!r}; known: "
                                                 f"{', '.join(self.registry.types())}")
        payload_check = self.registry.payload_check(tx.type)
        if payload_check is not None:
            problem = payload_check(tx.payload)
            if problem:
                raise Rejection(400, "bad_payload", problem)
        if executed(tx_id):
            raise Rejection(409, "duplicate", "this transaction was already executed")
        if pending(tx_id):
            raise Rejection(409, "duplicate", "this transaction is already pending")
        problem = self.registry.sender_problem(state_get, tx.sender)
        if problem:
            raise Rejection(403, "forbidden", problem)
        precheck = self.registry.precheck(tx.type)
        if precheck is not None:
            reason = precheck(state_get, tx)
            if reason:
                raise Rejection(403, "forbidden", reason)
        if not self.buckets.take(tx.sender, now_ms):
            raise Rejection(429, "rate_limited", "too many transactions from this sender; retry "
                                                 "later")


def verify_worker_init() -> None:
    """Initializer of the signature-check worker processes: Ctrl-C reaches the whole process
    group, but only the node decides when its workers stop (it shuts the pool down), so a
    worker ignores SIGINT instead of dying with a traceback mid-batch. And a worker never
    outlives its node: killed with SIGKILL (or by the OOM killer) the node cannot shut its
    pool down, and its workers used to linger for ever as orphans."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent()


def _exit_with_parent() -> None:
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0:
                if os.getppid() != parent:  # it died before the request took effect
                    os._exit(0)
                return
        except (OSError, AttributeError):
            pass
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch",
                     daemon=True).start()


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _watch_parent(parent: int) -> None:
    """Elsewhere: poll, and leave once the parent is gone (we are re-parented)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def verify_batch(suite_name: str, items: list[tuple[bytes, str, bytes, bytes]]) -> list[bool]:
    """Signature checks for (public key, purpose, message, sig) tuples — transactions'
    signatures and blocks' commit signatures; runs in a worker process."""
    suite = get_suite(suite_name)
    return [suite.verify(key, purpose, message, sig) for key, purpose, message, sig in items]
