"""Signed reads: queries that need a role, authorised per request and logged on the ledger.

A signed read is an ordinary signed transaction of type ``access.read``
whose payload names the request: ``{"method", "path", "query"}`` (query
parameters as a map of strings). The client sends its canonical bytes, hex,
in the ``X-Govledger-Read`` header. The node checks it like any transaction
— chain id, signature, an unrevoked sender with the role the route needs —
plus freshness (``valid_until`` at most :data:`WINDOW_MS` ahead and not
past) and that the payload names exactly this request. It then answers and
submits the same transaction to consensus: the access log *is* the ledger
(who, what, when, signed by the reader), and because an id is never executed
twice, a replayed read is refused as a duplicate.

The ``access.read`` handler records each read in the index
``access/<height, 8 bytes big-endian><tx id>`` for ``GET /v1/access-log``.
"""

from __future__ import annotations

import struct

from ledger import acl
from ledger.codec import Value, encode_value
from ledger.crypto import PrivateKey
from ledger.errors import TxRejected
from ledger.execution import ExecContext, Registry, StateGet
from ledger.tx import Transaction, make_tx

READ_TX = "access.read"
HEADER = "X-Govledger-Read"
WINDOW_MS = 5 * 60 * 1000
INDEX_PREFIX = b"access/"


def make_read(key: PrivateKey, chain_id: str, method: str, path: str, query: dict[str, str],
              now_ms: int, nonce: int) -> Transaction:
    """A signed read for one request (the client side)."""
    payload: dict[str, Value] = {"method": method.upper(), "path": path,
                                 "query": dict(sorted(query.items()))}
    return make_tx(key, chain_id, READ_TX, payload, nonce, now_ms + WINDOW_MS // 2)


def register(registry: Registry) -> None:
    registry.register(READ_TX, record_read, precheck=_registered)


def _registered(state_get: StateGet, tx: Transaction) -> str | None:
    if acl.active_account(state_get, tx.sender) is None:
        return "sender is not a registered account"
    return None


def record_read(ctx: ExecContext) -> None:
    account = acl.active_account(ctx.state.get, ctx.sender)
    if account is None:
        raise TxRejected("sender is not a registered account")
    payload = ctx.tx.payload
    if set(payload) != {"method", "path", "query"}:
        raise TxRejected("payload must be {method, path, query}")
    key = INDEX_PREFIX + struct.pack(">Q", ctx.height) + ctx.tx_id
    ctx.index.put(key, encode_value({
        "time": ctx.time_ms, "height": ctx.height, "tx_id": ctx.tx_id, "reader": ctx.sender,
        "name": account.name, "org": account.org, "method": payload["method"],
        "path": payload["path"], "query": payload["query"]}))
