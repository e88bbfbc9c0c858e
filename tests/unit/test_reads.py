"""Signed reads (ledger.reads): the authorisation a node applies before answering a query
that needs a role, and the access log the read transactions leave on the ledger.

The checks are pure functions of the header, the request, the time, the state and a
"used" predicate, so each refusal is tested by calling ``reads.authorize`` directly; the
node (``Node.authorize_read``) runs the same steps with the signature checked in a worker.
"""

from __future__ import annotations

import dataclasses

import pytest

from ledger import reads
from ledger.admission import Rejection
from ledger.codec import decode_value
from ledger.tx import Transaction, make_tx
from tests.unit.govharness import Gov

PATH = "/v1/access-log"
NOW = 1_767_300_000_000


@pytest.fixture(scope="module")
def gov() -> Gov:
    return Gov(3)


def signed(g: Gov, who: str = "aud", path: str = PATH, query: dict[str, str] | None = None,
           now_ms: int = NOW, nonce: int = 7) -> Transaction:
    return reads.make_read(g.keys[who], g.net.genesis.chain_id, "GET", path,
                           query if query is not None else {"limit": "5"}, now_ms, nonce)


def authorize(g: Gov, tx: Transaction | str | None, request: reads.ReadRequest | None = None,
              now_ms: int = NOW, used: bool = False, roles: tuple[str, ...] = ("auditor",)
              ) -> Rejection | None:
    header = tx.encoded().hex() if isinstance(tx, Transaction) else tx
    request = request or reads.ReadRequest("GET", PATH, [("limit", "5")])
    try:
        reads.authorize(header, request, roles, g.net.genesis.chain_id, g.suite, now_ms,
                        g.chain.state_get, lambda _: used)
    except Rejection as exc:
        return exc
    return None


def test_a_good_read_is_authorised(gov: Gov) -> None:
    """Goal: a fresh, unused read for exactly this request, signed by an auditor, passes and
    names the reader. Method: authorize a read made by make_read."""
    tx = signed(gov)
    header, request = tx.encoded().hex(), reads.ReadRequest("get", PATH, [("limit", "5")])
    _, account = reads.authorize(header, request, ("auditor",), gov.net.genesis.chain_id,
                                 gov.suite, NOW, gov.chain.state_get, lambda _: False)
    assert account.name == "aud" and "auditor" in account.roles


@pytest.mark.parametrize(("case", "status", "code", "detail"), [
    ("missing", 401, "signature_required", "this query needs a signed read (header "
                                           "X-Govledger-Read) by a key with the auditor role"),
    ("garbage", 400, "bad_encoding", "X-Govledger-Read does not decode"),
    ("not_a_read", 400, "bad_request", "the signed read is not an access.read of this chain"),
    ("other_chain", 400, "bad_request", "the signed read is not an access.read of this chain"),
    ("other_path", 401, "wrong_request", "the signed read is for another request"),
    ("other_query", 401, "wrong_request", "the signed read is for another request"),
    ("other_method", 401, "wrong_request", "the signed read is for another request"),
    ("repeated_param", 400, "bad_request", "a signed read cannot cover a repeated query"),
    ("stale", 401, "stale", "the signed read has expired"),
    ("nearly_stale", 401, "stale", "the signed read has expired (or would before it can be "
                                   "logged)"),
    ("future", 401, "stale", "the signed read is dated more than 300000 ms ahead"),
    ("replayed", 409, "replayed", "this signed read was used before"),
    ("bad_signature", 401, "bad_signature", "the signed read's signature does not verify"),
    ("wrong_role", 403, "forbidden", "reader (ent) does not have the auditor role"),
    ("unregistered", 403, "forbidden", "reader is not a registered account"),
])
def test_refusals(gov: Gov, case: str, status: int, code: str, detail: str) -> None:
    """Goal: every bad signed read is refused with the right status, code and a reason:
    missing or undecodable header, not a read of this chain, another request (path, query,
    method, or a repeated parameter that the signature cannot pin down), stale (expired,
    too close to expiry to be logged, or dated too far ahead), replayed, bad signature,
    a reader without the role or without an account. Method: one altered read per case."""
    g = gov
    chain_id = g.net.genesis.chain_id
    good = signed(g)
    request = None
    header: Transaction | str | None = good
    now = NOW
    used = False
    if case == "missing":
        header = None
    elif case == "garbage":
        header = "zz" + good.encoded().hex()
    elif case == "not_a_read":
        header = make_tx(g.keys["aud"], chain_id, "evidence.anchor", good.payload, 1,
                         good.valid_until)
    elif case == "other_chain":
        header = make_tx(g.keys["aud"], "other-chain", reads.READ_TX, good.payload, 1,
                         good.valid_until)
    elif case == "other_path":
        request = reads.ReadRequest("GET", "/v1/funds/x/trail", [("limit", "5")])
    elif case == "other_query":
        request = reads.ReadRequest("GET", PATH, [("limit", "500")])
    elif case == "other_method":
        request = reads.ReadRequest("POST", PATH, [("limit", "5")])
    elif case == "repeated_param":
        request = reads.ReadRequest("GET", PATH, [("limit", "5"), ("limit", "500")])
    elif case == "stale":
        now = good.valid_until + 1
    elif case == "nearly_stale":
        now = good.valid_until - reads.COMMIT_MARGIN_MS + 1
    elif case == "future":
        header = signed(g, now_ms=NOW + reads.WINDOW_MS)
    elif case == "replayed":
        used = True
    elif case == "bad_signature":
        header = dataclasses.replace(good, sig=signed(g, nonce=8).sig)
    elif case == "wrong_role":
        header = signed(g, who="ent")
    elif case == "unregistered":
        header = make_tx(g.new_key("nobody"), chain_id, reads.READ_TX, good.payload, 1,
                         good.valid_until)
    refused = authorize(g, header, request, now, used)
    assert refused is not None, case
    assert (refused.status, refused.code) == (status, code)
    assert str(refused).startswith(detail), str(refused)


def test_roles_alternatives(gov: Gov) -> None:
    """Goal: a route may accept any of several roles (e.g. auditor or finance officer).
    Method: an enterprise key is refused for auditor-only and admitted for auditor|enterprise."""
    tx = signed(gov, who="ent")
    refused = authorize(gov, tx, roles=("auditor",))
    assert refused is not None and refused.status == 403
    assert authorize(gov, tx, roles=("auditor", "enterprise")) is None


def test_reads_are_logged_on_the_ledger_and_a_replay_is_a_duplicate() -> None:
    """Goal: the access log is the ledger: an executed access.read is indexed with reader,
    organisation, path and query; the same read cannot be executed twice. Method: execute a
    signed read in a block, read the access/ index, then include it again."""
    g = Gov(3)
    tx = signed(g, now_ms=g.time)
    (first,) = g.block([tx])
    assert first.ok, first.reason
    entries = list(g.chain.store.iter_index(reads.INDEX_PREFIX))
    assert len(entries) == 1
    entry = decode_value(entries[0][1])
    assert isinstance(entry, dict)
    assert (entry["name"], entry["path"], entry["query"], entry["reader"]) == (
        "aud", PATH, {"limit": "5"}, g.pub("aud"))
    (again,) = g.block([tx])
    assert again.code == "duplicate"
    bad = make_tx(g.keys["aud"], g.net.genesis.chain_id, reads.READ_TX,
                  {"method": "GET", "path": PATH}, 9, g.time + 60_000)
    (refused,) = g.block([bad])
    assert not refused.ok and refused.reason == "payload must be {method, path, query}"
