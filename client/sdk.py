"""Python SDK for a govledger network — the synchronous client (standard-library HTTP).

Theory of operation
-------------------
Three layers, each usable on its own:

1. :mod:`client.core` — requests and replies without IO: a :class:`Call`,
   decoding replies into values or :class:`NodeError`, and the retry plan
   (:class:`Backoff`, failover across node URLs).
2. :mod:`client.ops` — every operation written once as a generator of calls
   (status, transactions, certificates, evidence, fund flows), returning the
   typed results of :mod:`client.results`.
3. Two thin transports that drive them: :class:`Client` here (``urllib``,
   blocking) and :class:`client.aio.AsyncClient` (aiohttp).

Errors never surface as raw HTTP: a node's refusal is a :class:`NodeError`
with the node's ``status``, ``code`` and ``detail``; when no node can be
reached after every retry it is :class:`Unreachable`; a transaction that was
not committed with success, in the high-level methods, is :class:`TxFailed`.

Trust: the ``verify_*`` methods fetch proof material from a node and reach
the verdict here from the genesis file (:mod:`client.offline`), so a lying
node can make a verification fail but never make a forged certificate or
anchor VALID.

Example::

    from client import Client
    from ledger.crypto import load_private_key_file

    key = load_private_key_file("govledger-demo/keys/scjgj.pem")
    c = Client(["http://127.0.0.1:7700", "http://127.0.0.1:7701"], key=key)
    print(c.node_status().height)
    receipt = c.transact("evidence.anchor", {"digest": b"\\x01" * 32, "label": "合同"})
    print(receipt.status, receipt.height, receipt.ok)

The generic methods (:meth:`Client.get`, :meth:`Client.post`,
:meth:`Client.submit`, …) return the node's JSON as plain values, for routes
the typed methods do not cover.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from certs.verify import Verdict
from client.core import (
    Attempts,
    Backoff,
    BadReply,
    Call,
    NodeError,
    SdkError,
    TxFailed,
    Unreachable,
    UrlPool,
    decode_reply,
)
from client.ops import Op, Operations, drive_sync
from client.results import (
    Certificate,
    EvidenceVerdict,
    Fund,
    FundBalance,
    FundTrail,
    IssuedCertificate,
    NodeStatus,
    TxReceipt,
)
from ledger.codec import Value
from ledger.crypto import PrivateKey
from ledger.genesis import Genesis
from ledger.tx import Transaction

__all__ = ["DEFAULT_URL", "Backoff", "BadReply", "Client", "NodeError", "SdkError", "TxFailed",
           "Unreachable", "request", "status", "submit"]

DEFAULT_URL = "http://127.0.0.1:7700"
T = TypeVar("T")
# What "could not talk to this node" looks like from urllib (HTTPError is handled first).
CONNECTION_ERRORS = (OSError, http.client.HTTPException)


def _send_once(url: str, call: Call, timeout: float) -> tuple[int, bytes, str | None]:
    """(status, body, Retry-After) of one request; connection problems propagate as
    CONNECTION_ERRORS."""
    req = urllib.request.Request(url + call.target, data=call.body, method=call.method,
                                 headers=dict(call.headers))
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read(), None
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(), exc.headers.get("Retry-After")


def request(url: str, method: str = "GET", body: Any = None, timeout: float = 40,
            raw: bytes | None = None, headers: dict[str, str] | None = None,
            raw_response: bool = False) -> Any:
    """One HTTP request to one full URL, no retries: JSON in and out (``raw`` sends
    msgpack; ``raw_response`` returns the body's bytes). NodeError for a refusal,
    Unreachable (a ConnectionError) when the node cannot be reached.

    Example: ``request("http://127.0.0.1:7700/v1/status", timeout=5)["height"]``
    """
    all_headers = dict(headers or {})
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if data is not None:
        all_headers["Content-Type"] = ("application/msgpack" if raw is not None
                                       else "application/json")
    call = Call(method, "", all_headers, data, raw_response)
    try:
        code, reply, retry_after = _send_once(url, call, timeout)
    except CONNECTION_ERRORS as exc:
        raise Unreachable(f"{url}: {exc}") from exc
    return decode_reply(call, code, reply, retry_after)


def submit(node_url: str, tx: Transaction, wait: bool = True) -> Any:
    """POST a signed transaction; with ``wait`` the answer comes once it is committed."""
    suffix = "?wait=commit" if wait else ""
    return request(f"{node_url.rstrip('/')}/v1/tx{suffix}", "POST", raw=tx.encoded())


def status(node_url: str) -> Any:
    """``GET /v1/status`` of one node (5 s timeout, no retries)."""
    return request(f"{node_url.rstrip('/')}/v1/status", timeout=5)


class Client(Operations):
    """A synchronous client of one govledger network.

    ``urls`` is one node URL or several (failover: the one that answered last is
    tried first); ``key`` signs transactions and signed reads; ``timeout`` is per
    request in seconds; ``retries`` is how many rounds over all URLs are tried, with
    ``backoff`` pauses between rounds (``sleep`` and ``clock`` are injectable for tests).

    Example::

        c = Client("http://127.0.0.1:7700")
        cert = c.certificate("11100000MB1F000067001…")
        print(cert.status, cert.valid_until)
    """

    def __init__(self, urls: str | Sequence[str] = DEFAULT_URL, key: PrivateKey | None = None,
                 timeout: float = 40, retries: int = 3, *, backoff: Backoff | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], int] | None = None) -> None:
        super().__init__(key, clock)
        self.pool = UrlPool(urls)
        self.timeout, self.retries = timeout, retries
        self.backoff = backoff or Backoff()
        self.sleep = sleep

    @property
    def urls(self) -> list[str]:
        return self.pool.urls

    # -- transport ---------------------------------------------------------------------------

    def _send(self, call: Call) -> Any:
        attempts = Attempts(self.pool, self.retries, self.backoff)
        for n, attempt in enumerate(attempts):
            if attempt.delay_s > 0:
                self.sleep(attempt.delay_s)
            try:
                code, body, retry_after = _send_once(attempt.url, call.for_attempt(n),
                                                     self.timeout)
                value = decode_reply(call, code, body, retry_after)
            except NodeError as exc:
                if not attempts.retryable(exc):
                    raise
                attempts.failed(exc)
            except CONNECTION_ERRORS as exc:
                attempts.failed(exc)
            else:
                attempts.succeeded(attempt)
                return value
        raise attempts.error()

    def _run(self, op: Op[T]) -> T:
        return drive_sync(op, self._send)

    # -- generic (plain JSON values) ---------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """``GET /v1/status`` as a dict (see :meth:`node_status` for the typed form)."""
        return self._run(self.op_status())

    @property
    def chain_id(self) -> str:
        """The network's chain id (asked once, then cached)."""
        return self._run(self.op_chain_id())

    def get(self, path: str, query: dict[str, str] | None = None, signed: bool = False) -> Any:
        """GET ``path``; ``signed`` attaches a signed read (for queries that need a role).

        Example: ``c.get("/v1/alerts", {"limit": "10"}, signed=True)["alerts"]``
        """
        return self._run(self.op_get(path, query, signed))

    def get_bytes(self, path: str, query: dict[str, str] | None = None, signed: bool = False
                  ) -> bytes:
        """GET ``path`` as canonical msgpack (the exact bytes, e.g. a proof bundle);
        ``signed`` attaches a signed read, as for :meth:`get`."""
        return self._run(self.op_get_bytes(path, query, signed))

    def post(self, path: str, body: Any, signed: bool = False) -> Any:
        """POST a JSON body; ``signed`` attaches a signed read naming method and path
        (never the body, so what is in it is not written to the access log)."""
        return self._run(self.op_post(path, body, signed))

    def make(self, tx_type: str, payload: dict[str, Value], valid_ms: int = 600_000
             ) -> Transaction:
        """Build and sign a transaction for this chain."""
        return self._run(self.op_make(tx_type, payload, valid_ms))

    def submit_tx(self, tx: Transaction, wait: bool = True) -> dict[str, Any]:
        """POST a signed transaction; the reply as a dict (see :meth:`transact`)."""
        return self._run(self.op_submit_tx(tx, wait))

    def submit(self, tx_type: str, payload: dict[str, Value], wait: bool = True
               ) -> dict[str, Any]:
        """Sign and submit; with ``wait`` returns once committed (``status``, ``height``,
        ``result``). A failed transaction is reported in ``result`` (``ok`` False)."""
        return self._run(self.op_submit(tx_type, payload, wait))

    # -- typed: node and transactions --------------------------------------------------------

    def node_status(self) -> NodeStatus:
        """The node's status, typed: ``c.node_status().height``."""
        return self._run(self.op_node_status())

    def transact(self, tx_type: str, payload: dict[str, Value], wait: bool = True,
                 check: bool = False) -> TxReceipt:
        """Sign and submit a transaction; its :class:`TxReceipt`. With ``check``, raise
        :class:`TxFailed` unless it was committed with success.

        Example: ``c.transact("certs.revoke", {"id": cid, "reason": "吊销"}).ok``
        """
        return self._run(self.op_transact(tx_type, payload, wait, check))

    def transaction(self, tx_id: bytes | str) -> TxReceipt:
        """``GET /v1/tx/{id}``: a transaction's status and result."""
        return self._run(self.op_transaction(tx_id))

    # -- typed: certificates -----------------------------------------------------------------

    def certificate(self, cert_id: str) -> Certificate:
        """The ledger record of a certificate, with its effective status (NodeError 404
        if it was never issued)."""
        return self._run(self.op_certificate(cert_id))

    def certificate_bundle(self, cert_id: str, agency: str | None = None) -> bytes:
        """The proof bundle (canonical msgpack) for offline verification with
        :func:`client.offline.verify_bundle`; ``agency`` adds its recognition proof."""
        return self._run(self.op_certificate_bundle(cert_id, agency))

    def verify_certificate(self, genesis: Genesis | str | Path, document: Any = None,
                           cert_id: str | None = None, agency: str | None = None,
                           as_of_ms: int | None = None, *, as_of: int | str | None = None
                           ) -> Verdict:
        """Fetch the certificate's proof bundle from a node and judge it here, trusting
        only ``genesis`` (the object or the path of ``genesis.json``).

        ``document``: the holder's document (JSON text, bytes, dict or Document), or give
        only ``cert_id``; ``agency``: the verifying agency's USCC; ``as_of``: ms,
        ``YYYY-MM-DD`` or ISO date-time (``as_of_ms`` is the older spelling), default now.

        Example::

            v = c.verify_certificate("govledger-demo/genesis.json",
                                     document=open("licence.json").read())
            print(v.verdict, [(x.name, x.ok) for x in v.checks])
        """
        return self._run(self.op_verify_certificate(
            genesis, document, cert_id, agency, as_of if as_of is not None else as_of_ms))

    def node_verdict(self, document: Any = None, cert_id: str | None = None,
                     agency: str | None = None, as_of: int | str | None = None) -> Verdict:
        """The *node's* verdict (``POST /v1/certs/verify``) — convenient, but it trusts
        that node; prefer :meth:`verify_certificate`."""
        return self._run(self.op_node_verdict(document, cert_id, agency, as_of))

    def issue_certificate(self, type_code: str, *, holder_name: str, holder_code: str,
                          holder_code_type: str, valid_from: str, valid_until: str,
                          extra: dict[str, str], serial: str | None = None,
                          issue_date: str | None = None, number: str | None = None,
                          consortium_key: bytes | None = None) -> IssuedCertificate:
        """Sign a certificate with this client's issuer key and anchor it; returns once
        committed (:class:`TxFailed` if refused, e.g. an issuer not authorised for the
        type). ``valid_until`` is a date or ``长期``; a natural person's (``111``) holder
        code needs ``consortium_key``.

        Example::

            issued = c.issue_certificate(
                "11100000MB1F000067001", holder_name="福州示例科技有限公司",
                holder_code="91350100MA2Y0001X9", holder_code_type="001",
                valid_from="2026-01-01", valid_until="长期",
                extra={"entity_type": "有限责任公司", "legal_representative": "林示例",
                       "established": "2023-03-15", "address": "福州市鼓楼区示例路1号"})
            Path("licence.json").write_text(issued.document.to_json())
        """
        return self._run(self.op_issue_certificate(
            type_code, holder_name=holder_name, holder_code=holder_code,
            holder_code_type=holder_code_type, valid_from=valid_from, valid_until=valid_until,
            extra=extra, serial=serial, issue_date=issue_date, number=number,
            consortium_key=consortium_key))

    def suspend_certificate(self, cert_id: str, reason: str) -> TxReceipt:
        """Suspend a VALID certificate (issuer key); TxFailed if refused."""
        return self._run(self.op_certificate_event("suspend", cert_id, reason))

    def reinstate_certificate(self, cert_id: str, reason: str) -> TxReceipt:
        """Reinstate a SUSPENDED certificate (issuer key); TxFailed if refused."""
        return self._run(self.op_certificate_event("reinstate", cert_id, reason))

    def revoke_certificate(self, cert_id: str, reason: str) -> TxReceipt:
        """Revoke a certificate for good (issuer key); TxFailed if refused."""
        return self._run(self.op_certificate_event("revoke", cert_id, reason))

    # -- typed: evidence ---------------------------------------------------------------------

    def anchor(self, digest: bytes, label: str = "") -> TxReceipt:
        """Anchor a document digest (存证); TxFailed if refused (e.g. anchored before)."""
        return self._run(self.op_anchor(digest, label))

    def evidence_proof(self, digest: bytes) -> bytes | None:
        """The anchor's proof (canonical msgpack) to keep for offline checks with
        :func:`client.offline.verify_evidence`; None if the digest is not anchored."""
        return self._run(self.op_evidence_proof(digest))

    def verify_evidence(self, genesis: Genesis | str | Path, digest: bytes
                        ) -> EvidenceVerdict:
        """Was ``digest`` anchored? The node's proof, checked here from ``genesis``::

            v = c.verify_evidence("genesis.json", sm3(document_bytes))
            print(v.valid, v.height, v.label, v.detail)
        """
        return self._run(self.op_verify_evidence(genesis, digest))

    # -- typed: fund flows -------------------------------------------------------------------

    def funds(self, limit: int = 50) -> list[Fund]:
        """The most recent appropriations (root funds), newest first."""
        return self._run(self.op_funds(limit))

    def fund(self, tag: str) -> Fund:
        """One fund with its sums (fen) and balance: ``c.fund("FJ2026-ZD-0001").balance``."""
        return self._run(self.op_fund(tag))

    def fund_balance(self, tag: str) -> FundBalance:
        """The balance sheet of ``tag``'s subtree: one :class:`BalanceRow` per fund."""
        return self._run(self.op_fund_balance(tag))

    def fund_trail(self, tag: str, direction: str = "forward",
                   payment_id: bytes | str | None = None) -> FundTrail:
        """Where the money of ``tag`` went (``forward``), or where one payment below it
        came from (``backward`` with ``payment_id``). A signed read: the key needs the
        auditor role, or finance in an organisation holding the fund; it is logged.

        Example::

            trail = Client(url, key=auditor_key).fund_trail("FJ2026-ZD-0001")
            for edge in trail.edges:
                print(edge.source, "→", edge.target, edge.amount / 100, "元")
        """
        return self._run(self.op_fund_trail(tag, direction, payment_id))
