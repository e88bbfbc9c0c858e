"""Signed reads: queries that need a role, authorised per request and logged on the ledger.

A signed read is an ordinary signed transaction of type ``access.read``
whose payload names the request: ``{"method", "path", "query"}`` (query
parameters as a map of strings). The sender is the reader, ``nonce`` makes
each read unique and ``valid_until`` dates it. The client sends its
canonical bytes, hex, in the ``X-Govledger-Read`` header.

A node authorises it (:func:`check_request`, then the signature, then
:func:`check_reader`; :func:`authorize` does all three) — in this order,
cheapest first, each refusal a :class:`~ledger.admission.Rejection`:

1. the header is present (401 ``signature_required``) and decodes (400);
2. it is an ``access.read`` of this chain (400) for exactly this request —
   method, path and query, no repeated query parameter (401 ``wrong_request``);
3. it is fresh: ``valid_until`` at most :data:`WINDOW_MS` ahead and at least
   :data:`COMMIT_MARGIN_MS` ahead, so the read can still be committed to
   the access log before it expires (401 ``stale``);
4. it was never used: not executed, not pending here (409 ``replayed``);
5. the signature verifies (401 ``bad_signature``);
6. the reader is a registered account whose key counts now and has one of
   the roles the route needs (403 ``forbidden``, saying which).

The node then answers and submits the same transaction to consensus: the
access log *is* the ledger (who, what, when, signed by the reader), and
because an id is never executed twice, a replayed read is refused as a
duplicate once it is committed. (A replay sent to another node in the
moment before the first commit reaches it is answered there too, and logged
once: the same reader, the same request. Signed reads travel inside TLS in a
real deployment, so only the reader has them.)

The ``access.read`` handler records each read in the index
``access/<height, 8 bytes big-endian><tx id>`` for ``GET /v1/access-log``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ledger import acl
from ledger.admission import Rejection
from ledger.codec import Value, decode, encode_value
from ledger.crypto import PrivateKey, Suite
from ledger.errors import DecodeError, TxRejected
from ledger.execution import ExecContext, Registry, StateGet
from ledger.tx import Transaction, make_tx

READ_TX = "access.read"
HEADER = "X-Govledger-Read"
WINDOW_MS = 5 * 60 * 1000
COMMIT_MARGIN_MS = 30_000
READ_BYTES_MAX = 8192
HEADER_CHARS_MAX = 2 * READ_BYTES_MAX  # the header carries the read in hex
INDEX_PREFIX = b"access/"


def make_read(key: PrivateKey, chain_id: str, method: str, path: str, query: dict[str, str],
              now_ms: int, nonce: int) -> Transaction:
    """A signed read for one request (the client side); usable for two minutes."""
    payload: dict[str, Value] = {"method": method.upper(), "path": path,
                                 "query": dict(sorted(query.items()))}
    return make_tx(key, chain_id, READ_TX, payload, nonce, now_ms + WINDOW_MS // 2)


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """The HTTP request a signed read must name (query pairs as received)."""

    method: str
    path: str
    query: Sequence[tuple[str, str]]


def parse_header(header: str | None, roles: tuple[str, ...]) -> Transaction:
    """Step 1: the signed read from the header value."""
    if not header:
        raise Rejection(401, "signature_required", f"this query needs a signed read (header "
                                                   f"{HEADER}) by a key with the "
                                                   f"{' or '.join(roles)} role")
    if len(header) > HEADER_CHARS_MAX:
        raise Rejection(400, "bad_encoding", f"{HEADER} is longer than {HEADER_CHARS_MAX}")
    try:
        return decode(bytes.fromhex(header), Transaction, max_size=READ_BYTES_MAX)
    except (ValueError, DecodeError) as exc:
        raise Rejection(400, "bad_encoding", f"{HEADER} does not decode: {exc}") from None


def check_request(tx: Transaction, request: ReadRequest, chain_id: str, now_ms: int,
                  used: Callable[[bytes], bool], tx_id: bytes) -> None:
    """Steps 2-4: kind, request, freshness, replay. ``used(tx_id)``: executed or pending."""
    if tx.type != READ_TX or tx.chain_id != chain_id:
        raise Rejection(400, "bad_request", "the signed read is not an access.read of this "
                                            "chain")
    names = [name for name, _ in request.query]
    if len(set(names)) != len(names):
        raise Rejection(400, "bad_request", "a signed read cannot cover a repeated query "
                                            "parameter")
    wanted = {"method": request.method.upper(), "path": request.path,
              "query": dict(sorted(request.query))}
    if tx.payload != wanted:
        raise Rejection(401, "wrong_request", "the signed read is for another request "
                                              f"(it names {tx.payload.get('method')!s} "
                                              f"{tx.payload.get('path')!s})")
    if tx.valid_until > now_ms + WINDOW_MS:
        raise Rejection(401, "stale", f"the signed read is dated more than {WINDOW_MS} ms "
                                      "ahead; check the clock and sign a fresh one")
    if tx.valid_until < now_ms + COMMIT_MARGIN_MS:
        raise Rejection(401, "stale", "the signed read has expired (or would before it can be "
                                      "logged); sign a fresh one")
    if used(tx_id):
        raise Rejection(409, "replayed", "this signed read was used before; sign a fresh one")


def check_reader(state_get: StateGet, tx: Transaction, roles: tuple[str, ...]
                 ) -> acl.AccountRecord:
    """Step 6 (after the signature): the reader may make this query now."""
    problem = acl.roles_problem(state_get, tx.sender, roles)
    if problem:
        raise Rejection(403, "forbidden", problem.replace("sender", "reader", 1))
    account = acl.active_account(state_get, tx.sender)
    assert account is not None
    return account


def authorize(header: str | None, request: ReadRequest, roles: tuple[str, ...], chain_id: str,
              suite: Suite, now_ms: int, state_get: StateGet, used: Callable[[bytes], bool]
              ) -> tuple[Transaction, acl.AccountRecord]:
    """All six steps in order, the signature checked here (a node does it off the loop)."""
    tx = parse_header(header, roles)
    check_request(tx, request, chain_id, now_ms, used, tx.tx_id(suite))
    if not tx.signature_ok(suite):
        raise Rejection(401, "bad_signature", "the signed read's signature does not verify")
    return tx, check_reader(state_get, tx, roles)


# -- the access log -------------------------------------------------------------------------


def register(registry: Registry) -> None:
    registry.register(READ_TX, record_read, precheck=_registered, private=True)


def _registered(state_get: StateGet, tx: Transaction) -> str | None:
    if acl.active_account(state_get, tx.sender) is None:
        return "sender is not a registered account"
    return None


def record_read(ctx: ExecContext) -> None:
    account = acl.active_account(ctx.state.get, ctx.sender, ctx.height)
    if account is None:
        raise TxRejected("sender is not a registered account")
    payload = ctx.tx.payload
    if set(payload) != {"method", "path", "query"}:
        raise TxRejected("payload must be {method, path, query}")
    method, path, query = payload["method"], payload["path"], payload["query"]
    if not isinstance(method, str) or not isinstance(path, str) or not path.startswith("/"):
        raise TxRejected("payload.method and payload.path must be strings (path from /)")
    if not isinstance(query, dict) or not all(isinstance(v, str) for v in query.values()):
        raise TxRejected("payload.query must be a map of strings")
    key = INDEX_PREFIX + struct.pack(">Q", ctx.height) + ctx.tx_id
    ctx.index.put(key, encode_value({
        "time": ctx.time_ms, "height": ctx.height, "tx_id": ctx.tx_id, "reader": ctx.sender,
        "name": account.name, "org": account.org, "method": method, "path": path,
        "query": query}))
