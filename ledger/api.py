"""The node's client HTTP API for the ledger itself (aiohttp; an IO module).

Routes (JSON by default, msgpack with ``Accept: application/msgpack``):

- ``POST /v1/tx`` — submit a signed transaction (JSON with bytes as hex, or
  the canonical msgpack with ``Content-Type: application/msgpack``);
  ``?wait=commit`` answers only once its block is appended.
- ``GET /v1/tx/{id}`` — status, block height, result and inclusion proof.
- ``GET /v1/status`` — height, view, primary, peers, mempool, chain id, …
- ``GET /v1/blocks/{height}`` — header, transactions, results, certificate;
  ``GET /v1/blocks?from=H&count=N`` — up to 100 of them at once.
- ``GET /v1/evidence/{digest}`` — an anchor record and its proof bundle.
- ``GET /v1/openapi.json`` — OpenAPI 3 description of every route.
- ``GET /metrics`` — Prometheus text format.

Private transactions (``Registry.is_private``: fund flows, signed reads) are what their
apps show only to the roles they name, so these routes show each one's payload and
result only to an auditor's signed read, or to a finance officer's for the transactions
its own organisation sent; anyone else sees the transaction's id, type and sender, and
each as its RFC 9162 leaf hash (``redacted``), which still checks against the header's
``tx_root`` and ``result_root``. A block without private transactions needs no signed
read.

Errors are ``{"error": code, "detail": text}`` with a 4xx status for
anything a client can send; the error middleware turns any unexpected
exception into a logged 500 that reveals nothing (a bug, never a reply to
bad input).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ledger import acl
from ledger.acl import AccountRecord
from ledger.admission import Rejection, TokenBuckets, parse_tx
from ledger.block import Block, TxResult
from ledger.chain import Chain
from ledger.codec import encode_value, to_json_value, to_value
from ledger.errors import InputError
from ledger.merkle import leaf_hash
from ledger.proofs import build_evidence_proof, build_header_proof, build_tx_inclusion
from ledger.reads import HEADER as READ_HEADER
from ledger.tx import Transaction

log = logging.getLogger("govledger.api")

MSGPACK = "application/msgpack"


class NodeHandle(Protocol):
    """What the routes need from the running node (implemented in node.py)."""

    chain: Chain
    metrics_registry: CollectorRegistry
    openapi_paths: dict[str, Any]
    consortium_key: bytes | None  # HMAC key for personal identifiers (ledger.privacy)

    def status(self) -> dict[str, Any]: ...
    def is_pending(self, tx_id: bytes) -> bool: ...
    def parse_limits(self) -> Any: ...
    def check_capacity(self) -> None:
        """Rejection (503 busy) while the node takes no more transactions."""
        ...

    async def submit(self, tx: Transaction, wait: bool) -> dict[str, Any]: ...

    async def authorize_read(self, request: web.Request, roles: tuple[str, ...]
                             ) -> AccountRecord:
        """Check the request's signed read (401/403/409 as Rejection) and log it."""
        ...

    def count_rejection(self, code: str) -> None: ...


NODE_KEY: web.AppKey[NodeHandle] = web.AppKey("govledger_node", NodeHandle)


def error(status: int, code: str, detail: str) -> web.Response:
    return web.json_response({"error": code, "detail": detail}, status=status)


def reply(request: web.Request, value: Any, status: int = 200) -> web.Response:
    """JSON (bytes as hex) by default; canonical msgpack when the client asks for it."""
    if MSGPACK in request.headers.get("Accept", ""):
        try:
            body = encode_value(to_value(value))
        except InputError:  # the node's own answer (a float, say): its fault, not the client's
            log.exception("the answer to %s %s does not encode as msgpack", request.method,
                          request.path)
            return error(500, "internal", "internal error; the node operator has the details")
        return web.Response(body=body, status=status, content_type=MSGPACK)
    return web.json_response(to_json_value(value), status=status,
                             dumps=lambda v: json.dumps(v, ensure_ascii=False))


class ReadLimit:
    """A token bucket per client address for queries: every request but a transaction
    (``POST /v1/tx``, limited per sender key by :mod:`ledger.admission`), the peer link
    and the dashboard's own files.

    A node's queries and its consensus share one event loop; without a limit one client
    asking for proof bundles as fast as it can slows the node's votes (bench/RESULTS.md,
    session 18). Beyond the limit the answer is a 429 with ``Retry-After``; the SDK and
    the CLI wait and retry. A client that ignores it still costs the node each refusal
    (parsing the request, a small JSON answer): against a hostile flood a rate-limiting
    proxy in front is the remedy. Off unless ``[limits] reads_per_s`` is set."""

    def __init__(self, rate_per_s: int, burst: int,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.rate_per_s = rate_per_s
        self.buckets = TokenBuckets(float(rate_per_s), float(burst or 2 * rate_per_s),
                                    ADDRESSES_TRACKED_MAX)
        self.clock_ms = clock_ms or (lambda: int(time.monotonic() * 1000))

    @staticmethod
    def exempt(request: web.Request) -> bool:
        path = request.path
        return ((path == "/v1/tx" and request.method == "POST") or path == "/v1/peer"
                or path == "/" or path.startswith("/static/"))

    def allows(self, request: web.Request) -> bool:
        address = (request.remote or "?").encode()
        return self.exempt(request) or self.buckets.take(address, self.clock_ms())


ADDRESSES_TRACKED_MAX = 100_000  # client addresses whose buckets are kept (LRU)
READ_LIMIT_KEY: web.AppKey[ReadLimit] = web.AppKey("govledger_read_limit", ReadLimit)


@web.middleware
async def read_limit_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    limit = request.app.get(READ_LIMIT_KEY)
    if limit is not None and not limit.allows(request):
        request.app[NODE_KEY].count_rejection("rate_limited")
        resp = error(429, "rate_limited",
                     f"too many queries from {request.remote}: this node answers at most "
                     f"{limit.rate_per_s} per second per client address; retry in a second")
        resp.headers["Retry-After"] = "1"
        return resp
    return await handler(request)


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    node = request.app[NODE_KEY]
    try:
        return await handler(request)
    except Rejection as exc:
        node.count_rejection(exc.code)
        resp = error(exc.status, exc.code, str(exc))
        if exc.retry_after_s is not None:
            resp.headers["Retry-After"] = str(exc.retry_after_s)
        return resp
    except InputError as exc:
        node.count_rejection("bad_request")
        return error(400, "bad_request", str(exc))
    except web.HTTPException as exc:
        if exc.status >= 400:
            code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
                exc.status, "http_error")
            resp = error(exc.status, code, exc.reason)
            if "Allow" in exc.headers:  # a 405 names the methods the path takes (RFC 9110)
                resp.headers["Allow"] = exc.headers["Allow"]
            return resp
        raise
    except Exception:
        log.exception("internal error serving %s %s", request.method, request.path)
        return error(500, "internal", "internal error; the node operator has the details")


def _hex_arg(request: web.Request, name: str, length: int | None = None) -> bytes:
    text = request.match_info[name]
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise InputError(f"{name} must be hex") from None
    if length is not None and len(value) != length:
        raise InputError(f"{name} must be {length} bytes ({2 * length} hex digits)")
    return value


async def read_body(request: web.Request) -> bytes:
    """The request body as sent; InputError if it cannot be read: not in the Content-Encoding
    it declares, cut short, or the client gone before sending all of it (an answer nobody
    reads, but no traceback in the node's log either). (Too large a body is aiohttp's 413.)"""
    try:
        return await request.read()
    except ConnectionResetError:
        raise InputError("the connection closed before the whole request body arrived"
                         ) from None
    except web.RequestPayloadError:
        encoding = request.headers.get("Content-Encoding")
        if encoding:
            raise InputError(f"the request body does not decode as its Content-Encoding "
                             f"({encoding}) says; send it encoded so, or without "
                             f"Content-Encoding") from None
        raise InputError("the request body is malformed (cut short, or a bad chunked "
                         "transfer encoding)") from None


class ClientFaultLog(logging.Filter):
    """For aiohttp's server logger: what it logs at ERROR, with a traceback, about requests
    that were the client's fault and have been answered becomes one INFO line.

    - "Error handling request": a request aiohttp's HTTP parser refused (a header line
      too long, a bad header token, a bad Content-Length, a bad method or URL); it has
      answered 400 itself.
    - "Unhandled exception" over a request body that does not decode as its
      Content-Encoding says: :func:`read_body` answered 400, then aiohttp drained the
      rest of the body and logged the same decoding error again (aio-libs/aiohttp#1710).

    An operator would read either as a fault of the node; a port scanner or a broken
    client could fill the log with them."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        msg = record.msg if isinstance(record.msg, str) else ""
        if msg == "Unhandled exception" and isinstance(exc, web.RequestPayloadError):
            self._one_line(record, "dropped the rest of a request body: %s", (), exc)
        elif msg.startswith("Error handling request") and isinstance(exc, BadHttpMessage):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            self._one_line(record, "refused a malformed HTTP request from %s: %s", (remote,),
                           exc)
        return True

    @staticmethod
    def _one_line(record: logging.LogRecord, msg: str, args: tuple[object, ...],
                  exc: BaseException) -> None:
        text = exc.message if isinstance(exc, BadHttpMessage) else str(exc)
        record.levelno, record.levelname = logging.INFO, "INFO"
        record.msg, record.args = msg, (*args, " ".join(str(text).split())[:300])
        record.exc_info, record.exc_text = None, None


CLIENT_FAULT_LOG = ClientFaultLog()


def int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """Query parameter ``name`` as an integer from ``low`` to ``high`` (``default`` when it is
    absent). Anything else is the client's error — however many digits it has (Python
    refuses to convert more than 4,300, which was a 500)."""
    text = request.query.get(name)
    if text is None:
        return default
    digits = text.lstrip("0") or "0"
    if (not (text.isascii() and text.isdigit()) or len(digits) > len(str(high))
            or not low <= int(digits) <= high):
        raise InputError(f"{name} must be an integer between {low} and {high}")
    return int(digits)


def _int_arg(request: web.Request, name: str) -> int:
    text = request.match_info[name]
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise InputError(f"{name} must be a non-negative integer")
    return int(text)


async def post_tx(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = await read_body(request)
    node.check_capacity()  # an overload is shed before any work on the transaction
    tx = parse_tx(body, request.content_type, node.parse_limits())
    wait = request.query.get("wait", "")
    if wait not in ("", "commit"):
        raise InputError("wait must be 'commit' or absent")
    result = await node.submit(tx, wait == "commit")
    return reply(request, result, status=200 if result.get("status") == "committed" else 202)


BLOCKS_PER_REQUEST = 100


def _hidden_tx(chain: Chain, tx: Transaction) -> dict[str, Any]:
    return {"tx_id": tx.tx_id(chain.suite), "type": tx.type, "sender": tx.sender,
            "redacted": True, "leaf": leaf_hash(chain.suite.hash, tx.encoded())}


def _hidden_result(chain: Chain, result: TxResult) -> dict[str, Any]:
    return {"tx_id": result.tx_id, "ok": result.ok, "code": result.code, "reason": "",
            "data": {}, "redacted": True, "leaf": leaf_hash(chain.suite.hash, result.encoded())}


async def _viewer(request: web.Request, node: NodeHandle, txs: list[Transaction]
                  ) -> Callable[[Transaction], bool]:
    """Which of ``txs`` this request sees whole. Without a signed read: the public ones.
    A signed read (checked, and logged) by an auditor: all; by a finance officer: also
    the private ones its organisation's keys sent. Anyone else's signed read is a 403, not
    a quiet redaction: it asked for what it may not see."""
    registry = node.chain.registry
    if not any(registry.is_private(tx.type) for tx in txs):
        return lambda tx: True
    if READ_HEADER not in request.headers:
        return lambda tx: not registry.is_private(tx.type)
    reader = await node.authorize_read(request, ("auditor", "finance"))
    if "auditor" in reader.roles:
        return lambda tx: True
    orgs: dict[bytes, str | None] = {}

    def sees(tx: Transaction) -> bool:
        if not registry.is_private(tx.type):
            return True
        if tx.sender not in orgs:
            account = acl.get_account(node.chain.state_get, tx.sender)
            orgs[tx.sender] = account.org if account is not None else None
        return bool(reader.org) and orgs[tx.sender] == reader.org

    return sees


async def get_tx(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    tx_id = _hex_arg(request, "tx_id", 32)
    found = node.chain.result_of(tx_id)
    if found is None:
        if node.is_pending(tx_id):
            return reply(request, {"tx_id": tx_id, "status": "pending"})
        return error(404, "not_found", "no transaction with this id is known to this node")
    height, index, result = found
    inclusion = build_tx_inclusion(node.chain, height, index)
    header = build_header_proof(node.chain, height)
    tx: Any = inclusion.tx
    shown: Any = result
    if node.chain.registry.is_private(tx.type):
        if READ_HEADER in request.headers:
            await _own_or_audited(request, node, tx)
        else:
            tx, shown = _hidden_tx(node.chain, tx), _hidden_result(node.chain, result)
    return reply(request, {
        "tx_id": tx_id, "status": "committed", "height": height, "index": index,
        "result": shown, "tx": tx,
        "proof": {"index": inclusion.index, "size": inclusion.size, "path": inclusion.path},
        "header": header.header, "certificate": header.certificate,
    })


async def _own_or_audited(request: web.Request, node: NodeHandle, tx: Transaction) -> None:
    """A private transaction in full: to an auditor, or to a finance officer of the
    organisation whose key sent it (a retried submission learns its own result)."""
    if not (await _viewer(request, node, [tx]))(tx):
        raise Rejection(403, "forbidden", "a finance officer may see only its own "
                                          "organisation's private transactions")


async def get_status(request: web.Request) -> web.Response:
    return reply(request, request.app[NODE_KEY].status())


def _block_view(node: NodeHandle, height: int, block: Block,
                sees: Callable[[Transaction], bool]) -> dict[str, Any]:
    chain, store = node.chain, node.chain.store
    results = store.get_results(height) or []
    private = [not sees(tx) for tx in block.txs]
    return {
        "height": height,
        "block_hash": block.header.block_hash(chain.suite),
        "header": block.header,
        "txs": [_hidden_tx(chain, tx) if hide else {"tx_id": tx.tx_id(chain.suite),
                                                      **to_value(tx)}  # type: ignore[dict-item]
                for tx, hide in zip(block.txs, private, strict=True)],
        "results": [_hidden_result(chain, r) if hide else r
                    for r, hide in zip(results, private, strict=False)],
        "certificate": store.get_certificate(height),
    }


async def get_block(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    height = _int_arg(request, "height")
    store = node.chain.store
    block = store.get_block(height)
    if block is None:
        return error(404, "not_found", f"no block at height {height} (head is "
                                       f"{store.head_height()})")
    sees = await _viewer(request, node, block.txs)
    return reply(request, _block_view(node, height, block, sees))


async def list_blocks(request: web.Request) -> web.Response:
    """``?from=H&count=N``: blocks H .. H+N-1 that exist (up to BLOCKS_PER_REQUEST), with
    one signed read for all of them when some hold private transactions."""
    node = request.app[NODE_KEY]
    first = int_query(request, "from", 0, 0, 2**62)
    count = int_query(request, "count", 20, 1, BLOCKS_PER_REQUEST)
    store = node.chain.store
    blocks = []
    for height in range(first, min(first + count, store.head_height() + 1)):
        block = store.get_block(height)
        assert block is not None, f"no block {height} below the head"
        blocks.append((height, block))
    sees = await _viewer(request, node, [tx for _, b in blocks for tx in b.txs])
    return reply(request, {"blocks": [_block_view(node, h, b, sees) for h, b in blocks],
                           "head": store.head_height()})


async def get_evidence(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    digest = _hex_arg(request, "digest")
    if not 16 <= len(digest) <= 64:
        raise InputError("digest must be 16..64 bytes")
    try:
        proof = build_evidence_proof(node.chain, digest)
    except InputError:
        return error(404, "not_found", "this digest is not anchored")
    return reply(request, {"digest": digest, "proof": proof})


async def get_metrics(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = generate_latest(node.metrics_registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def get_openapi(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    return web.json_response({
        "openapi": "3.0.3",
        "info": {"title": "govledger node API", "version": "1",
                 "description": "Permissioned PBFT ledger for government departments. "
                                "Bytes are hex in JSON; send Accept: application/msgpack for "
                                "canonical msgpack."},
        "paths": node.openapi_paths,
        "components": {"schemas": {"Error": {
            "type": "object", "required": ["error", "detail"],
            "properties": {"error": {"type": "string"}, "detail": {"type": "string"}}}}},
    })


def op(summary: str, params: list[tuple[str, str]] | None = None, body: bool = False,
        statuses: tuple[int, ...] = (200, 400, 404), also: tuple[str, ...] = ()
        ) -> dict[str, Any]:
    """One operation of the OpenAPI document. Every answer can come as msgpack (``Accept``)
    and ``also`` in the media types named; every route can answer 429 (``[limits]
    reads_per_s``) and a route taking a body 413 (larger than the node takes). A body is
    JSON or canonical msgpack (``Content-Type``), as SPEC §8 has it."""
    op: dict[str, Any] = {"summary": summary, "responses": {}}
    extra = (429, 413) if body else (429,)
    for status in sorted(set(statuses) | set(extra)):
        if status < 300:
            content: dict[str, Any] = {"application/json": {},
                                       MSGPACK: {"schema": {"type": "string",
                                                            "format": "binary"}}}
            content.update({media: {"schema": {"type": "string"}} for media in also})
            op["responses"][str(status)] = {"description": "OK", "content": content}
        else:
            op["responses"][str(status)] = {
                "description": "error",
                "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"}}}}
    if params:
        op["parameters"] = [{"name": n, "in": where, "required": where == "path",
                             "schema": {"type": "string"}} for n, where in params]
    if body:
        media: dict[str, Any] = {"application/json": {"schema": {"type": "object"}},
                                 MSGPACK: {"schema": {"type": "string", "format": "binary"}}}
        op["requestBody"] = {"required": True, "content": media}
    return op


LEDGER_OPENAPI: dict[str, Any] = {
    "/v1/tx": {"post": op("Submit a signed transaction", [("wait", "query")], body=True,
                           statuses=(200, 202, 400, 401, 403, 409, 413, 429, 503))},
    "/v1/tx/{tx_id}": {"get": op("Transaction status, result and inclusion proof (a fund "
                                  "flow or signed read whole only to a signed read)",
                                  [("tx_id", "path"), ("X-Govledger-Read", "header")],
                                  statuses=(200, 400, 401, 403, 404, 409, 503))},
    "/v1/status": {"get": op("Node status", statuses=(200,))},
    "/v1/blocks": {"get": op("Blocks from..from+count-1 (up to 100); private transactions "
                             "whole to an auditor's signed read (a finance officer's: its "
                             "organisation's), else as leaf hashes",
                             [("from", "query"), ("count", "query"),
                              ("X-Govledger-Read", "header")],
                             statuses=(200, 400, 401, 403, 409, 503))},
    "/v1/blocks/{height}": {"get": op("Block with results and commit certificate (private "
                                       "transactions as for /v1/blocks)",
                                       [("height", "path"), ("X-Govledger-Read", "header")],
                                       statuses=(200, 400, 401, 403, 404, 409, 503))},
    "/v1/evidence/{digest}": {"get": op("Anchored digest with its proof bundle",
                                         [("digest", "path")])},
    "/v1/openapi.json": {"get": op("This document", statuses=(200,))},
    "/metrics": {"get": {"summary": "Prometheus metrics",
                         "responses": {"200": {"description": "text format"}}}},
}


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/tx", post_tx)
    app.router.add_get("/v1/tx/{tx_id}", get_tx)
    app.router.add_get("/v1/status", get_status)
    app.router.add_get("/v1/blocks/{height}", get_block)
    app.router.add_get("/v1/blocks", list_blocks)
    app.router.add_get("/v1/evidence/{digest}", get_evidence)
    app.router.add_get("/v1/openapi.json", get_openapi)
    app.router.add_get("/metrics", get_metrics)
