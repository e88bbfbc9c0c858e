"""Every SDK operation, written once for both transports as a generator of calls.

Theory of operation
-------------------
An operation is a generator: it yields a :class:`client.core.Call`, receives
the decoded reply (or has the :class:`~client.core.NodeError` thrown into it,
so it may handle a 404), yields the next call if it needs one, and returns
the typed result. It does no IO and never sleeps, so the synchronous
:class:`client.sdk.Client` and the asynchronous :class:`client.aio.AsyncClient`
only differ in the few lines that drive it (:func:`drive_sync` here, and its
``async`` twin in :mod:`client.aio`); a multi-step operation such as issuing a
certificate (look up the issuer, its organisation and the type, sign, submit)
is the same code for both.

State shared by the operations of one client — the key, the cached chain id,
the clock and the nonce source — lives in :class:`Operations`, the base class
of both clients. Local verification (:mod:`client.offline`) runs inside the
generator after the proof material has arrived, so a verdict never rests on
what the node says about itself.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any, TypeVar

from certs.document import Document, DocumentError, parse_document
from certs.handlers import ISSUE_TX, REINSTATE_TX, REVOKE_TX, SUSPEND_TX
from certs.ids import parse_cert_id
from certs.issuing import Issuer, cert_type_from_view, issue_payload, new_document
from certs.records import cst_date
from certs.verify import Verdict
from client.core import BadReply, Call, NodeError, TxFailed, build_call
from client.offline import GenesisLike, as_of_ms, trust_root, verify_bundle
from client.offline import verify_evidence as offline_verify_evidence
from client.results import (
    Certificate,
    EvidenceVerdict,
    Fund,
    FundBalance,
    FundTrail,
    IssuedCertificate,
    NodeStatus,
    TxReceipt,
    parse,
    parse_trail,
    parse_verdict,
)
from fiscal.model import check_flow_id, check_tag
from ledger.codec import Value, decode_value, encode, from_value
from ledger.crypto import PrivateKey, get_suite
from ledger.errors import DecodeError
from ledger.evidence import TX_TYPE as ANCHOR_TX
from ledger.proofs import EvidenceProof
from ledger.reads import HEADER, make_read
from ledger.tx import Transaction, make_tx

T = TypeVar("T")
Op = Generator[Call, Any, T]


def drive_sync(op: Op[T], send: Callable[[Call], Any]) -> T:
    """Run ``op`` to completion, sending each call with ``send`` (which raises NodeError
    for a refusal; the error is thrown into the operation)."""
    try:
        call = next(op)
        while True:
            try:
                reply = send(call)
            except NodeError as exc:
                call = op.throw(exc)
            else:
                call = op.send(reply)
    except StopIteration as stop:
        result: T = stop.value
        return result


def _now_ms() -> int:
    return int(time.time() * 1000)


class Operations:
    """State and operations shared by :class:`~client.sdk.Client` and
    :class:`~client.aio.AsyncClient` (see the module docstring)."""

    def __init__(self, key: PrivateKey | None, clock: Callable[[], int] | None = None) -> None:
        self.key = key
        self.clock = clock or _now_ms
        self._chain_id: str | None = None

    def need_key(self) -> PrivateKey:
        if self.key is None:
            raise ValueError("this needs a key: Client(..., key=load_private_key_file(...))")
        return self.key

    # -- generic -------------------------------------------------------------------------------

    def op_status(self) -> Op[dict[str, Any]]:
        value: dict[str, Any] = yield build_call("GET", "/v1/status")
        self._chain_id = str(value["chain_id"])
        return value

    def op_node_status(self) -> Op[NodeStatus]:
        return parse(NodeStatus, (yield from self.op_status()), "the node status")

    def op_chain_id(self) -> Op[str]:
        if self._chain_id is None:
            yield from self.op_status()
        assert self._chain_id is not None
        return self._chain_id

    def _read_signer(self, method: str, path: str, query: Mapping[str, str]
                     ) -> Op[Callable[[], dict[str, str]]]:
        """Makes the signed-read header for this request; called again for each retry."""
        chain_id = yield from self.op_chain_id()
        key = self.need_key()

        def sign() -> dict[str, str]:
            read = make_read(key, chain_id, method, path, dict(query), self.clock(),
                             secrets.randbits(63))
            return {HEADER: read.encoded().hex()}

        return sign

    def op_get(self, path: str, query: Mapping[str, object] | None = None,
               signed: bool = False) -> Op[Any]:
        strings = {k: str(v) for k, v in (query or {}).items()}
        sign = (yield from self._read_signer("GET", path, strings)) if signed else None
        return (yield build_call("GET", path, strings, headers=sign() if sign else None,
                                 resign=sign))

    def op_get_bytes(self, path: str, query: Mapping[str, object] | None = None,
                     signed: bool = False) -> Op[bytes]:
        strings = {k: str(v) for k, v in (query or {}).items()}
        sign = (yield from self._read_signer("GET", path, strings)) if signed else None
        data: bytes = yield build_call("GET", path, strings, raw_response=True,
                                       headers=sign() if sign else None, resign=sign)
        return data

    def op_post(self, path: str, body: Any, signed: bool = False) -> Op[Any]:
        sign = (yield from self._read_signer("POST", path, {})) if signed else None
        return (yield build_call("POST", path, body=body, headers=sign() if sign else None,
                                 resign=sign))

    # -- transactions --------------------------------------------------------------------------

    def op_make(self, tx_type: str, payload: dict[str, Value], valid_ms: int = 600_000
                ) -> Op[Transaction]:
        chain_id = yield from self.op_chain_id()
        return make_tx(self.need_key(), chain_id, tx_type, payload, secrets.randbits(63),
                       self.clock() + valid_ms)

    def op_submit_tx(self, tx: Transaction, wait: bool = True) -> Op[dict[str, Any]]:
        call = build_call("POST", "/v1/tx", {"wait": "commit"} if wait else None,
                          raw=tx.encoded())
        try:
            value: dict[str, Any] = yield call
        except NodeError as exc:
            # A retry after a lost reply: the first attempt got the transaction in.
            if exc.status != 409 or exc.code != "duplicate":
                raise
            if self.key is not None:
                suite = self.key.suite
            else:
                suite = get_suite(str((yield from self.op_status())["suite"]))
            # Signed when we can: a private transaction (a fund flow) is shown whole only
            # to its organisation's officers and auditors (the node ignores the signed
            # read for any other transaction).
            value = yield from self.op_get(f"/v1/tx/{tx.tx_id(suite).hex()}",
                                           signed=self.key is not None)
        return value

    def op_submit(self, tx_type: str, payload: dict[str, Value], wait: bool = True
                  ) -> Op[dict[str, Any]]:
        tx = yield from self.op_make(tx_type, payload)
        return (yield from self.op_submit_tx(tx, wait))

    def op_transact(self, tx_type: str, payload: dict[str, Value], wait: bool = True,
                    check: bool = False) -> Op[TxReceipt]:
        value = yield from self.op_submit(tx_type, payload, wait)
        receipt = parse(TxReceipt, value, "a submitted transaction")
        if check and not receipt.ok:
            raise TxFailed(receipt)
        return receipt

    def op_transaction(self, tx_id: bytes | str) -> Op[TxReceipt]:
        text = tx_id.hex() if isinstance(tx_id, bytes) else tx_id
        return parse(TxReceipt, (yield build_call("GET", f"/v1/tx/{text}")), "a transaction")

    # -- certificates --------------------------------------------------------------------------

    def op_certificate(self, cert_id: str) -> Op[Certificate]:
        canonical = str(parse_cert_id(cert_id))
        value = yield build_call("GET", f"/v1/certs/{canonical}")
        return parse(Certificate, value, f"certificate {canonical}")

    def op_certificate_bundle(self, cert_id: str, agency: str | None = None) -> Op[bytes]:
        query = {"agency": agency} if agency else None
        return (yield from self.op_get_bytes(f"/v1/certs/{parse_cert_id(cert_id)}/proof",
                                             query))

    def op_verify_certificate(self, genesis: GenesisLike, document: Any = None,
                              cert_id: str | None = None, agency: str | None = None,
                              as_of: int | str | None = None) -> Op[Verdict]:
        root = trust_root(genesis)
        target = cert_id
        if target is None and document is not None:
            try:
                doc = document if isinstance(document, Document) else parse_document(document)
                target = doc.cert_id
            except DocumentError:
                target = None  # the verdict's document line says what is wrong
        bundle: bytes | None = None
        if target is not None:
            try:
                bundle = yield from self.op_certificate_bundle(target, agency)
            except NodeError as exc:
                if exc.status not in (400, 404):
                    raise
                bundle = None  # not on the ledger (or not an identifier): the verdict says so
        return verify_bundle(root, bundle, document=document, cert_id=cert_id, agency=agency,
                             as_of=as_of)

    def op_node_verdict(self, document: Any = None, cert_id: str | None = None,
                        agency: str | None = None, as_of: int | str | None = None
                        ) -> Op[Verdict]:
        body: dict[str, Any] = {"agency": agency, "at": as_of_ms(as_of)}
        if isinstance(document, Document):
            body["document"] = document.to_json_value()
        elif document is not None:
            body["document"] = (json.loads(document) if isinstance(document, (str, bytes))
                                else document)
        if cert_id is not None:
            body["id"] = cert_id
        return parse_verdict((yield build_call("POST", "/v1/certs/verify", body=body)))

    def op_issuer(self) -> Op[Issuer]:
        key = self.need_key()
        account = yield build_call("GET", f"/v1/accounts/{key.public_key().raw.hex()}")
        if not account.get("org"):
            raise ValueError("this key's account belongs to no organisation, so it cannot "
                             "issue certificates")
        org = yield build_call("GET", f"/v1/orgs/{account['org']}")
        return Issuer(uscc=str(org["uscc"]), name=str(org["name"]),
                      area_code=str(org["region"]))

    def op_issue_certificate(self, type_code: str, *, holder_name: str, holder_code: str,
                             holder_code_type: str, valid_from: str, valid_until: str,
                             extra: dict[str, str], serial: str | None = None,
                             issue_date: str | None = None, number: str | None = None,
                             consortium_key: bytes | None = None) -> Op[IssuedCertificate]:
        key = self.need_key()
        view = yield build_call("GET", f"/v1/certs/types/{type_code}")
        cert_type = cert_type_from_view(view)
        issuer = yield from self.op_issuer()
        today = cst_date(self.clock()).isoformat()
        doc = new_document(
            key, cert_type, issuer,
            serial=serial or f"{today.replace('-', '')}{secrets.token_hex(4).upper()}",
            holder_name=holder_name, holder_code=holder_code,
            holder_code_type=holder_code_type, valid_from=valid_from,
            valid_until=valid_until, issue_date=issue_date or today, extra=extra,
            number=number)
        payload = issue_payload(key.suite, doc, consortium_key)
        receipt = yield from self.op_transact(ISSUE_TX, payload, check=True)
        return IssuedCertificate(doc.cert_id, doc, receipt)

    def op_certificate_event(self, event: str, cert_id: str, reason: str) -> Op[TxReceipt]:
        tx_type = {"suspend": SUSPEND_TX, "reinstate": REINSTATE_TX, "revoke": REVOKE_TX}[event]
        payload: dict[str, Value] = {"id": str(parse_cert_id(cert_id)), "reason": reason}
        return (yield from self.op_transact(tx_type, payload, check=True))

    # -- evidence ------------------------------------------------------------------------------

    def op_anchor(self, digest: bytes, label: str = "") -> Op[TxReceipt]:
        return (yield from self.op_transact(ANCHOR_TX, {"digest": digest, "label": label},
                                            check=True))

    def op_evidence_proof(self, digest: bytes) -> Op[bytes | None]:
        """The canonical msgpack of the digest's EvidenceProof, None if it is not anchored;
        BadReply if the node's reply is not a proof."""
        try:
            data: bytes = yield build_call("GET", f"/v1/evidence/{digest.hex()}",
                                           raw_response=True)
        except NodeError as exc:
            if exc.status == 404:
                return None
            raise
        try:
            value = decode_value(data)
            if not isinstance(value, dict):
                raise DecodeError("expected a map")
            return encode(from_value(EvidenceProof, value.get("proof")))
        except DecodeError as exc:
            raise BadReply(200, f"the evidence proof does not decode: {exc}") from None

    def op_verify_evidence(self, genesis: GenesisLike, digest: bytes) -> Op[EvidenceVerdict]:
        root = trust_root(genesis)
        try:
            proof = yield from self.op_evidence_proof(digest)
        except BadReply as exc:  # whatever the node sends, the verdict is reached here
            return EvidenceVerdict(False, digest, exc.detail)
        return offline_verify_evidence(root, proof, digest)

    # -- fiscal --------------------------------------------------------------------------------

    def op_funds(self, limit: int = 50) -> Op[list[Fund]]:
        value = yield build_call("GET", "/v1/funds", {"limit": limit})
        return [parse(Fund, f, "a fund") for f in value["funds"]]

    def op_fund(self, tag: str) -> Op[Fund]:
        value = yield build_call("GET", f"/v1/funds/{check_tag(tag)}")
        return parse(Fund, value, f"fund {tag}")

    def op_fund_balance(self, tag: str) -> Op[FundBalance]:
        value = yield build_call("GET", f"/v1/funds/{check_tag(tag)}/balance")
        return parse(FundBalance, value, f"the balance sheet of {tag}")

    def op_fund_trail(self, tag: str, direction: str = "forward",
                      payment_id: bytes | str | None = None) -> Op[FundTrail]:
        if direction not in ("forward", "backward"):
            raise ValueError("direction must be 'forward' or 'backward'")
        if (direction == "backward") != (payment_id is not None):
            raise ValueError("a backward trail starts at one payment: give payment_id "
                             "(and only then)")
        query: dict[str, str] = {}
        if payment_id is not None:
            query["backward"] = (payment_id.hex() if isinstance(payment_id, bytes)
                                 else check_flow_id(payment_id))
        value = yield from self.op_get(f"/v1/funds/{check_tag(tag)}/trail", query,
                                       signed=True)
        return parse_trail(value, tag, direction)
