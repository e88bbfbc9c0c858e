"""HTTP routes of the certificates application (aiohttp; an IO module).

JSON by default, canonical msgpack with ``Accept: application/msgpack``.
Reads of certificate status are public; finding a natural person's
certificates by ID number needs a signed read by a department.

- ``GET  /v1/certs`` (``?limit=``) — the most recently issued certificate versions;
- ``GET  /v1/certs/types``, ``GET /v1/certs/types/{code}`` — types, schemas, issuers;
- ``GET  /v1/certs/recognitions`` (``?type=``) — mutual-recognition agreements;
- ``GET  /v1/certs/holders/{uscc}`` (``?all=1``) — a legal person's current
  certificates (``all``: superseded versions too);
- ``POST /v1/certs/holders/lookup`` — body ``{"id_number"}``: a natural person's
  certificates, found by the HMAC the node computes; the number is used for
  that computation only — never stored, logged or put in the signed read
  (which names only method and path). Signed read by an issuer, verifier,
  auditor or finance officer;
- ``POST /v1/certs/verify`` — body ``{"document" | "id", "agency", "at",
  "bundle"}``: the verdict of :func:`certs.verify.verify_certificate` over a
  bundle this node builds at its head (or the ``bundle`` given, hex of its
  canonical msgpack);
- ``GET  /v1/certs/{id}`` — the record with its effective status;
- ``GET  /v1/certs/{id}/proof`` (``?agency=USCC``) — the proof bundle; ask for
  ``application/msgpack`` to keep the exact bytes for offline verification.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from certs import queries
from certs.bundle import CertNotFound, build_bundle
from certs.ids import IdentifierError, parse_cert_id, validate_type_code, validate_uscc
from certs.verify import parse_as_of, verify_certificate
from ledger.api import MSGPACK, NODE_KEY, error, int_query, op, read_body, reply
from ledger.codec import decode_value
from ledger.errors import DecodeError, InputError

LOOKUP_ROLES = ("issuer", "verifier", "auditor", "finance")
BODY_BYTES_MAX = 256 * 1024


def _now_ms() -> int:
    return int(time.time() * 1000)


def _cert_id(request: web.Request) -> str:
    return str(parse_cert_id(request.match_info["cert_id"]))


def _no_float(text: str) -> None:
    raise ValueError(f"numbers with fractions are not accepted ({text}); use integers")


async def _body(request: web.Request) -> dict[str, Any]:
    """The request's map: JSON, or canonical msgpack with ``Content-Type:
    application/msgpack`` (SPEC §8), in which a bundle may travel as bytes."""
    body = await read_body(request)
    if len(body) > BODY_BYTES_MAX:
        raise InputError(f"request body larger than {BODY_BYTES_MAX} bytes")
    if request.content_type == MSGPACK:
        try:
            value: object = decode_value(body, max_size=BODY_BYTES_MAX)
        except DecodeError as exc:
            raise InputError(f"request body is not canonical msgpack: {exc}") from None
        if not isinstance(value, dict):
            raise InputError("request body must be a msgpack map")
        return value
    try:
        value = json.loads(body or b"{}", parse_float=_no_float, parse_constant=_no_float)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InputError("request body must be a JSON object")
    return value


async def list_recent(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    return reply(request, {"certs": queries.recent(node.chain, _now_ms(),
                                                int_query(request, "limit", 50, 1,
                                                          queries.LIST_MAX))})


async def list_types(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    return reply(request, {"types": queries.cert_types(node.chain)})


async def get_type(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    code = validate_type_code(request.match_info["code"])
    cert_type = queries.find_type(node.chain, code)
    if cert_type is None:
        return error(404, "not_found", f"certificate type {code} is not registered")
    return reply(request, queries.type_view(node.chain, cert_type))


async def list_recognitions(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    code = request.query.get("type")
    if code is not None:
        code = validate_type_code(code)
    return reply(request, {"recognitions": queries.recognitions(node.chain, code)})


async def holder_certs(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    uscc = validate_uscc(request.match_info["uscc"])
    include_all = request.query.get("all", "") in ("1", "true", "yes")
    certs = queries.by_holder(node.chain, uscc, _now_ms(), include_all)
    return reply(request, {"holder": uscc, "holder_code_type": "001", "certs": certs})


async def citizen_lookup(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = await _body(request)
    if set(body) != {"id_number"} or not isinstance(body["id_number"], str):
        raise InputError('body must be {"id_number": "<citizen ID number>"}')
    if node.consortium_key is None:
        return error(503, "unavailable", "this node holds no consortium key, so it cannot "
                                         "look up natural persons")
    try:
        holder = queries.citizen_holder(node.chain.suite, node.consortium_key,
                                        body["id_number"])
    except IdentifierError:
        # Say what is wrong without echoing any part of the number.
        raise InputError("id_number is not a valid citizen ID number (GB 11643)") from None
    await node.authorize_read(request, LOOKUP_ROLES)
    certs = queries.by_holder(node.chain, holder, _now_ms())
    return reply(request, {"holder": holder, "holder_code_type": "111", "certs": certs})


async def get_cert(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    cert_id = _cert_id(request)
    record = queries.find(node.chain, cert_id)
    if record is None:
        return error(404, "not_found", f"no certificate {cert_id} is on the ledger")
    return reply(request, queries.cert_view(node.chain, record, _now_ms()))


async def get_proof(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    cert_id = _cert_id(request)
    agency = request.query.get("agency") or None
    if agency is not None:
        agency = validate_uscc(agency)
    try:
        bundle = build_bundle(node.chain, cert_id, agency)
    except CertNotFound as exc:
        return error(404, "not_found", str(exc))
    return reply(request, bundle)


async def post_verify(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    body = await _body(request)
    unknown = sorted(set(body) - {"document", "id", "agency", "at", "bundle"})
    if unknown:
        raise InputError(f"unknown field(s) {', '.join(unknown)}; expected document or id, "
                         "and optionally agency, at, bundle")
    document, cert_id = body.get("document"), body.get("id")
    if document is None and cert_id is None:
        raise InputError("give a document or an id")
    if cert_id is not None and not isinstance(cert_id, str):
        raise InputError("id must be a certificate identifier")
    agency = body.get("agency")
    if agency is not None and not isinstance(agency, str):
        raise InputError("agency must be a USCC")
    as_of = parse_as_of(body["at"]) if body.get("at") is not None else _now_ms()
    bundle: Any = None
    if isinstance(body.get("bundle"), bytes):
        bundle = body["bundle"]
    elif body.get("bundle") is not None:
        try:
            bundle = bytes.fromhex(str(body["bundle"]))
        except ValueError:
            raise InputError("bundle must be hex of the canonical msgpack bundle") from None
    else:
        target = cert_id if cert_id is not None else (
            document.get("certificate", {}).get("identifier")
            if isinstance(document, dict) and isinstance(document.get("certificate"), dict)
            else None)
        bundle = _bundle_or_none(node, target, agency)
    verdict = verify_certificate(node.chain.genesis, bundle, as_of_ms=as_of, document=document,
                                 cert_id=cert_id, agency=agency)
    return reply(request, verdict.to_json_value())


def _bundle_or_none(node: Any, target: object, agency: str | None) -> Any:
    """The bundle at this node's head, or None (the verdict then says what is missing)."""
    if not isinstance(target, str):
        return None
    try:
        agency = validate_uscc(agency) if agency else None
    except IdentifierError:
        agency = None  # the recognised line reports the malformed USCC
    try:
        return build_bundle(node.chain, str(parse_cert_id(target)), agency)
    except (CertNotFound, IdentifierError):
        return None


CERTS_OPENAPI: dict[str, Any] = {
    "/v1/certs": {"get": op("Recently issued certificate versions", [("limit", "query")],
                            statuses=(200, 400))},
    "/v1/certs/types": {"get": op("Certificate types with schema and issuers",
                                  statuses=(200,))},
    "/v1/certs/types/{code}": {"get": op("One certificate type", [("code", "path")])},
    "/v1/certs/recognitions": {"get": op("Mutual-recognition agreements", [("type", "query")],
                                         statuses=(200, 400))},
    "/v1/certs/holders/{uscc}": {"get": op("A legal person's certificates",
                                           [("uscc", "path"), ("all", "query")],
                                           statuses=(200, 400))},
    "/v1/certs/holders/lookup": {"post": op(
        "A natural person's certificates by ID number (signed read by a department; the "
        "number is never stored or logged)", [("X-Govledger-Read", "header")], body=True,
        statuses=(200, 400, 401, 403, 409, 503))},
    "/v1/certs/verify": {"post": op("Verdict for a document or identifier (document|id, "
                                    "agency, at, bundle)", body=True,
                                    statuses=(200, 400))},
    "/v1/certs/{cert_id}": {"get": op("Certificate record and effective status",
                                      [("cert_id", "path")])},
    "/v1/certs/{cert_id}/proof": {"get": op(
        "Proof bundle for offline verification (ask for application/msgpack)",
        [("cert_id", "path"), ("agency", "query")])},
}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/certs", list_recent)
    app.router.add_get("/v1/certs/types", list_types)
    app.router.add_get("/v1/certs/types/{code}", get_type)
    app.router.add_get("/v1/certs/recognitions", list_recognitions)
    app.router.add_post("/v1/certs/holders/lookup", citizen_lookup)
    app.router.add_get("/v1/certs/holders/{uscc}", holder_certs)
    app.router.add_post("/v1/certs/verify", post_verify)
    app.router.add_get("/v1/certs/{cert_id}", get_cert)
    app.router.add_get("/v1/certs/{cert_id}/proof", get_proof)
