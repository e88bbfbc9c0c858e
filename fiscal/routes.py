"""HTTP routes of the fiscal app (aiohttp; an IO module).

Public (budget transparency; no personal data in clear exists to leak):

- ``GET /v1/funds`` (``?limit=``) — the most recent appropriations;
- ``GET /v1/funds/{tag}`` — one fund with its sums and balance;
- ``GET /v1/funds/{tag}/balance`` (``?format=json|dot``) — balance sheet of its subtree;
- ``GET /v1/funds/{tag}/proof`` — the fund records that sheet reads, proven at the head
  block, for a client to check the sheet from the genesis file (:mod:`fiscal.proofs`);
- ``GET /v1/fiscal/totals?by=function|region&prefix=…`` — payments summed by code;
- ``GET /v1/fiscal/seal-keys`` — auditor public keys to seal payee data to;
- ``GET /v1/fiscal/vouchers?org=USCC&voucher=NO`` — the flow that recorded an
  organisation's accounting voucher (404: none has).

Signed reads (:mod:`ledger.reads`; each is committed to the ledger as an
``access.read``, which is the access log):

- ``GET /v1/funds/{tag}/trail`` (``?format=json|dot``, ``?backward=PAYMENT_ID``) —
  forward trail, or the backward trail of one payment below ``tag``. The auditor
  role, or a finance officer of an organisation holding ``tag`` or a fund above it;
- ``GET /v1/payments/{payment_id}`` — one payment with the boxes sealed to the audit
  office (auditor, or a finance officer of the paying organisation);
- ``GET /v1/payees/{payee}/payments`` (``?limit=&after=``) — every payment to one
  payee, oldest first, a page at a time (``next`` is the next page's ``after``),
  ``payee`` being a USCC or the 64-hex HMAC of an ID number (never the number: a signed
  read is stored on the ledger with its query) — auditor;
- ``GET /v1/alerts`` (``?rule=&limit=&before=``) — red-flag alerts: all of them for an
  auditor, those naming its organisation for a finance officer.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from fiscal import proofs, queries, rules
from fiscal.model import (
    FLOW_ID_RE,
    VOUCHER_RE,
    VOUCHER_RULE,
    check_tag,
    fund_view,
    payee_key_for_hash,
    payee_key_for_uscc,
)
from ledger import acl
from ledger.admission import Rejection
from ledger.api import NODE_KEY, error, int_query, op, reply
from ledger.errors import InputError
from ledger.ids import IdentifierError, validate_uscc

DOT = "text/vnd.graphviz"


def _tag(request: web.Request) -> str:
    return check_tag(request.match_info["tag"])


def _format(request: web.Request) -> str:
    value = request.query.get("format", "json")
    if value not in ("json", "dot"):
        raise InputError("format must be json or dot (tables are drawn by the client)")
    return value


def _flow_id(text: str, what: str) -> bytes:
    if not FLOW_ID_RE.fullmatch(text):
        raise InputError(f"{what} must be 64 hex digits (the transaction id)")
    return bytes.fromhex(text)


def _dot(body: str) -> web.Response:
    return web.Response(text=body, content_type=DOT, charset="utf-8")


def _forbidden(detail: str) -> Rejection:
    return Rejection(403, "forbidden", detail)


# -- public ------------------------------------------------------------------------------------


async def list_funds(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    limit = int_query(request, "limit", 50, 1, 500)
    return reply(request, {"funds": queries.root_funds(node.chain.store, limit)})


async def get_fund(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    tag = _tag(request)
    found = queries.fund(node.chain.store, tag)
    if found is None:
        return error(404, "not_found", f"no fund with tag {tag}")
    return reply(request, fund_view(found))


async def get_balance(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    tag, fmt = _tag(request), _format(request)
    sheet = queries.balance_sheet(node.chain.store, tag)
    if sheet is None:
        return error(404, "not_found", f"no fund with tag {tag}")
    return _dot(queries.balance_dot(sheet)) if fmt == "dot" else reply(request, sheet)


async def get_balance_proof(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    tag = _tag(request)
    bundle = proofs.balance_bundle(node.chain, tag)
    if bundle is None:
        return error(404, "not_found", f"no fund with tag {tag}")
    return reply(request, bundle)


async def get_totals(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    by = request.query.get("by", "function")
    prefix = request.query.get("prefix", "")
    if by not in ("function", "region"):
        raise InputError("by must be function or region")
    if not ((prefix.isascii() and prefix.isdigit()) or prefix == "") or len(prefix) > 9:
        raise InputError("prefix must be up to 9 digits")
    return reply(request, queries.totals(node.chain.store, by, prefix))


async def get_voucher(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    org, number = request.query.get("org", ""), request.query.get("voucher", "")
    try:
        org = validate_uscc(org)
    except IdentifierError as exc:
        raise InputError(f"org must be the USCC of the organisation that booked the "
                         f"voucher: {exc}") from None
    if not VOUCHER_RE.fullmatch(number):
        raise InputError(f"voucher must be {VOUCHER_RULE}")
    found = queries.voucher(node.chain.store, org, number)
    if found is None:
        return error(404, "not_found", f"{org} has recorded no flow under voucher {number}")
    return reply(request, found)


async def get_seal_keys(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    return reply(request, {"keys": auditor_keys(node.chain)})


def auditor_keys(chain: Any) -> list[dict[str, Any]]:
    """Active keys with the auditor role, found through the organisations registry."""
    out = []
    for key, _ in chain.store.iter_state(acl.ORG_PREFIX):
        record = acl.get_org(chain.state_get, key[len(acl.ORG_PREFIX):].decode())
        for public in record.keys if record else []:
            account = acl.active_account(chain.state_get, public)
            if account is not None and "auditor" in account.roles:
                out.append({"public_key": public, "name": account.name, "org": account.org})
        if len(out) >= 64:
            break
    return out


# -- signed reads --------------------------------------------------------------------------------


async def get_trail(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    tag, fmt = _tag(request), _format(request)
    backward = request.query.get("backward")
    payment_id = _flow_id(backward, "backward") if backward is not None else None
    account = await node.authorize_read(request, ("auditor", "finance"))
    store = node.chain.store
    if queries.fund(store, tag) is None:
        return error(404, "not_found", f"no fund with tag {tag}")
    if "auditor" not in account.roles and account.org not in queries.path_holders(store, tag):
        raise _forbidden(f"{account.name} may follow only funds its organisation holds or "
                         f"allocated; the trail of {tag} needs the auditor role")
    if payment_id is None:
        trail = queries.forward_trail(store, tag)
        assert trail is not None
    else:
        found = queries.backward_trail(store, payment_id)
        if found is None:
            return error(404, "not_found", f"no payment {backward}")
        path = found["path"]
        assert isinstance(path, list)
        if not any(isinstance(step, dict) and isinstance(step["fund"], dict)
                   and step["fund"]["tag"] == tag for step in path):
            return error(404, "not_found", f"payment {backward} was not paid out of fund "
                                           f"{tag} or a fund below it")
        trail = found
    if fmt == "dot":
        title = f"{tag} backward from {backward}" if backward else f"{tag} forward"
        return _dot(queries.to_dot(trail, title))
    return reply(request, trail)


async def get_payment(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    payment_id = _flow_id(request.match_info["payment_id"], "payment id")
    account = await node.authorize_read(request, ("auditor", "finance"))
    record = queries.flow(node.chain.store, payment_id)
    if record is None or record["kind"] != "PAYMENT":
        return error(404, "not_found", "no payment with this id")
    if "auditor" not in account.roles and account.org != record.get("org"):
        raise _forbidden(f"{account.name} may see only its own organisation's payments")
    return reply(request, record)


async def get_payee_payments(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    text = request.match_info["payee"]
    limit = int_query(request, "limit", 500, 1, 5000)
    after = int_query(request, "after", 0, 0, 2**62) if "after" in request.query else None
    if FLOW_ID_RE.fullmatch(text):
        payee = payee_key_for_hash(bytes.fromhex(text))
    else:
        try:
            payee = payee_key_for_uscc(validate_uscc(text))
        except IdentifierError as exc:
            raise InputError(f"payee must be a USCC or the 64-hex HMAC of an ID number "
                             f"(never the number itself): {exc}") from None
    await node.authorize_read(request, ("auditor",))
    return reply(request, queries.payments_to(node.chain.store, payee, limit, after))


async def get_alerts(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    rule = request.query.get("rule")
    if rule is not None and rule not in rules.RULES:
        raise InputError(f"rule must be one of {', '.join(rules.RULES)}")
    limit = int_query(request, "limit", 100, 1, 1000)
    before = (int_query(request, "before", 1, 1, 2**62) if "before" in request.query
              else None)
    account = await node.authorize_read(request, ("auditor", "finance"))
    org = None if "auditor" in account.roles else account.org
    return reply(request, queries.alerts(node.chain.store, rule, org, limit, before))


# -- plug-in surface ------------------------------------------------------------------------------

SIGNED = (200, 400, 401, 403, 404, 409, 503)  # 503: a node that is no validator
OPENAPI: dict[str, Any] = {
    "/v1/funds": {"get": op("Most recent appropriations (root funds)", [("limit", "query")],
                            statuses=(200, 400))},
    "/v1/funds/{tag}": {"get": op("One fund: sums in fen and balance", [("tag", "path")])},
    "/v1/funds/{tag}/balance": {"get": op(
        "Balance sheet of the fund's subtree (JSON, or Graphviz with format=dot)",
        [("tag", "path"), ("format", "query")], also=(DOT,))},
    "/v1/funds/{tag}/proof": {"get": op(
        "The fund records the balance sheet reads, proven at the head block (state proofs "
        "and the certified header): the sheet checked from the genesis file alone",
        [("tag", "path")])},
    "/v1/funds/{tag}/trail": {"get": op(
        "Forward trail, or backward trail of one payment (signed read: auditor, or the "
        "holding organisation's finance officers; logged)",
        [("tag", "path"), ("backward", "query"), ("format", "query"),
         ("X-Govledger-Read", "header")], statuses=SIGNED, also=(DOT,))},
    "/v1/payments/{payment_id}": {"get": op(
        "One payment with the payee data sealed to the audit office (signed read)",
        [("payment_id", "path"), ("X-Govledger-Read", "header")], statuses=SIGNED)},
    "/v1/payees/{payee}/payments": {"get": op(
        "All payments to one payee: USCC, or the HMAC of an ID number (signed read: auditor); "
        "oldest first, paged by after=next",
        [("payee", "path"), ("limit", "query"), ("after", "query"),
         ("X-Govledger-Read", "header")],
        statuses=SIGNED)},
    "/v1/fiscal/totals": {"get": op("Payments summed by function code or fiscal region",
                                    [("by", "query"), ("prefix", "query")],
                                    statuses=(200, 400))},
    "/v1/fiscal/seal-keys": {"get": op("Auditor keys that payee data is sealed to",
                                       statuses=(200,))},
    "/v1/fiscal/vouchers": {"get": op("The flow that recorded an organisation's accounting "
                                      "voucher (凭证号)", [("org", "query"),
                                                          ("voucher", "query")],
                                      statuses=(200, 400, 404))},
    "/v1/alerts": {"get": op(
        "Red-flag alerts, newest first (signed read: auditor; finance sees its own)",
        [("rule", "query"), ("limit", "query"), ("before", "query"),
         ("X-Govledger-Read", "header")], statuses=SIGNED)},
}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/funds", list_funds)
    app.router.add_get("/v1/funds/{tag}/balance", get_balance)
    app.router.add_get("/v1/funds/{tag}/proof", get_balance_proof)
    app.router.add_get("/v1/funds/{tag}/trail", get_trail)
    app.router.add_get("/v1/funds/{tag}", get_fund)
    app.router.add_get("/v1/payments/{payment_id}", get_payment)
    app.router.add_get("/v1/payees/{payee}/payments", get_payee_payments)
    app.router.add_get("/v1/fiscal/totals", get_totals)
    app.router.add_get("/v1/fiscal/seal-keys", get_seal_keys)
    app.router.add_get("/v1/fiscal/vouchers", get_voucher)
    app.router.add_get("/v1/alerts", get_alerts)
