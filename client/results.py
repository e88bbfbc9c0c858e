"""Typed results of the SDK's high-level methods: frozen dataclasses parsed from node replies.

Each class mirrors one reply of the node's HTTP API field by field (bytes
arrive as hex in JSON and are bytes here; amounts are integers in fen, 分).
:func:`parse` fills a class from a reply through :func:`ledger.codec.from_value`
— so types are checked exactly as the ledger checks its own records — after
dropping fields the class does not declare, so that a newer node adding a
field does not break an older client. A reply of the wrong shape raises
:class:`client.core.BadReply`. The certificate verdict is
:class:`certs.verify.Verdict` itself, the one type every verifier returns.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from certs.verify import Check, Verdict
from client.core import BadReply
from ledger.codec import from_value
from ledger.errors import DecodeError

T = TypeVar("T")


def parse(cls: type[T], value: object, what: str = "") -> T:
    """``value`` (a JSON reply) as ``cls``; BadReply if it does not fit."""
    try:
        return from_value(cls, _known(cls, value), hex_bytes=True)
    except DecodeError as exc:
        raise BadReply(200, f"unexpected reply{' for ' + what if what else ''}: {exc}") from None


def _known(tp: Any, value: object) -> object:
    """``value`` with unknown fields of dataclass maps dropped and JSON names renamed."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(tp) if a is not type(None)]
        return _known(rest[0], value) if len(rest) == 1 and value is not None else value
    if origin in (list, tuple) and isinstance(value, list):
        args = typing.get_args(tp)
        return [_known(args[0], v) for v in value] if args else value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type) and isinstance(value, dict):
        renames: dict[str, str] = getattr(tp, "JSON_NAMES", {})
        hints = typing.get_type_hints(tp)
        out = {}
        for key, item in value.items():
            name = renames.get(key, key)
            if name in hints and name != "JSON_NAMES":
                out[name] = _known(hints[name], item)
        for f in dataclasses.fields(tp):  # absent optional fields take their defaults
            if f.name not in out and f.default is not dataclasses.MISSING:
                out[f.name] = list(f.default) if isinstance(f.default, tuple) else f.default
        return out
    return value


# -- node and transactions ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """``GET /v1/status``: one node's view of the network."""

    node: str
    chain_id: str
    suite: str
    height: int
    head_hash: bytes
    head_time: int
    view: int
    in_view_change: bool
    primary: str
    is_validator: bool
    validators: tuple[str, ...]
    peers: int
    peers_connected: tuple[str, ...]
    mempool: int
    stable_checkpoint: int
    view_changes: int
    time: int
    version: str = ""  # the node's govledger release ("" from a node too old to say)


@dataclass(frozen=True, slots=True)
class TxResult:
    """What executing a transaction did: ``ok``, an error ``code`` and ``reason``, and
    the handler's ``data`` (e.g. ``child_tag`` of an allocation)."""

    tx_id: bytes
    ok: bool
    code: str
    reason: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TxReceipt:
    """The answer to a submitted transaction (``POST /v1/tx``) or to ``GET /v1/tx/{id}``.

    ``status`` is ``committed`` (then ``height``, ``index`` and ``result`` are set) or
    ``pending``. Example::

        receipt = client.transact("evidence.anchor", {"digest": d, "label": "合同"})
        if receipt.ok:
            print("anchored at height", receipt.height)
    """

    tx_id: bytes
    status: str
    height: int | None = None
    index: int | None = None
    result: TxResult | None = None
    detail: str = ""

    @property
    def committed(self) -> bool:
        return self.status == "committed"

    @property
    def ok(self) -> bool:
        """Committed, and executed with success."""
        return self.committed and self.result is not None and self.result.ok

    @property
    def code(self) -> str:
        return self.result.code if self.result is not None else self.status

    @property
    def reason(self) -> str:
        return self.result.reason if self.result is not None else self.detail

    @property
    def data(self) -> dict[str, Any]:
        return self.result.data if self.result is not None else {}


# -- certificates -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertEvent:
    event: str  # issue | suspend | reinstate | revoke | supersede
    status: str
    height: int
    time: int
    reason: str
    by: bytes  # the key that sent the transaction


@dataclass(frozen=True, slots=True)
class Certificate:
    """``GET /v1/certs/{id}``: the ledger record of one certificate version.

    ``status`` is the effective status now (EXPIRED is computed from the dates);
    ``stored_status`` what the ledger stores. The document itself stays with its
    holder: the ledger has only its ``digest``.
    """

    cert_id: str
    status: str
    stored_status: str
    type: str
    type_name: str
    issuer: str
    issuer_name: str
    version: int
    valid_from: str
    valid_until: str
    holder_code_type: str
    holder: str  # a USCC, or the HMAC (hex) of a citizen ID number
    digest: bytes
    signer: bytes
    issued_height: int
    issued_time: int
    supersedes: str
    superseded_by: str
    history: tuple[CertEvent, ...]
    head_height: int


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A certificate this client signed and anchored: give ``document`` to the holder
    (``document.to_json()``); ``receipt`` is the committed transaction."""

    cert_id: str
    document: Any  # certs.document.Document
    receipt: TxReceipt


def parse_verdict(value: object) -> Verdict:
    """A node's verdict (``POST /v1/certs/verify``) as :class:`certs.verify.Verdict`."""
    if not isinstance(value, dict) or not isinstance(value.get("checks"), list):
        raise BadReply(200, f"unexpected verdict: {value!r:.200}")
    checks = [parse(Check, c, "a verdict line") for c in value["checks"]]
    plain = {k: v for k, v in value.items() if k != "checks"}
    return dataclasses.replace(parse(_VerdictFields, plain, "a verdict").to_verdict(),
                               checks=checks)


@dataclass(frozen=True, slots=True)
class _VerdictFields:
    verdict: str
    cert_id: str
    as_of: int
    status: str
    height: int | None
    agency: str
    agreement: str

    def to_verdict(self) -> Verdict:
        return Verdict(self.verdict, self.cert_id, self.as_of, self.status, self.height,
                       self.agency, self.agreement, [])


@dataclass(frozen=True, slots=True)
class EvidenceVerdict:
    """Whether a digest is anchored on the ledger, judged locally from the genesis file.

    ``valid`` False carries the reason in ``detail`` (e.g. which proof part failed).
    """

    valid: bool
    digest: bytes
    detail: str
    label: str = ""
    org: str = ""
    sender: bytes = b""
    height: int | None = None
    time: int | None = None
    tx_id: bytes = b""


# -- fiscal ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fund:
    """``GET /v1/funds/{tag}``: one node of a fund tree; amounts in fen (分)."""

    tag: str
    root: str
    parent: str | None
    depth: int
    holder: str
    holder_name: str
    region: str
    year: int
    doc_no: str
    function_code: str
    project: str
    project_end: str
    direct: bool
    approved_date: str
    received: int
    allocated: int
    paid: int
    returned_in: int
    returned_out: int
    balance: int
    children: int
    created_height: int
    created_time: int
    last_move_date: str


@dataclass(frozen=True, slots=True)
class BalanceRow:
    """One fund of a balance sheet; ``paid_below`` is what it and the funds below it
    paid out, ``progress_bp`` that as basis points of what it received net of returns."""

    tag: str
    parent: str | None
    depth: int  # below the sheet's top fund
    holder: str
    holder_name: str
    region: str
    received: int
    allocated: int
    paid: int
    returned_in: int
    returned_out: int
    balance: int
    paid_below: int
    progress_bp: int

    @property
    def progress(self) -> str:
        return f"{self.progress_bp // 100}.{self.progress_bp % 100:02d}%"


@dataclass(frozen=True, slots=True)
class FundBalance:
    """``GET /v1/funds/{tag}/balance``: the subtree of ``tag``, parents before children."""

    tag: str
    fund: Fund
    rows: tuple[BalanceRow, ...]
    truncated: bool


@dataclass(frozen=True, slots=True)
class TrailPayee:
    key: str  # U<USCC> or H<hmac hex>
    kind: str | None
    name: str | None
    amount: int
    count: int
    uscc: str | None = None
    hash: bytes | None = None
    id_masked: str | None = None


@dataclass(frozen=True, slots=True)
class TrailEdge:
    """Money moved from ``source`` (a fund tag, or ``budget:<doc no>``) to ``target``
    (a fund tag or a payee key), summed over ``count`` flows of one ``kind``."""

    JSON_NAMES: ClassVar[dict[str, str]] = {"from": "source", "to": "target"}
    source: str
    target: str
    kind: str
    amount: int
    count: int
    flows: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class TrailTotals:
    received: int
    paid_to_payees: int
    payees: int
    funds: int
    flows: int


@dataclass(frozen=True, slots=True)
class TrailStep:
    """A fund above a traced payment, with the flows that fed it."""

    fund: Fund
    inflows: tuple[dict[str, Any], ...]


@dataclass(frozen=True, slots=True)
class FundTrail:
    """``GET /v1/funds/{tag}/trail``: where the money of ``tag`` went (``direction``
    forward: ``fund``, ``totals``), or where one ``payment`` came from (backward:
    ``path``, nearest fund first). ``flows`` are the individual flow records."""

    tag: str
    direction: str  # "forward" | "backward"
    root: str
    funds: tuple[Fund, ...]
    payees: tuple[TrailPayee, ...]
    edges: tuple[TrailEdge, ...]
    flows: tuple[dict[str, Any], ...]
    truncated: bool
    fund: Fund | None = None
    totals: TrailTotals | None = None
    payment: dict[str, Any] | None = None
    path: tuple[TrailStep, ...] = ()


def parse_trail(value: object, tag: str, direction: str) -> FundTrail:
    if not isinstance(value, dict):
        raise BadReply(200, f"unexpected trail: {value!r:.200}")
    return parse(FundTrail, {**value, "tag": tag, "direction": direction}, "a fund trail")
