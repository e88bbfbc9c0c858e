"""Fuzzing the node's HTTP API: malformed and random requests to every route it serves.

A one-validator network with the sample organisations and the demo's sample data
(anchored documents, certificates in every status, a budget tree with payments and
alerts, governance proposals) is served by a real ``node.Node`` in process
(:mod:`tests.unit.node_harness`). Routes are enumerated from that node's router, so a
new route is fuzzed without touching this file; path parameters mix existing values
(harvested from the chain), near misses of them (a changed check character, cut short,
lengthened, other digits, other case), values of other kinds and garbage; query names
come from the route's OpenAPI entry plus every other route's and unknown ones.

Bodies: none, empty, binary, invalid JSON, JSON of every type, the route's fields with
values of the wrong type, huge numbers, deep nesting, long strings, a body the route
accepts with a field changed, msgpack junk, signed transactions whose payload (taken from
a committed one) has fields changed, dropped or added; sent under any Content-Type, some
gzip-compressed, some declaring an encoding they are not in. A signed read, when there
is one, is valid for exactly the request sent, or for another, or stale. A second test
sends only signed transactions that are valid but for their changed payloads, by the key
that sent the original, and waits for each block, so the handlers see them too.

Every answer must be below 500, and an error must be the error middleware's JSON,
``{"error", "detail"}``; no request may leave an error in the node's log (a 500, a
handler failing on a payload it should have refused). A request that carries no valid
signature — neither a transaction nor a signed read — may change nothing: the head block
(so height and state root) and the pending pool are the same after it.

Not fuzzed: what aiohttp's HTTP parser refuses before the app sees a request (an unknown
method token, a request line or header over 8190 bytes, some undecodable deflate or br
bodies); it answers those itself, in text/plain.

More examples: ``GOVLEDGER_FUZZ_EXAMPLES=10000 python3 tasks.py test
tests/property/test_api_fuzz.py`` (the default, 1500, keeps the file under a minute).
"""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import msgpack
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from yarl import URL

from certs.bundle import build_bundle
from ledger import acl, governance
from ledger.codec import encode
from ledger.crypto import PrivateKey, load_private_key_file
from ledger.errors import DecodeError
from ledger.ids import make_citizen_id
from ledger.reads import HEADER, make_read
from ledger.samples import load_samples
from ledger.tx import Transaction, make_tx
from tests.unit.node_harness import NodeThread, one_node_network

EXAMPLES = int(os.environ.get("GOVLEDGER_FUZZ_EXAMPLES", "1500"))
ERROR_KEYS = {"error", "detail"}
HOUR_MS = 3_600_000
# Methods no route has. Not an unknown token ("FOO"): aiohttp's HTTP parser refuses that
# before the app sees it (its own text/plain 400), which is not a route's answer.
OTHER_METHODS = ["PUT", "DELETE", "PATCH", "OPTIONS"]


# -- the served node ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # e.g. "/v1/certs/{cert_id}"
    params: tuple[str, ...]  # path parameter names
    query: tuple[str, ...]  # query parameter names its OpenAPI entry lists
    signed: bool  # its OpenAPI entry asks for a signed read

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


class ErrorLog(logging.Handler):
    """Error records from the node (its own loggers and aiohttp's): a 500, a handler bug —
    or aiohttp's traceback over the rest of a body that does not decode, which the node
    turns into an INFO line (``ledger.api.ClientFaultLog``)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass(repr=False)
class Served:
    runner: NodeThread
    url: str
    session: aiohttp.ClientSession
    routes: list[Route]
    values: dict[str, list[str]]  # parameter name -> existing values
    # Every harvested value up to 200 characters, for parameters of other kinds. (No longer:
    # aiohttp's HTTP parser refuses a request line over 8190 bytes before the app sees it.)
    pool: list[str]
    payloads: dict[str, list[tuple[str, dict[str, Any]]]]  # tx type -> (sender, payload)
    keys: dict[str, PrivateKey]  # slug -> key; "stranger" has no account
    documents: list[Any]  # the sample certificates' signed documents (JSON)
    bodies: dict[str, list[dict[str, Any]]]  # route template -> bodies it accepts
    chain_id: str
    errors: ErrorLog
    nonce: Iterator[int] = field(default_factory=lambda: itertools.count(1_000_000))

    def __repr__(self) -> str:
        return f"Served({self.url}, {len(self.routes)} routes)"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # hypothesis's reports
        printer.text(repr(self))

    @property
    def node(self) -> Any:
        return self.runner.node

    def snapshot(self) -> tuple[Any, ...]:
        """What a request can change: the head (so height and state root), the pool, and the
        transactions submitted here. (Not the inbox: the replica's timer ticks go there.)"""
        async def read() -> tuple[Any, ...]:
            node = self.node
            return (node.chain.height, node.chain.head().block_hash(node.suite),
                    node.replica.pool_size, len(node.submitted_at))
        return self.runner.call(read())

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Until what was submitted is appended: nothing queued, pooled or in flight."""
        async def busy() -> bool:
            return bool(self.node.replica.pool_size or self.node.inbox.qsize())

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.runner.call(busy()):
                return
            time.sleep(0.005)
        raise AssertionError("the node did not append what it was sent within 10 s")


def _routes(runner: NodeThread) -> list[Route]:
    assert runner.app is not None
    openapi: dict[str, Any] = runner.node.openapi_paths
    out = []
    for resource in runner.app.router.resources():
        info = resource.get_info()
        if "prefix" in info:  # a static folder: one parameter, the file's path
            template = f"{info['prefix']}/{{filename}}"
        else:
            template = info.get("formatter") or info["path"]
        params = tuple(part[1:-1] for part in template.split("/")
                       if part.startswith("{") and part.endswith("}"))
        for route in resource:
            entry = openapi.get(template, {}).get(route.method.lower(), {})
            query = tuple(p["name"] for p in entry.get("parameters", []) if p["in"] == "query")
            signed = any(p["name"] == HEADER for p in entry.get("parameters", []))
            out.append(Route(route.method, template, params, query, signed))
    return out


def _harvest(runner: NodeThread, slugs: dict[bytes, str]
             ) -> tuple[dict[str, list[str]], dict[str, list[tuple[str, dict[str, Any]]]]]:
    """Existing values for each path and query parameter name, and committed payloads with
    the slug of the key that sent each."""
    chain = runner.node.chain
    store, suite = chain.store, chain.suite
    values: dict[str, set[str]] = {}

    def add(name: str, *found: object) -> None:
        for value in found:
            if isinstance(value, bytes):
                value = value.hex()
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                values.setdefault(name, set()).add(str(value))

    payloads: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for height in range(chain.height + 1):
        add("height", height)
        block = store.get_block(height)
        results = store.get_results(height) or []
        assert block is not None
        for tx, result in zip(block.txs, results, strict=True):
            add("tx_id", tx.tx_id(suite))
            add("tx", tx.encoded())
            payloads.setdefault(tx.type, []).append((slugs.get(tx.sender, "stranger"),
                                                     tx.payload))
            data = result.data
            if tx.type == "evidence.anchor":
                add("digest", tx.payload["digest"])
            add("cert_id", data.get("cert_id"), data.get("supersedes"))
            add("id", data.get("cert_id"))
            add("tag", data.get("tag"), data.get("child_tag"), data.get("from"))
            add("payment_id", data.get("payment_id"))
            add("backward", data.get("payment_id"))
            add("payee", tx.payload.get("payee_uscc"))
    for proposal in governance.list_proposals(chain.state_get, 500):
        add("number", proposal.get("id"), proposal.get("proposal_id"))
    for key, _ in store.iter_state(acl.ORG_PREFIX):
        record = acl.get_org(chain.state_get, key[len(acl.ORG_PREFIX):].decode())
        assert record is not None
        add("uscc", record.uscc)
        add("org", record.uscc)
        add("agency", record.uscc)
        add("key", *record.keys)
    for cert_id in values["cert_id"]:
        add("bundle", encode(build_bundle(chain, cert_id, None)))
    add("at", "2026-01-01", "2020-02-30", "2026-01-01T08:00:00+08:00", "1767225600000", -1)
    add("id_number", make_citizen_id("350102", date(1990, 5, 17), "123"), "11010519491231002X")
    for cert_type in chain.genesis.apps.get("certs", {}).get("types", []):
        add("code", cert_type["code"])
        add("type", cert_type["code"])
    web_root = Path(__file__).resolve().parents[2] / "web"
    add("filename", *(str(p.relative_to(web_root)) for p in web_root.rglob("*") if p.is_file()))
    add("limit", 1, 5, 50, 500, 1000)
    add("before", 1, 2**62)
    add("format", "json", "dot")
    add("by", "function", "region")
    add("prefix", "", "2", "205", "2050101")
    add("all", "1", "true", "0")
    add("wait", "commit")
    add("rule", "split_payment", "licence", "idle_balance")
    add("voucher", "记-2026-0001", "X1")
    return {name: sorted(found) for name, found in values.items()}, payloads


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    directory = tmp_path_factory.mktemp("fuzznet")
    with one_node_network(directory, "govledger-fuzz",
                          int(time.time() * 1000) - HOUR_MS) as (url, runner):
        errors = ErrorLog()
        loggers = [logging.getLogger("govledger"), logging.getLogger("aiohttp")]
        try:
            load_samples(directory, [url])
            suite = runner.node.genesis.suite
            keys = {p.stem: load_private_key_file(p, suite)
                    for p in sorted((directory / "keys").rglob("*.pem"))}
            keys["stranger"] = runner.node.suite.generate_key()
            values, payloads = _harvest(runner, {k.public_key().raw: slug
                                                 for slug, k in keys.items()})
            documents = [json.loads(p.read_text(encoding="utf-8"))
                         for p in sorted((directory / "certs").glob("*.json"))]

            cert_ids, uscc = values["cert_id"], values["uscc"][0]
            bodies = {
                "/v1/tx": [{"tx": tx} for tx in values["tx"][:20]],  # all executed: a 409
                "/v1/certs/holders/lookup": [{"id_number": n} for n in values["id_number"]],
                "/v1/certs/verify": [
                    *({"document": doc} for doc in documents),
                    *({"id": cert_id, "agency": uscc, "at": "2026-01-01"} for cert_id in cert_ids),
                    *({"document": doc, "bundle": bundle}
                      for doc, bundle in zip(documents, values["bundle"], strict=False))],
            }

            async def open_session() -> aiohttp.ClientSession:
                return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

            session = runner.call(open_session())
            for logger in loggers:
                logger.addHandler(errors)
            yield Served(runner, url, session, _routes(runner), values,
                         sorted({v for vs in values.values() for v in vs if len(v) <= 200}),
                         payloads, keys, documents, bodies, runner.node.genesis.chain_id, errors)
            runner.call(session.close())
        finally:
            for logger in loggers:
                logger.removeHandler(errors)


# -- requests --------------------------------------------------------------------------------------


@dataclass
class Request:
    """One request; ``read`` and ``tx`` are signed when it is sent (they are dated)."""

    method: str
    route: str  # the route's template, for reports
    path: str  # percent-encoded as sent
    query: str  # percent-encoded as sent
    headers: dict[str, str]
    body: bytes | None = None
    gzip: bool = False  # sent gzip-compressed, with Content-Encoding: gzip
    read: tuple[str, str] | None = None  # (mode, signer slug) of an X-Govledger-Read header
    tx: dict[str, Any] | None = None  # how to build a signed transaction for the body


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes
    signed: bool  # the request carried a valid signature (a transaction or a read)


def send(served: Served, req: Request) -> Answer:
    headers = dict(req.headers)
    body, signed = req.body, False
    target = URL(served.url + req.path + ("?" + req.query if req.query else ""), encoded=True)
    if req.read is not None:
        mode, who = req.read
        now = int(time.time() * 1000)
        method, path = req.method, target.path
        query = {k: v for k, v in target.query.items()}
        if mode == "other_request":
            path += "x"
        if mode == "stale":
            now -= 10 * 60_000
        read = make_read(served.keys[who], served.chain_id, method, path, query, now,
                         next(served.nonce))
        headers[HEADER] = read.encoded().hex()
        signed = mode == "valid"
    if req.tx is not None:
        tx, signed = _build_tx(served, req.tx)
        if req.tx["encoding"] == "msgpack":
            body = tx.encoded()
            headers["Content-Type"] = "application/msgpack"
        else:
            body = json.dumps({"tx": tx.encoded().hex()}).encode()
            headers["Content-Type"] = "application/json"

    if req.gzip and body is not None:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"

    async def go() -> Answer:
        async with served.session.request(
                req.method, target, data=body, headers=headers,
                skip_auto_headers=["Content-Type"], allow_redirects=False) as resp:
            return Answer(resp.status, resp.headers.get("Content-Type", ""), await resp.read(),
                          signed)

    return served.runner.call(go())


def _build_tx(served: Served, recipe: dict[str, Any]) -> tuple[Transaction, bool]:
    now = int(time.time() * 1000)
    valid_until = now + {"ok": 60_000, "expired": -60_000, "far": 10 * 24 * HOUR_MS}[
        recipe["when"]]
    chain_id = served.chain_id if recipe["chain"] else "govledger-other"
    try:
        tx = make_tx(served.keys[recipe["who"]], chain_id, recipe["type"], recipe["payload"],
                     next(served.nonce), valid_until)
    except DecodeError:  # a payload no client can sign (too large): the raw bodies cover it
        assume(False)
    if recipe["bad_sig"]:
        sig = bytearray(tx.sig)
        sig[len(sig) // 2] ^= 1
        tx = dataclasses.replace(tx, sig=bytes(sig))
    return tx, not recipe["bad_sig"] and recipe["chain"] and recipe["when"] == "ok"


def check(served: Served, req: Request, answer: Answer, before: tuple[Any, ...]) -> None:
    """The properties every answer must have (see the module docstring)."""
    what = f"{req.method} {req.path}?{req.query} -> {answer.status} {answer.body[:300]!r}"
    if answer.signed:
        served.wait_idle()  # so a handler failing on what was sent has logged it by now
    if served.errors.records:
        records = [f"{r.name}: {r.getMessage()}\n{r.exc_text or ''}"
                   for r in served.errors.records]
        served.errors.records.clear()
        raise AssertionError(f"{what}\nthe node logged errors:\n" + "\n".join(records))
    assert answer.status < 500, what
    if answer.status >= 400 and req.method != "HEAD":
        assert answer.content_type.split(";")[0] == "application/json", what
        value = json.loads(answer.body)
        assert isinstance(value, dict) and set(value) == ERROR_KEYS, what
        assert isinstance(value["error"], str) and value["error"], what
        assert isinstance(value["detail"], str) and value["detail"], what
    if not answer.signed:
        assert served.snapshot() == before, f"{what}\nan unsigned request changed the node"


# -- strategies ------------------------------------------------------------------------------------

# Path segments and query values that are not what any route expects, as they are sent
# (already percent-encoded, or deliberately broken encodings).
RAW_JUNK = ["", "0", "-1", "+1", "%201", "1%20", "1e3", "0x10", "00", "9" * 19, "9" * 20,
            "9" * 400, "18446744073709551616", "-9223372036854775809", quote("²"),
            quote("١٢"), quote("１２"), quote("Ⅻ"), "null", "true", "%5B%5D", "%7B%7D", "%",
            "%zz", "%00", "%FF", "%C0%AF", "%E4%B8", "%2F", "%2e%2e", "..", ".", "~",
            quote("'\"<>"), "a" * 300, quote("\u202e"), quote("😀"), quote("\u0000"),
            "%25", "+", "%2B", "a%00b"]
ALPHABET = "0123456789ABCDEFabcdefXYZ-_.~ %²١１Ｑ中\u00e9"
JUNK_TEXT = st.text(max_size=40)


@st.composite
def near(draw: st.DrawFn, value: str) -> str:
    """``value`` changed a little: one character replaced, dropped or added, cut short,
    doubled, its case changed, digits in another script, padded."""
    i = draw(st.integers(0, max(len(value) - 1, 0)))
    c = draw(st.sampled_from(ALPHABET))
    op = draw(st.sampled_from(["replace", "drop", "insert", "cut", "double", "upper",
                               "lower", "script", "pad", "sign"]))
    if op == "replace":
        return value[:i] + c + value[i + 1:]
    if op == "drop":
        return value[:i] + value[i + 1:]
    if op == "insert":
        return value[:i] + c + value[i:]
    if op == "cut":
        return value[:i]
    if op == "double":
        return value + value
    if op == "upper":
        return value.upper()
    if op == "lower":
        return value.lower()
    if op == "script":
        return value.translate(str.maketrans("0123456789", draw(st.sampled_from(
            ["０１２３４５６７８９", "٠١٢٣٤٥٦٧٨٩", "⁰¹²³⁴⁵⁶⁷⁸⁹"]))))
    if op == "pad":
        return draw(st.sampled_from([" ", "0", "\t", "\n"])) + value
    return "-" + value


def plain_value(served: Served, name: str) -> st.SearchStrategy[str]:
    """Text for a parameter or body field called ``name``: an existing value, a near miss of
    one, a value of another kind, or garbage."""
    existing = served.values.get(name) or served.pool
    return st.one_of(st.sampled_from(existing), st.sampled_from(existing).flatmap(near),
                     st.sampled_from(served.pool), JUNK_TEXT)


@st.composite
def numerals(draw: st.DrawFn) -> str:
    """A number as a client might mistype it: huge (beyond the 4,300 digits Python's int()
    converts), negative, with a fraction or exponent, padded, or in digits of another
    script (which str.isdigit() accepts)."""
    text = str(draw(st.one_of(st.integers(0, 1000), st.integers(-(2**70), 2**70))))
    form = draw(st.sampled_from(["ascii", "fullwidth", "arabic", "superscript", "plus",
                                 "fraction", "exponent", "pad", "long"]))
    if form == "long":
        return "1" * draw(st.sampled_from([4300, 4301, 6000]))  # one fits a request line
    digits = {"fullwidth": "０１２３４５６７８９", "arabic": "٠١٢٣٤٥٦٧٨٩",
              "superscript": "⁰¹²³⁴⁵⁶⁷⁸⁹"}
    if form in digits:
        return text.translate(str.maketrans("0123456789", digits[form]))
    return {"ascii": text, "plus": "+" + text, "fraction": text + ".0", "exponent": text + "e3",
            "pad": " " + text}[form]


def text_value(served: Served, name: str) -> st.SearchStrategy[str]:
    """Percent-encoded text for a path or query parameter called ``name``."""
    return st.one_of(
        plain_value(served, name).map(lambda v: quote(v, safe="")),
        numerals().map(lambda v: quote(v, safe="")),
        st.sampled_from(RAW_JUNK),
        st.binary(max_size=24).map(lambda v: quote(v, safe="")),
    )


def query_string(served: Served, route: Route) -> st.SearchStrategy[str]:
    common = sorted({n for r in served.routes for n in r.query})
    names = st.one_of(st.sampled_from(route.query or ("limit",)), st.sampled_from(common),
                      st.sampled_from(["x", "", "limit[]", "a%00", "%zz", quote("名")]))

    @st.composite
    def build(draw: st.DrawFn) -> str:
        pairs = []
        for _ in range(draw(st.integers(0, 4))):
            name = draw(names)
            pairs.append(f"{name}={draw(text_value(served, name.strip('%')))}")
        junk = draw(st.sampled_from(["", "", "", "&", "=", "&&x", "limit", "=1"]))
        return "&".join(pairs) + junk

    return build()


# JSON values of every shape: huge and negative integers, fractions, long strings, nesting.
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
    st.sampled_from(["", "00", "1.2.156.", "2026-01-01", "9" * 30, "1" * 4301, "0001-01-01",
                     "9999-12-31T23:59:59-14:00"]),
    st.integers(1000, 300_000).map(lambda n: "a" * n))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)
# What the canonical encoding can carry (payload values of a signed transaction).
PLAIN_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
                          st.text(max_size=30), st.binary(max_size=40),
                          st.sampled_from(["", "0", "-1", "2026-02-30"]),
                          st.integers(1000, 30_000).map(lambda n: "a" * n))
PLAIN_VALUES = st.recursive(PLAIN_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=10), inner, max_size=3)),
    max_leaves=8)
# The fields of each route's JSON body (a route not listed gets all of them).
BODY_KEYS = {"/v1/tx": ["tx"], "/v1/certs/holders/lookup": ["id_number"],
             "/v1/certs/verify": ["document", "id", "agency", "at", "bundle"]}


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def body(served: Served, route: Route) -> st.SearchStrategy[bytes | None]:
    @st.composite
    def document(draw: st.DrawFn) -> Any:
        """A sample certificate's signed document, with one field or section changed."""
        doc = json.loads(json.dumps(draw(st.sampled_from(served.documents))))
        section = draw(st.sampled_from(sorted(doc)))
        if isinstance(doc[section], dict) and doc[section] and draw(st.booleans()):
            name = draw(st.sampled_from(sorted(doc[section])))
            doc[section][name] = draw(JSON_VALUES | plain_value(served, name))
        elif draw(st.booleans()):
            doc[section] = draw(JSON_VALUES)
        return doc

    known = BODY_KEYS.get(route.template) or sorted({k for ks in BODY_KEYS.values() for k in ks})

    @st.composite
    def objects(draw: st.DrawFn) -> bytes:
        """The route's fields (sometimes an unknown one too), each an existing value, a near
        miss, a signed document, or JSON of any type."""
        keys = draw(st.lists(st.sampled_from(known), min_size=1, max_size=3, unique=True))
        if draw(st.integers(0, 5)) == 0:
            keys.append(draw(st.text(max_size=8)))
        value = {key: draw(field_value(key)) for key in keys}
        return json_bytes(value)

    def field_value(key: str) -> st.SearchStrategy[Any]:
        return st.one_of(plain_value(served, key), plain_value(served, key), JSON_VALUES,
                         document())

    @st.composite
    def nearly_valid(draw: st.DrawFn) -> bytes:
        """A body the route accepts, with up to two fields changed, dropped or added: the
        requests that get past parsing into the handler."""
        value = dict(draw(st.sampled_from(served.bodies[route.template])))
        for _ in range(draw(st.integers(0, 2))):
            op = draw(st.sampled_from(["set", "drop", "add"]))
            if op == "set" and value:
                key = draw(st.sampled_from(sorted(value)))
                value[key] = draw(field_value(key))
            elif op == "drop" and value:
                del value[draw(st.sampled_from(sorted(value)))]
            else:
                key = draw(st.sampled_from(known) | st.text(max_size=8))
                value[key] = draw(field_value(key))
        return json_bytes(value)

    @st.composite
    def nested(draw: st.DrawFn) -> bytes:
        depth = draw(st.sampled_from([40, 1000, 100_000]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"id":[', "]}")]))
        return (opener * depth + "1" + closer * depth).encode()

    @st.composite
    def packed(draw: st.DrawFn) -> bytes:
        value = msgpack.packb(draw(PLAIN_VALUES), use_bin_type=True)
        if value and draw(st.booleans()):
            i = draw(st.integers(0, len(value) - 1))
            value = value[:i] + bytes([value[i] ^ draw(st.integers(1, 255))]) + value[i + 1:]
        return bytes(value)

    valid = [nearly_valid()] * 3 if served.bodies.get(route.template) else []
    return st.one_of(
        *valid,
        st.none(), st.just(b""), st.binary(max_size=64), JSON_VALUES.map(json_bytes), objects(),
        nested(), packed(),
        st.sampled_from([b"NaN", b"Infinity", b'{"id": NaN}', b'{"id": 1e400}', b"1" * 5000,
                         b'{"id": ' + b"1" * 5000 + b"}", b'{"id": "\xff"}', b'{"id": "\\ud800"}',
                         b'{"a": 1, "a": 2}', b"{", b'"tx"', b"\xef\xbb\xbf{}",
                         b'{"tx": "' + b"ab" * 100_000 + b'"}', b"\x00" * 300_000]),
    )


def headers() -> st.SearchStrategy[dict[str, str]]:
    media = ["application/json", "application/msgpack", "text/plain", "*/*",
             "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
             "application/json; charset=latin-1", "text/vnd.graphviz", "x", ";;", "a/b/c"]
    return st.fixed_dictionaries({}, optional={
        "Accept": st.sampled_from(media), "Content-Type": st.sampled_from(media),
        # A body that is not in the encoding declared. (Not deflate or br: aiohttp's own
        # HTTP parser refuses some of those, text/plain, before the app sees the request.)
        "Content-Encoding": st.sampled_from(["gzip", "x", "identity"]),

        # Below aiohttp's 8190-byte limit on a header line, which its HTTP parser enforces
        # (text/plain 400) before the app sees the request.
        HEADER: st.one_of(st.sampled_from(["", "zz", "00", "0" * 8000]),
                          st.binary(max_size=200).map(bytes.hex),
                          st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e),
                                  max_size=60))})


@st.composite
def changed(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """``value`` with one thing changed, at any depth: a map's field set to another value,
    a near miss or a numeral, dropped, or a field added."""
    if isinstance(value, dict) and value and depth < 4 and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(value)))
        return {**value, key: draw(changed(value[key], depth + 1))}
    if isinstance(value, dict):
        op = draw(st.sampled_from(["drop", "add"]))
        if op == "drop" and value:
            gone = draw(st.sampled_from(sorted(value)))
            return {k: v for k, v in value.items() if k != gone}
        return {**value, draw(st.text(max_size=10)): draw(PLAIN_VALUES)}
    if isinstance(value, str) and draw(st.booleans()):
        return draw(near(value) if value else numerals())
    return draw(st.one_of(PLAIN_VALUES, numerals()))


@st.composite
def tx_recipe(draw: st.DrawFn, served: Served) -> dict[str, Any]:
    """A signed transaction: a committed payload of its type with up to three things
    changed (see :func:`changed`), by its sender or any key; sometimes for another chain,
    dated wrong or with a broken signature."""
    types = sorted(served.payloads)
    tx_type = draw(st.sampled_from(types) if draw(st.integers(0, 7)) else st.just("x.y"))
    sender, payload = draw(st.sampled_from(served.payloads.get(tx_type) or [("stranger", {})]))
    for _ in range(draw(st.integers(0, 3))):
        payload = draw(changed(payload))
    who = sender if draw(st.booleans()) else draw(st.sampled_from(sorted(served.keys)))
    return {"type": tx_type, "payload": payload, "who": who,
            "encoding": draw(st.sampled_from(["json", "msgpack"])),
            "chain": draw(st.sampled_from([True, True, True, True, False])),
            "when": draw(st.sampled_from(["ok"] * 6 + ["expired", "far"])),
            "bad_sig": draw(st.sampled_from([False, False, False, False, True]))}


@st.composite
def requests(draw: st.DrawFn, served: Served) -> Request:
    # A path, then one of its methods (GET three times as often as HEAD, whose answers have
    # no body to check); one in four to a route that takes a body: there are few, and
    # bodies vary most.
    templates = sorted({r.template for r in served.routes})
    posts = sorted({r.template for r in served.routes if r.method == "POST"})
    template = draw(st.sampled_from(posts if draw(st.integers(0, 3)) == 0 else templates))
    route = draw(st.sampled_from([r for r in served.routes if r.template == template
                                  for _ in range(1 if r.method == "HEAD" else 3)]))
    path = route.template
    for name in route.params:
        path = path.replace("{" + name + "}", draw(text_value(served, name)), 1)
    method = route.method if draw(st.integers(0, 7)) else draw(st.sampled_from(OTHER_METHODS))
    query = draw(query_string(served, route))
    if len(path) + len(query) > 7000:  # long numbers: keep below aiohttp's 8190-byte line
        query = ""
    req = Request(method, route.template, path, query, draw(headers()),
                  draw(body(served, route)) if route.method != "GET" or draw(st.booleans())
                  else None)
    req.gzip = draw(st.integers(0, 7)) == 0
    signers = sorted(served.keys)
    if draw(st.integers(0, 1 if route.signed else 3)) == 0:
        req.read = (draw(st.sampled_from(["valid", "valid", "other_request", "stale"])),
                    draw(st.sampled_from(["sjj", "sjj", "czj", *signers])))
    if route.template == "/v1/tx" and draw(st.booleans()):
        req.tx = draw(tx_recipe(served))
        req.query = draw(st.sampled_from(["", "", "wait=commit", req.query]))
    return req


# -- tests -----------------------------------------------------------------------------------------


def run(served: Served, req: Request) -> Answer:
    before = served.snapshot()
    answer = send(served, req)
    check(served, req, answer, before)
    return answer


def test_the_checks_can_fail(served: Served) -> None:
    """Goal: the checks are not vacuous: the node serves the kinds of route the fuzzer is
    meant to reach, with existing values for every path parameter; a valid signed read and
    a valid transaction get through (so fuzzed ones can reach the handlers); and a change
    made by a request without a signature, or an error in the node's log, fails the check.
    Method: inspect routes and values; send the two signed requests; call ``check`` on a
    changed node and after logging an error."""
    templates = {r.template for r in served.routes}
    assert {"/v1/tx", "/v1/certs/{cert_id}", "/v1/funds/{tag}/trail", "/v1/gov/proposals",
            "/v1/peer", "/static/{filename}"} <= templates
    for route in served.routes:
        for name in route.params:
            assert served.values.get(name), f"no existing values for {{{name}}} of {route}"
    trail = f"/v1/funds/{quote(served.values['tag'][0])}/trail"
    answer = run(served, Request("GET", "/v1/funds/{tag}/trail", trail, "", {},
                                 read=("valid", "sjj")))
    assert answer.status == 200, answer
    before = served.snapshot()
    anchor = Request("POST", "/v1/tx", "/v1/tx", "", {}, tx={
        "type": "evidence.anchor", "who": "scjgj", "encoding": "msgpack", "chain": True,
        "when": "ok", "bad_sig": False, "payload": {"digest": bytes(32), "label": "fuzz"}})
    answer = send(served, anchor)
    assert answer.status == 202, answer
    served.wait_idle()
    with pytest.raises(AssertionError, match="an unsigned request changed the node"):
        check(served, anchor, dataclasses.replace(answer, signed=False), before)
    logging.getLogger("govledger.api").error("planted by the test")
    with pytest.raises(AssertionError, match="the node logged errors"):
        check(served, anchor, answer, served.snapshot())


# The same few bad inputs for every route and method: every route is reached at least
# this way, whatever the random draw of the fuzz test below.
SWEEP = [("", None, {}), ("limit=0&all=2&format=x&x=1", None, {}),
         ("limit=%C2%B2", b"{", {"Content-Type": "application/json"}),
         ("limit=1&limit=2", b"\x00\x01", {"Content-Type": "application/msgpack"}),
         ("", b"[]", {HEADER: "zz"})]


def test_every_route_refuses_garbage(served: Served) -> None:
    """Goal: no route answers 5xx, or an error that is not the JSON error body, to a
    malformed request. Method: for every route the router lists, with its method and with
    PUT, send each path parameter as a broken percent-encoding, a superscript digit, a
    300-character name and an existing value, with a few bad query strings and bodies."""
    for route in served.routes:
        for segment_of in (lambda n: "%FF%00", lambda n: quote("²"), lambda n: "a" * 300,
                           lambda n: quote(served.values[n][-1], safe="")):
            path = route.template
            for name in route.params:
                path = path.replace("{" + name + "}", segment_of(name))
            for method in (route.method, "PUT"):
                for query, content, extra in SWEEP:
                    run(served, Request(method, route.template, path, query, dict(extra),
                                        content))


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fuzz_every_route(served: Served, data: st.DataObject) -> None:
    """Goal: whatever a client sends to any route the node serves — a random path
    parameter, query string, headers, body (invalid JSON, JSON of the wrong type, the right
    keys with values of the wrong type, huge numbers, deep nesting, long strings, msgpack
    junk, signed transactions with altered payloads), a signed read or none — the answer is
    below 500, an error is the JSON error body, nothing is logged as an error, and a request
    without a valid signature changes nothing. Method: draw requests for routes
    enumerated from the node's router; check each answer and the node's head and pool."""
    req = data.draw(requests(served), label="request")
    answer = run(served, req)
    event(f"{req.method} {req.route} -> {answer.status}")  # --hypothesis-show-statistics



@settings(max_examples=max(EXAMPLES // 5, 1), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_fuzz_signed_transactions(served: Served, data: st.DataObject) -> None:
    """Goal: a transaction that passes the envelope checks — this chain, in date, signed by
    its sender — with any payload is refused with a reason or executed: admission answers
    4xx or 2xx, and no handler fails with an exception (the log stays free of errors).
    Method: POST /v1/tx committed payloads of every type with up to three things changed
    at any depth, signed anew by the key that sent the original; wait for each block."""
    recipe = data.draw(tx_recipe(served), label="transaction")
    recipe.update(chain=True, when="ok", bad_sig=False)
    answer = run(served, Request("POST", "/v1/tx", "/v1/tx", "wait=commit", {}, tx=recipe))
    event(f"{recipe['type']} -> {answer.status}")
