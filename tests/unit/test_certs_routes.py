"""The certificates HTTP routes (certs.routes) on an aiohttp test server over an in-process chain.

The node is a small stand-in with the parts of ledger.api.NodeHandle the routes use;
its signed-read check accepts any request carrying the header and records the roles asked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from certs import routes
from certs.bundle import CertBundle, decode_bundle
from certs.verify import verify_certificate
from ledger import api
from ledger.acl import AccountRecord
from ledger.admission import Rejection
from ledger.codec import decode_value, encode_value, from_json
from tests.unit.certs_harness import CITIZEN, CONSORTIUM_KEY, LICENCE, SKILL, CertNet, uscc

SWJ = "11350100MB1F00049U"


class FakeNode:
    def __init__(self, net: CertNet, consortium_key: bytes | None = CONSORTIUM_KEY) -> None:
        self.chain = net.chain
        self.consortium_key = consortium_key
        self.reads: list[tuple[str, tuple[str, ...]]] = []
        self.rejections: list[str] = []

    async def authorize_read(self, request: web.Request, roles: tuple[str, ...]
                             ) -> AccountRecord:
        if "X-Govledger-Read" not in request.headers:
            raise Rejection(401, "signature_required", "needs a signed read")
        self.reads.append((request.path + "?" + request.query_string, roles))
        return AccountRecord("税务局", SWJ, ["verifier"])

    def count_rejection(self, code: str) -> None:
        self.rejections.append(code)


Scenario = Callable[[TestClient[Any, Any], FakeNode], Awaitable[None]]


def serve(net: CertNet, scenario: Scenario, consortium_key: bytes | None = CONSORTIUM_KEY
          ) -> FakeNode:
    node = FakeNode(net, consortium_key)

    async def main() -> None:
        app = web.Application(middlewares=[api.error_middleware])
        app[api.NODE_KEY] = node  # type: ignore[assignment]
        routes.add_routes(app)
        async with TestClient(TestServer(app)) as client:
            await scenario(client, node)

    asyncio.run(main())
    return node


@pytest.fixture(scope="module")
def net() -> CertNet:
    net = CertNet()
    net.doc, result = net.issue()  # type: ignore[attr-defined]
    assert result.ok
    net.citizen_doc, result = net.issue("rsj", type_code=SKILL)  # type: ignore[attr-defined]
    assert result.ok
    return net


def test_record_and_proof_routes(net: CertNet) -> None:
    """Goal: GET /v1/certs/{id} gives the record with its effective status; .../proof in
    msgpack is a bundle that verifies offline, and its JSON view decodes to the same bundle.
    Method: fetch both forms; verify the msgpack bytes with the genesis alone."""
    doc = net.doc  # type: ignore[attr-defined]

    async def scenario(client: TestClient[Any, Any], node: FakeNode) -> None:
        resp = await client.get(f"/v1/certs/{doc.cert_id}")
        assert resp.status == 200
        view = await resp.json()
        assert view["status"] == "VALID" and view["type_name"] == "营业执照"
        assert view["issuer_name"] == "福州市市场监督管理局" and view["history"][0]["event"] == (
            "issue")
        resp = await client.get(f"/v1/certs/{doc.cert_id}/proof", params={"agency": SWJ},
                                headers={"Accept": "application/msgpack"})
        assert resp.status == 200 and resp.content_type == "application/msgpack"
        data = await resp.read()
        verdict = verify_certificate(net.genesis, data, as_of_ms=net.time, document=doc,
                                     agency=SWJ)
        assert verdict.valid, verdict.failed()
        resp = await client.get(f"/v1/certs/{doc.cert_id}/proof", params={"agency": SWJ})
        assert from_json(CertBundle, await resp.read()) == decode_bundle(data)

    serve(net, scenario)


def test_verify_route(net: CertNet) -> None:
    """Goal: POST /v1/certs/verify gives the shared verdict for a document, an identifier, an
    as-of date and a bundle the client brings. Method: four requests; compare verdicts."""
    doc = net.doc  # type: ignore[attr-defined]

    async def scenario(client: TestClient[Any, Any], node: FakeNode) -> None:
        document = json.loads(doc.to_json())
        body = await (await client.post("/v1/certs/verify", json={
            "document": document, "agency": SWJ})).json()
        assert body["verdict"] == "VALID" and body["agreement"] == "R1"
        assert [c["name"] for c in body["checks"]][-1] == "proofs"
        body = await (await client.post("/v1/certs/verify", json={"id": doc.cert_id})).json()
        assert body["verdict"] == "VALID"
        body = await (await client.post("/v1/certs/verify", json={
            "document": document, "at": "2024-01-01"})).json()
        assert body["verdict"] == "INVALID" and body["status"] == "NOT_ISSUED"
        resp = await client.get(f"/v1/certs/{doc.cert_id}/proof",
                                headers={"Accept": "application/msgpack"})
        bundle_hex = (await resp.read()).hex()
        body = await (await client.post("/v1/certs/verify", json={
            "document": document, "bundle": bundle_hex})).json()
        assert body["verdict"] == "VALID"
        tampered = bundle_hex[:200] + ("0" if bundle_hex[200] != "0" else "1") + bundle_hex[201:]
        body = await (await client.post("/v1/certs/verify", json={
            "document": document, "bundle": tampered})).json()
        assert body["verdict"] == "INVALID"
        document["certificate"]["holder_name"] = "改过的"
        body = await (await client.post("/v1/certs/verify", json={"document": document})).json()
        assert body["verdict"] == "INVALID"

    serve(net, scenario)


def test_verify_and_lookup_take_msgpack_bodies(net: CertNet) -> None:
    """Goal: the two POST routes take a canonical msgpack body when the client says so
    (SPEC §8: msgpack when asked), with the bundle as bytes rather than hex, and refuse
    non-canonical msgpack with a 400 that says so. Method: verify a document against the
    bundle fetched as msgpack; look up a person; send a non-canonical and a non-map body."""
    doc = net.doc  # type: ignore[attr-defined]
    headers = {"Content-Type": "application/msgpack", "Accept": "application/msgpack"}

    async def scenario(client: TestClient[Any, Any], node: FakeNode) -> None:
        resp = await client.get(f"/v1/certs/{doc.cert_id}/proof",
                                headers={"Accept": "application/msgpack"})
        bundle = await resp.read()
        document = json.loads(doc.to_json())
        resp = await client.post("/v1/certs/verify", headers=headers, data=encode_value(
            {"document": document, "bundle": bundle}))
        assert resp.status == 200 and resp.content_type == "application/msgpack"
        verdict = decode_value(await resp.read())
        assert isinstance(verdict, dict) and verdict["verdict"] == "VALID", verdict
        resp = await client.post("/v1/certs/verify", headers=headers, data=encode_value(
            {"document": document, "bundle": bundle[:-1] + bytes([bundle[-1] ^ 1])}))
        verdict = decode_value(await resp.read())
        assert isinstance(verdict, dict) and verdict["verdict"] == "INVALID"
        resp = await client.post("/v1/certs/holders/lookup", data=encode_value(
            {"id_number": CITIZEN}), headers={**headers, "X-Govledger-Read": "00"})
        found = decode_value(await resp.read())
        assert resp.status == 200 and isinstance(found, dict)
        assert [c["cert_id"] for c in found["certs"]] == [  # type: ignore[index, union-attr]
            net.citizen_doc.cert_id]  # type: ignore[attr-defined]
        not_canonical = b"\x81\xa2id\xd9\x05" + b"x" * 5  # a str8 where fixstr fits
        for body, says in ((not_canonical, "not canonical msgpack"),
                           (encode_value([doc.cert_id]), "must be a msgpack map")):
            resp = await client.post("/v1/certs/verify", headers=headers, data=body)
            assert resp.status == 400 and says in (await resp.json())["detail"]

    serve(net, scenario)


def test_lookup_routes(net: CertNet) -> None:
    """Goal: types, recognitions, recent issues and a legal person's certificates are public;
    a natural person's need a signed read, found by the HMAC of the ID number, which is not
    in the signed read and not echoed in errors. Method: call each route."""
    async def scenario(client: TestClient[Any, Any], node: FakeNode) -> None:
        types = (await (await client.get("/v1/certs/types")).json())["types"]
        assert {t["code"] for t in types} >= {LICENCE, SKILL}
        one = await (await client.get(f"/v1/certs/types/{LICENCE}")).json()
        assert one["issuers"][0]["uscc"] == uscc("scjgj") and one["issuers"][0]["current"]
        recs = (await (await client.get("/v1/certs/recognitions")).json())["recognitions"]
        assert recs[0]["agreement"] == "R1" and recs[0]["agency"] == SWJ
        recent = (await (await client.get("/v1/certs", params={"limit": "5"})).json())["certs"]
        assert len(recent) == 2
        held = await (await client.get(f"/v1/certs/holders/{uscc('slkj')}")).json()
        assert [c["cert_id"] for c in held["certs"]] == [net.doc.cert_id]  # type: ignore[attr-defined]
        resp = await client.post("/v1/certs/holders/lookup", json={"id_number": CITIZEN})
        assert resp.status == 401
        resp = await client.post("/v1/certs/holders/lookup", json={"id_number": CITIZEN},
                                 headers={"X-Govledger-Read": "00"})
        found = await resp.json()
        assert resp.status == 200 and found["holder_code_type"] == "111"
        assert [c["cert_id"] for c in found["certs"]] == [net.citizen_doc.cert_id]  # type: ignore[attr-defined]
        assert CITIZEN not in json.dumps(found)
        assert node.reads == [("/v1/certs/holders/lookup?", routes.LOOKUP_ROLES)]
        bad = CITIZEN[:-1] + ("0" if CITIZEN[-1] != "0" else "1")
        resp = await client.post("/v1/certs/holders/lookup", json={"id_number": bad},
                                 headers={"X-Govledger-Read": "00"})
        assert resp.status == 400 and bad not in await resp.text()

    serve(net, scenario)


def test_lookup_without_consortium_key(net: CertNet) -> None:
    """Goal: a node without the consortium key says it cannot look up persons (503), not a
    crash. Method: serve with no key."""
    async def scenario(client: TestClient[Any, Any], node: FakeNode) -> None:
        resp = await client.post("/v1/certs/holders/lookup", json={"id_number": CITIZEN},
                                 headers={"X-Govledger-Read": "00"})
        assert resp.status == 503

    serve(net, scenario, consortium_key=None)


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("GET", "/v1/certs/1.2.3", None, 400),
    ("GET", "/v1/certs/1.2.156.3005.2.11100000MB1F000067001.11350100MB1F000149.ZZ.001.6",
     None, 404),
    ("GET", "/v1/certs/1.2.156.3005.2.11100000MB1F000067001.11350100MB1F000149.ZZ.001.6/proof",
     None, 404),
    ("GET", "/v1/certs/xyz/proof?agency=nope", None, 400),
    ("GET", "/v1/certs/types/123", None, 400),
    ("GET", "/v1/certs/types/11350100MB1F00057N999", None, 404),
    ("GET", "/v1/certs/holders/123", None, 400),
    ("GET", "/v1/certs?limit=0", None, 400),
    ("GET", "/v1/certs/recognitions?type=x", None, 400),
    ("POST", "/v1/certs/verify", b"not json", 400),
    ("POST", "/v1/certs/verify", b"[1, 2]", 400),
    ("POST", "/v1/certs/verify", b"{}", 400),
    ("POST", "/v1/certs/verify", b'{"id": 5}', 400),
    ("POST", "/v1/certs/verify", b'{"id": "x", "colour": 1}', 400),
    ("POST", "/v1/certs/verify", b'{"id": "x", "at": "someday"}', 400),
    ("POST", "/v1/certs/verify", b'{"id": "x", "bundle": "zz"}', 400),
    ("POST", "/v1/certs/verify", b'{"id": "x", "agency": 7}', 400),
    ("POST", "/v1/certs/verify", b'{"document": 1.5}', 400),
    ("POST", "/v1/certs/holders/lookup", b'{"id_number": 1}', 400),
    ("POST", "/v1/certs/holders/lookup", b'{"id": "x"}', 400),
])
def test_bad_input_is_a_4xx(net: CertNet, method: str, path: str, body: bytes | None,
                            status: int) -> None:
    """Goal: anything a client can send gets a 4xx JSON error, never a 500. Method: one
    malformed request per case."""
    async def scenario(client: TestClient[Any, Any], node: FakeNode) -> None:
        resp = await client.request(method, path, data=body)
        assert resp.status == status, await resp.text()
        payload = await resp.json()
        assert set(payload) == {"error", "detail"}

    serve(net, scenario)


@pytest.mark.parametrize(("method", "path", "body", "headers", "detail"), [
    # "²" is a digit to str.isdigit() but not to int(): these were 500s.
    ("GET", "/v1/certs?limit=%C2%B2", None, {}, "limit must be an integer between 1 and"),
    ("POST", "/v1/certs/verify", '{"id": "x", "at": "²"}'.encode(), {},
     "as-of time '²': give YYYY-MM-DD, an ISO date-time or ms since 1970"),
    # A body that does not decode as its Content-Encoding says could not be read: a 500.
    ("POST", "/v1/certs/verify", b"\x00\x00", {"Content-Encoding": "gzip"},
     "the request body does not decode as its Content-Encoding (gzip) says"),
    ("POST", "/v1/certs/holders/lookup", b"\x00\x00", {"Content-Encoding": "gzip"},
     "the request body does not decode as its Content-Encoding (gzip) says"),
])
def test_fuzzer_findings_are_a_400(net: CertNet, method: str, path: str, body: bytes | None,
                                   headers: dict[str, str], detail: str) -> None:
    """Goal: inputs tests/property/test_api_fuzz.py found answered with a 500 get a 400
    that names what is wrong. Method: send each exactly as found."""
    async def scenario(client: TestClient[Any, Any], node: FakeNode) -> None:
        resp = await client.request(method, path, data=body, headers=headers)
        assert resp.status == 400, await resp.text()
        payload = await resp.json()
        assert payload["error"] == "bad_request" and payload["detail"].startswith(detail), (
            payload)

    serve(net, scenario)


def test_verify_of_garbage_documents_is_a_verdict(net: CertNet) -> None:
    """Goal: a syntactically valid request with a nonsense document or an unknown id gets an
    INVALID verdict (200), never an error page. Method: post several."""
    async def scenario(client: TestClient[Any, Any], node: FakeNode) -> None:
        for body in ({"document": {"a": 1}}, {"document": "text"}, {"document": []},
                     {"id": "1.2.156.3005.2.x"},
                     {"document": {"certificate": {"identifier": 5}}}):
            resp = await client.post("/v1/certs/verify", json=body)
            assert resp.status == 200, (body, await resp.text())
            assert (await resp.json())["verdict"] == "INVALID"

    serve(net, scenario)


def test_openapi_describes_every_route() -> None:
    """Goal: every route the app adds is in its OpenAPI paths. Method: compare the router's
    canonical paths with CERTS_OPENAPI."""
    app = web.Application()
    routes.add_routes(app)
    paths = {r.canonical for r in app.router.resources()}
    assert paths == set(routes.CERTS_OPENAPI)
