"""HTTP routes for governance, organisations, accounts and the access log (aiohttp).

- ``GET /v1/gov/proposals`` (``?limit=``), ``GET /v1/gov/proposals/{id}``,
  ``GET /v1/gov/kinds`` — public to anyone who can reach a node;
- ``GET /v1/orgs``, ``GET /v1/orgs/{uscc}``, ``GET /v1/accounts/{public key hex}``;
- ``GET /v1/access-log`` (``?limit=``, ``?before=``) — a signed read by an auditor;
  it is itself logged. Newest first; each page's ``next`` is the next page's ``before``.
"""

from __future__ import annotations

import string
import struct
from typing import Any

from aiohttp import web

from ledger import acl, governance
from ledger.api import NODE_KEY, error, int_query, op, reply
from ledger.codec import decode_value
from ledger.errors import InputError
from ledger.reads import INDEX_PREFIX


def _limit(request: web.Request) -> int:
    return int_query(request, "limit", 50, 1, 500)


def _proposal_view(node: Any, proposal: dict[str, Any], members: list[bytes]
                   ) -> dict[str, Any]:
    """A proposal as stored, with its tally among the current committee and its status as of
    the head block (an open proposal past ``expires_at`` shows as ``expired``)."""
    approvals, rejections = governance.tally(proposal, members)
    return {**proposal, "status": governance.display_status(proposal, node.chain.head().time),
            "approvals": approvals, "rejections": rejections,
            "needed": governance.needed(len(members)), "committee_size": len(members)}


async def list_proposals(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    members = acl.committee(node.chain.state_get)
    items = [_proposal_view(node, p, members)
             for p in governance.list_proposals(node.chain.state_get, _limit(request))]
    return reply(request, {"proposals": items, "committee": members,
                           "needed": governance.needed(len(members))})


async def get_proposal(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    text = request.match_info["number"]
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise InputError("proposal id must be a positive integer")
    proposal = governance.get_proposal(node.chain.state_get, int(text))
    if proposal is None:
        return error(404, "not_found", f"no proposal {text}")
    return reply(request, _proposal_view(node, proposal, acl.committee(node.chain.state_get)))


async def list_kinds(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    kinds = node.chain.registry.proposal_kinds
    return reply(request, {"kinds": [{"name": k.name, "summary": k.summary}
                                     for k in sorted(kinds.values(), key=lambda k: k.name)]})


def _org_view(node: Any, record: acl.OrgRecord) -> dict[str, Any]:
    accounts = []
    for key in record.keys:
        account = acl.get_account(node.chain.state_get, key)
        if account is not None:
            accounts.append({"public_key": key, "name": account.name, "roles": account.roles,
                             "revoked_at": account.revoked_at, "valid_from": account.valid_from})
    return {"name": record.name, "uscc": record.uscc, "kind": record.kind,
            "region": record.region, "accounts": accounts}


async def list_orgs(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    orgs = []
    for key, _ in node.chain.store.iter_state(acl.ORG_PREFIX):
        record = acl.get_org(node.chain.state_get, key[len(acl.ORG_PREFIX):].decode())
        if record is not None:
            orgs.append(_org_view(node, record))
        if len(orgs) >= 1000:
            break
    return reply(request, {"orgs": orgs})


async def get_org(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    uscc = request.match_info["uscc"]
    if len(uscc) != 18 or not (uscc.isascii() and uscc.isalnum()):  # before upper(): ß is SS
        raise InputError("a USCC has 18 letters and digits")
    uscc = uscc.upper()
    record = acl.get_org(node.chain.state_get, uscc)
    if record is None:
        return error(404, "not_found", f"no organisation {uscc} is registered")
    return reply(request, _org_view(node, record))


async def get_account(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    try:
        key = bytes.fromhex(request.match_info["key"])
    except ValueError:
        raise InputError("the public key must be hex") from None
    account = acl.get_account(node.chain.state_get, key)
    if account is None:
        return error(404, "not_found", "no account for this key")
    return reply(request, {"public_key": key, "name": account.name, "org": account.org,
                           "roles": account.roles, "revoked_at": account.revoked_at,
                           "valid_from": account.valid_from,
                           "committee": key in acl.committee(node.chain.state_get)})


def _access_start(before: str | None) -> bytes | None:
    """Where a page of the access log starts (newest first; the key itself excluded):
    ``before`` is the ``next`` of the page before (``HEIGHT-TXID``), or a block height."""
    if before is None:
        return None
    height_text, _, tx_hex = before.partition("-")
    if not (height_text.isascii() and height_text.isdigit() and len(height_text) <= 19) or (
            tx_hex and not (len(tx_hex) == 64 and all(c in string.hexdigits for c in tx_hex))):
        raise InputError("before must be a block height, or the next cursor of the page "
                         "before (HEIGHT-TXID, the transaction's 64 hex digits)")
    height = int(height_text)
    if height >= 2 ** 64:
        raise InputError("before must be a block height below 2^64")
    if tx_hex:
        return INDEX_PREFIX + struct.pack(">Q", height) + bytes.fromhex(tx_hex)
    if height == 0:
        return INDEX_PREFIX  # nothing is older than block 0
    return INDEX_PREFIX + struct.pack(">Q", height - 1) + b"\xff" * 64


def _access_cursor(key: bytes) -> str:
    rest = key[len(INDEX_PREFIX):]
    return f"{struct.unpack('>Q', rest[:8])[0]}-{rest[8:].hex()}"


async def access_log(request: web.Request) -> web.Response:
    """The signed reads served, newest first, a page of ``limit`` at a time: ``next`` (or
    null at the oldest) is the ``before`` of the next page, so every entry can be reached."""
    node = request.app[NODE_KEY]
    limit = _limit(request)
    start = _access_start(request.query.get("before"))
    await node.authorize_read(request, ("auditor",))
    entries: list[Any] = []
    last = b""
    more = False
    for key, raw in node.chain.store.iter_index(INDEX_PREFIX, start=start, reverse=True):
        if key == start:
            continue
        if len(entries) == limit:
            more = True
            break
        entries.append(decode_value(raw))
        last = key
    return reply(request, {"entries": entries, "next": _access_cursor(last) if more else None})


GOV_OPENAPI: dict[str, Any] = {
    "/v1/gov/proposals": {"get": op("Recent proposals and the committee", [("limit", "query")])},
    "/v1/gov/proposals/{number}": {"get": op("One proposal with its votes",
                                              [("number", "path")])},
    "/v1/gov/kinds": {"get": op("Proposal kinds", statuses=(200,))},
    "/v1/orgs": {"get": op("Registered organisations", statuses=(200,))},
    "/v1/orgs/{uscc}": {"get": op("One organisation with its keys and roles",
                                   [("uscc", "path")])},
    "/v1/accounts/{key}": {"get": op("An account (key) with its roles", [("key", "path")])},
    "/v1/access-log": {"get": op("Signed reads served, newest first, paged by before=next "
                                  "(auditor, signed read; logged)",
                                  [("limit", "query"), ("before", "query"),
                                   ("X-Govledger-Read", "header")],
                                  statuses=(200, 400, 401, 403, 409, 503))},
}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/gov/proposals", list_proposals)
    app.router.add_get("/v1/gov/proposals/{number}", get_proposal)
    app.router.add_get("/v1/gov/kinds", list_kinds)
    app.router.add_get("/v1/orgs", list_orgs)
    app.router.add_get("/v1/orgs/{uscc}", get_org)
    app.router.add_get("/v1/accounts/{key}", get_account)
    app.router.add_get("/v1/access-log", access_log)
