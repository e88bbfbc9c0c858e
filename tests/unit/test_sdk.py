"""The Python SDK (client/): retries, failover, error mapping, typed results, local verdicts.

Servers are real aiohttp applications on 127.0.0.1 (a free port) in a background thread:
either a scripted one that answers each path from a list of replies, or the real certs,
fiscal and evidence routes over an in-process chain (the unit-test harnesses). Backoff
pauses are recorded by an injected ``sleep`` instead of being slept, so nothing waits.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from certs import routes as cert_routes
from client import (
    AsyncClient,
    Backoff,
    BadReply,
    Client,
    NodeError,
    Unreachable,
    verify_bundle,
    verify_evidence,
)
from client.core import MSGPACK
from fiscal import routes as fiscal_routes
from fiscal.model import PAY_TX
from ledger import api, evidence, reads
from ledger.acl import AccountRecord
from ledger.admission import Rejection
from ledger.crypto import get_suite
from ledger.errors import InputError
from tests.fiscal_harness import FiscalChain, payment, tree
from tests.unit.certs_harness import CertNet

STATUS = {  # the keys of node.py's status(), plus one a newer node might add
    "node": "node0", "chain_id": "govledger-test", "suite": "sm", "sm2_backend": "gmssl",
    "height": 7, "head_hash": "ab" * 32, "head_time": 1_767_225_600_000, "view": 0,
    "in_view_change": False, "primary": "node0", "is_validator": True,
    "validators": ["node0", "node1", "node2", "node3"], "validator_keys": {"node0": "04aa"},
    "commit_latency_ms": {"p50": 12, "p90": 30, "samples": 4}, "peers": 3,
    "peers_connected": ["node1", "node2", "node3"], "mempool": 0, "stable_checkpoint": 0,
    "view_changes": 0, "time": 1_767_225_600_500, "added_in_a_later_version": 1,
}
BUSY = (503, {"error": "busy", "detail": "the node is overloaded; retry shortly"})
FAST = Backoff(base_s=0.1, factor=2.0, max_s=1.0)


class Served:
    """An aiohttp application on 127.0.0.1 (free port), run by a background event loop."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.runner = web.AppRunner(app)

    def __enter__(self) -> str:
        self.thread.start()

        async def start() -> int:
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            return int(self.runner.addresses[0][1])

        port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Script:
    """Answers each path with its scripted replies in turn (the last one repeats)."""

    def __init__(self, replies: dict[str, list[tuple[Any, ...]]]) -> None:
        self.replies = replies
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path_qs, dict(request.headers),
                          await request.read()))
        queue = self.replies.get(request.path) or self.replies.get("*") or [(404, {
            "error": "not_found", "detail": f"no route {request.path}"})]
        status, body, *extra = queue.pop(0) if len(queue) > 1 else queue[0]
        headers = extra[0] if extra else None  # a third element: the reply's headers
        if isinstance(body, float):  # a slow node
            await asyncio.sleep(body)
            return web.json_response({})
        if isinstance(body, str):
            return web.Response(status=status, text=body, content_type="text/html")
        return web.json_response(body, status=status, headers=headers)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


@pytest.fixture
def dead_url() -> str:
    """A URL where nothing listens (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# -- retries, failover, errors (sync) -------------------------------------------------------------


def test_retries_503_with_exponential_backoff_then_succeeds() -> None:
    """Goal: a 503 is retried after exponentially growing pauses and the eventual answer
    returned. Method: the node answers 503 twice, then the status; the client's sleep is
    a recorder."""
    script = Script({"/v1/status": [BUSY, BUSY, (200, STATUS)]})
    sleeps: list[float] = []
    with Served(script.app()) as url:
        client = Client(url, retries=3, backoff=FAST, sleep=sleeps.append)
        assert client.status()["height"] == 7
    assert sleeps == [0.1, 0.2]
    assert len(script.seen) == 3


def test_a_busy_node_is_given_the_pause_it_asks_for() -> None:
    """Goal: a 503 or 429 with Retry-After pauses the next round at least that long (a node
    shedding an overload says when to come back; the backoff alone gave up within a
    second), never beyond RETRY_AFTER_MAX_S, and a value that is not seconds is ignored.
    Method: the node answers busy with Retry-After 2, then 429 with 999, then busy with
    "soon", then the status; the sync and async clients' sleeps are recorded."""
    from client.core import RETRY_AFTER_MAX_S, node_error

    busy = (*BUSY, {"Retry-After": "2"})
    script = Script({"/v1/status": [busy, (429, {"error": "rate_limited", "detail": "x"},
                                           {"Retry-After": "999"}),
                                    (*BUSY, {"Retry-After": "soon"}), (200, STATUS)]})
    sleeps: list[float] = []
    with Served(script.app()) as url:
        client = Client(url, retries=4, backoff=FAST, sleep=sleeps.append)
        assert client.status()["height"] == 7
        assert sleeps == [2.0, RETRY_AFTER_MAX_S, 0.4]  # the backoff's own 0.1, 0.2, 0.4

        async def scenario() -> list[float]:
            waited: list[float] = []

            async def record(delay: float) -> None:
                waited.append(delay)

            script.replies["/v1/status"] = [busy, busy, (200, STATUS)]
            async with AsyncClient(url, retries=3, backoff=FAST, sleep=record) as c:
                assert (await c.status())["height"] == 7
            return waited

        assert asyncio.run(scenario()) == [2.0, 2.0]
    assert node_error(503, b"{}", "2").retry_after_s == 2.0
    assert node_error(503, b"{}", "1" * 50).retry_after_s is None


def test_a_retried_signed_read_is_signed_anew() -> None:
    """Goal: a signed read that a node turned away (503) is retried with a fresh signed read,
    not the same one — the node that took the first may have logged it and would refuse
    a replay (409). Method: the node answers the signed query 503 once, then 200; both
    requests' read headers parse, name the same request, and differ in nonce."""
    script = Script({"/v1/status": [(200, STATUS)], "/v1/audit/access-log": [BUSY, (200, [])]})
    key = get_suite("sm").generate_key()
    with Served(script.app()) as url:
        client = Client(url, key=key, retries=3, backoff=Backoff(0, 0, 0))
        assert client.get("/v1/audit/access-log", {"limit": 5}, signed=True) == []
    sent = [headers[reads.HEADER] for _, path, headers, _ in script.seen
            if path.startswith("/v1/audit/access-log")]
    assert len(sent) == 2 and sent[0] != sent[1]
    parsed = [reads.parse_header(h, ("auditor",)) for h in sent]
    assert all(tx.signature_ok(get_suite("sm")) for tx in parsed)
    assert [tx.payload for tx in parsed] == [parsed[0].payload] * 2
    assert parsed[0].payload["query"] == {"limit": "5"}
    assert parsed[0].nonce != parsed[1].nonce


def test_failover_to_the_next_node_and_stay_there(dead_url: str) -> None:
    """Goal: when the first node cannot be reached the next one answers within the same
    round (no pause), and later calls start with the node that answered. Method: a dead
    URL first, a live one second; two typed status calls."""
    script = Script({"/v1/status": [(200, STATUS)]})
    sleeps: list[float] = []
    with Served(script.app()) as url:
        client = Client([dead_url, url], retries=2, backoff=FAST, sleep=sleeps.append)
        status = client.node_status()
        assert client.pool.order()[0] == url
        assert client.node_status() == status
    assert sleeps == [] and len(script.seen) == 2
    assert (status.height, status.chain_id, status.validators) == (
        7, "govledger-test", ("node0", "node1", "node2", "node3"))
    assert status.head_hash == bytes.fromhex("ab" * 32) and status.peers_connected[0] == "node1"


def test_unreachable_after_every_round(dead_url: str) -> None:
    """Goal: with no node reachable the client raises Unreachable (also an OSError) naming
    the URLs, after `retries` rounds with a pause between rounds and none after the last.
    Method: two dead URLs; recorded sleeps."""
    other = dead_url.replace("http://127.0.0.1", "http://127.0.0.1.")  # another name, dead too
    sleeps: list[float] = []
    client = Client([dead_url, other], retries=3, backoff=FAST, sleep=sleeps.append)
    with pytest.raises(Unreachable) as caught:
        client.get("/v1/status")
    assert isinstance(caught.value, OSError)
    assert dead_url in str(caught.value) and "3 round(s)" in str(caught.value)
    assert sleeps == [0.1, 0.2]


def test_refusals_are_node_errors_and_are_not_retried() -> None:
    """Goal: a 4xx carries the node's code and detail and is not retried; a non-JSON error
    page is still a NodeError with its text; a 200 that is not JSON is BadReply; a 503 that
    persists is the node's 503 reason, not Unreachable. Method: scripted replies."""
    script = Script({
        "/v1/certs/x": [(404, {"error": "not_found", "detail": "no certificate x"})],
        "/teapot": [(418, "<h1>I am a teapot</h1>")],
        "/garbled": [(200, "not json")],
        "/v1/status": [BUSY],
    })
    sleeps: list[float] = []
    with Served(script.app()) as url:
        client = Client(url, retries=2, backoff=FAST, sleep=sleeps.append)
        with pytest.raises(NodeError) as missing:
            client.get("/v1/certs/x")
        assert (missing.value.status, missing.value.code, missing.value.detail) == (
            404, "not_found", "no certificate x")
        assert len(script.seen) == 1 and sleeps == []
        with pytest.raises(NodeError) as teapot:
            client.get("/teapot")
        assert (teapot.value.code, teapot.value.detail) == ("http_error", "<h1>I am a teapot</h1>")
        with pytest.raises(BadReply):
            client.get("/garbled")
        with pytest.raises(NodeError) as busy:
            client.status()
        assert (busy.value.status, busy.value.code) == (503, "busy")
        assert not isinstance(busy.value, Unreachable) and sleeps == [0.1]


def test_a_timeout_is_retried_like_a_connection_error() -> None:
    """Goal: a node slower than the timeout counts as unreachable (retried, then
    Unreachable), never a hang. Method: the node takes 0.5 s; the timeout is 0.1 s."""
    script = Script({"/v1/status": [(200, 0.5)]})
    sleeps: list[float] = []
    with Served(script.app()) as url:
        client = Client(url, timeout=0.1, retries=2, backoff=FAST, sleep=sleeps.append)
        with pytest.raises(Unreachable):
            client.status()
    assert sleeps == [0.1] and len(script.seen) == 2


def test_resubmission_after_a_lost_reply_returns_the_receipt() -> None:
    """Goal: when a retried transaction is refused as a duplicate (the first attempt got
    in), the client returns the transaction's receipt instead of the 409. Method: the node
    answers POST /v1/tx with 409 duplicate; GET /v1/tx/{id} with a committed result; the
    GET must name the id of the signed transaction that was posted, and be a signed read
    (a private transaction's result is shown only to its organisation and auditors)."""
    key = CertNet().devnet.account_keys["scjgj"]
    receipt = {"tx_id": "", "status": "committed", "height": 9, "index": 0,
               "result": {"tx_id": "", "ok": True, "code": "ok", "reason": "", "data": {}}}
    script = Script({"/v1/status": [(200, STATUS)],
                     "/v1/tx": [(409, {"error": "duplicate", "detail": "already executed"})],
                     "*": [(200, receipt)]})
    with Served(script.app()) as url:
        client = Client(url, key=key)
        tx = client.make(evidence.TX_TYPE, {"digest": b"\x07" * 32, "label": "合同"})
        tx_id = tx.tx_id(key.suite).hex()
        receipt["tx_id"] = receipt["result"]["tx_id"] = tx_id  # type: ignore[index]
        got = client.submit_tx(tx)
    assert got["height"] == 9
    post = next(s for s in script.seen if s[0] == "POST")
    assert post[1] == "/v1/tx?wait=commit" and post[2]["Content-Type"] == MSGPACK
    assert post[3] == tx.encoded()
    assert script.seen[-1][:2] == ("GET", f"/v1/tx/{tx_id}")
    # Signed: were it a fund flow, the node would show it whole only to a signed read.
    assert "X-Govledger-Read" in script.seen[-1][2]


# -- the async client ---------------------------------------------------------------------------


def test_async_client_retries_fails_over_and_maps_errors(dead_url: str) -> None:
    """Goal: AsyncClient behaves as Client (same operations): 503 retried with backoff,
    failover past a dead node, NodeError for a refusal, Unreachable when nothing answers.
    Method: the scripted server driven with asyncio; awaited sleeps are recorded."""
    script = Script({"/v1/status": [BUSY, (200, STATUS)],
                     "/v1/funds/NOPE": [(404, {"error": "not_found", "detail": "no fund"})]})
    sleeps: list[float] = []

    async def record(delay: float) -> None:
        sleeps.append(delay)

    async def scenario(url: str) -> None:
        async with AsyncClient([dead_url, url], retries=3, backoff=FAST, sleep=record) as c:
            status = await c.node_status()
            assert status.height == 7 and await c.get_chain_id() == "govledger-test"
            with pytest.raises(NodeError) as caught:
                await c.fund("NOPE")
            assert (caught.value.status, caught.value.detail) == (404, "no fund")
        async with AsyncClient(dead_url, retries=2, backoff=FAST, sleep=record) as c:
            with pytest.raises(Unreachable):
                await c.status()

    with Served(script.app()) as url:
        asyncio.run(scenario(url))
    assert sleeps == [0.1, 0.1]  # one for the 503, one between the dead node's rounds


# -- typed results and local verdicts over the real routes ---------------------------------------


class FakeNode:
    """The parts of ledger.api.NodeHandle the routes use; signed reads are checked for
    real (method, path, query, chain, signature freshness) but not logged."""

    def __init__(self, chain: Any, roles: list[str]) -> None:
        self.chain, self.roles = chain, roles
        self.consortium_key = None
        self.reads: list[str] = []

    async def authorize_read(self, request: web.Request, wanted: tuple[str, ...]
                             ) -> AccountRecord:
        tx = reads.parse_header(request.headers.get(reads.HEADER), wanted)
        suite = self.chain.genesis.crypto
        reads.check_request(tx, reads.ReadRequest(request.method, request.path,
                                                  list(request.query.items())),
                            self.chain.genesis.chain_id, tx.valid_until - 60_000,
                            lambda _: False, tx.tx_id(suite))
        if not tx.signature_ok(suite):
            raise Rejection(401, "bad_signature", "bad signature")
        self.reads.append(request.path_qs)
        return AccountRecord("审计局", "", self.roles)

    def count_rejection(self, code: str) -> None:
        pass


def node_app(node: FakeNode) -> web.Application:
    app = web.Application(middlewares=[api.error_middleware])
    app[api.NODE_KEY] = node  # type: ignore[assignment]

    async def status(request: web.Request) -> web.Response:
        return web.json_response({**STATUS, "chain_id": node.chain.genesis.chain_id})

    app.router.add_get("/v1/status", status)
    app.router.add_get("/v1/evidence/{digest}", api.get_evidence)
    cert_routes.add_routes(app)
    fiscal_routes.add_routes(app)
    return app


@pytest.fixture(scope="module")
def certnet() -> Iterator[CertNet]:
    net = CertNet()
    net.doc, result = net.issue()  # type: ignore[attr-defined]
    assert result.ok
    result = net.send("scjgj", evidence.TX_TYPE, {"digest": b"\x42" * 32, "label": "合同"})
    assert result.ok
    yield net


def test_certificate_typed_and_verified_locally(certnet: CertNet) -> None:
    """Goal: certificate() maps the record route field by field; verify_certificate()
    reaches VALID here from the genesis; the saved bundle verifies offline; a bundle with
    one byte changed is INVALID on the proofs line, and so is the right bundle judged
    against another network's genesis. Method: real certs routes over an in-process chain."""
    doc = certnet.doc  # type: ignore[attr-defined]
    with Served(node_app(FakeNode(certnet.chain, ["verifier"]))) as url:
        client = Client(url)
        cert = client.certificate(doc.cert_id)
        verdict = client.verify_certificate(certnet.genesis, document=doc.to_json(),
                                            as_of=certnet.time)
        by_id = client.verify_certificate(certnet.genesis, cert_id=doc.cert_id,
                                          as_of=certnet.time)
        node_says = client.node_verdict(document=doc, as_of=certnet.time)
        bundle = client.certificate_bundle(doc.cert_id)
    assert (cert.cert_id, cert.status, cert.type_name, cert.version) == (
        doc.cert_id, "VALID", "营业执照", 1)
    assert cert.digest == doc.digest(certnet.suite) and cert.signer == doc.signer
    assert [e.event for e in cert.history] == ["issue"] and cert.history[0].by == doc.signer
    assert verdict.valid and verdict.failed() == [] and len(verdict.checks) == 8
    assert by_id.valid and by_id.checks[1].detail == "not applicable: no document given"
    assert node_says == verdict

    offline = verify_bundle(certnet.genesis, bundle, document=doc, as_of=certnet.time)
    assert offline.valid
    tampered = bytearray(bundle)
    tampered[len(tampered) // 2] ^= 0x01
    bad = verify_bundle(certnet.genesis, bytes(tampered), document=doc, as_of=certnet.time)
    assert not bad.valid and "proofs" in bad.failed()
    other = CertNet().genesis
    foreign = verify_bundle(other, bundle, document=doc, as_of=certnet.time)
    assert not foreign.valid and "proofs" in foreign.failed()


def test_evidence_verified_locally(certnet: CertNet) -> None:
    """Goal: verify_evidence() confirms an anchored digest from the genesis with its height
    and label; an unknown digest is not valid; a tampered proof is not valid offline.
    Method: a digest anchored on the in-process chain; the real evidence route."""
    with Served(node_app(FakeNode(certnet.chain, ["verifier"]))) as url:
        client = Client(url)
        found = client.verify_evidence(certnet.genesis, b"\x42" * 32)
        missing = client.verify_evidence(certnet.genesis, b"\x43" * 32)
        proof = client.evidence_proof(b"\x42" * 32)
    assert found.valid and found.label == "合同" and found.height is not None
    assert found.sender == certnet.devnet.account_keys["scjgj"].public_key().raw
    assert not missing.valid and "not anchored" in missing.detail
    assert proof is not None and verify_evidence(certnet.genesis, proof, b"\x42" * 32).valid
    tampered = bytearray(proof)
    tampered[-40] ^= 0x01
    assert not verify_evidence(certnet.genesis, bytes(tampered), b"\x42" * 32).valid
    assert not verify_evidence(certnet.genesis, proof, b"\x44" * 32).valid


def test_fund_results_typed_and_trail_signed() -> None:
    """Goal: fund(), funds(), fund_balance() and fund_trail() (forward and backward) map the
    real fiscal routes exactly, and the trail goes out as a valid signed read of exactly
    that request. Method: the harness budget tree plus one payment, served by the fiscal
    routes; the fake node checks each signed read as the node does."""
    fc = FiscalChain()
    try:
        tags = tree(fc)
        paid = fc.ok("district_a", PAY_TX, payment(tags["district_a"], 1_250_000))
        node = FakeNode(fc.chain, ["auditor"])
        with Served(node_app(node)) as url:
            client = Client(url, key=fc.net.account_keys["auditor"])
            fund = client.fund(tags["province"])
            roots = client.funds()
            sheet = client.fund_balance(tags["province"])
            forward = client.fund_trail(tags["province"])
            backward = client.fund_trail(tags["province"], "backward",
                                         payment_id=paid["payment_id"])  # type: ignore[arg-type]
            with pytest.raises(ValueError):
                client.fund_trail(tags["province"], "backward")
    finally:
        fc.close()
    assert (fund.received, fund.allocated, fund.balance) == (100_000_000, 60_000_000, 40_000_000)
    assert [f.tag for f in roots] == [tags["province"]]
    assert [r.tag for r in sheet.rows] == [tags[k] for k in ("province", "city", "district_a",
                                                             "district_b")]
    assert sheet.rows[2].paid == 1_250_000 and sheet.rows[2].progress == "4.16%"
    assert forward.direction == "forward" and forward.totals is not None
    assert (forward.totals.funds, forward.totals.paid_to_payees) == (4, 1_250_000)
    edges = {(e.source, e.target): e.amount for e in forward.edges}
    assert edges[(tags["province"], tags["city"])] == 60_000_000
    assert forward.payees[0].amount == 1_250_000 and forward.payees[0].uscc
    assert backward.direction == "backward" and backward.payment is not None
    assert [s.fund.tag for s in backward.path] == [tags["district_a"], tags["city"],
                                                   tags["province"]]
    assert node.reads == [f"/v1/funds/{tags['province']}/trail",
                          f"/v1/funds/{tags['province']}/trail?backward="
                          f"{paid['payment_id'].hex()}"]  # type: ignore[union-attr]

def test_a_path_the_url_cannot_carry_as_typed_still_reaches_the_node() -> None:
    """Goal: a fund tag is checked before it goes into a URL (one with '/' once reached the
    node as another path, answered with a bare "Not Found"), and any path with a space or a
    non-ASCII character is percent-encoded and answered by the node (it once failed as
    Unreachable: "no node answered"), signed reads included. Method: the fiscal routes
    behind a fake node; bad tags and payment ids, then raw paths."""
    fc = FiscalChain()
    try:
        tags = tree(fc)
        node = FakeNode(fc.chain, ["auditor"])
        with Served(node_app(node)) as url:
            client = Client(url, key=fc.net.account_keys["auditor"], retries=1)
            for bad in ("a/b", "a b", "", "../x", "T#1"):
                with pytest.raises(InputError, match="is not a fund tag"):
                    client.fund(bad)
                with pytest.raises(InputError, match="is not a fund tag"):
                    client.fund_trail(bad)
            with pytest.raises(InputError, match="64 hex digits"):
                client.fund_trail(tags["province"], "backward", payment_id="ab/cd")
            with pytest.raises(NodeError) as spaced:
                client.get("/v1/funds/a b/balance")
            with pytest.raises(NodeError) as chinese:
                client.get("/v1/funds/资金 1/trail", signed=True)
            assert client.fund_balance(tags["province"]).rows[0].tag == tags["province"]
    finally:
        fc.close()
    assert (spaced.value.status, spaced.value.code) == (400, "bad_request")
    assert "'a b' is not a fund tag" in spaced.value.detail
    assert (chinese.value.status, chinese.value.code) == (400, "bad_request")
    assert "'资金 1' is not a fund tag" in chinese.value.detail

