"""``evidence.anchor`` (存证): anchor the digest of any document on the ledger.

Any registered account (a key with an ``acl/key/...`` record) may anchor a
digest once, with a short label. The record lives in the authenticated state
at ``evidence/<digest bytes>`` as canonical msgpack::

    {"digest", "label", "sender", "org", "height", "time", "tx_id"}

so that anyone holding the document can later prove, from the genesis file
alone, that this exact digest was on the ledger at that block and who put it
there (see :mod:`ledger.proofs`). Anchoring the same digest again is a failed
transaction naming the height of the first anchor.
"""

from __future__ import annotations

from ledger import acl
from ledger.codec import Value, decode_value, encode_value
from ledger.errors import TxRejected
from ledger.execution import ExecContext, Registry, StateGet
from ledger.tx import Transaction

TX_TYPE = "evidence.anchor"
PREFIX = b"evidence/"
DIGEST_MIN, DIGEST_MAX = 16, 64
LABEL_MAX = 200


def evidence_key(digest: bytes) -> bytes:
    return PREFIX + digest


def register(registry: Registry) -> None:
    registry.register(TX_TYPE, anchor, precheck=_registered_sender,
                      payload_check=payload_problem)


def _registered_sender(state_get: StateGet, tx: Transaction) -> str | None:
    if acl.get_account(state_get, tx.sender) is None:
        return "sender is not a registered account"
    return None


def payload_problem(payload: dict[str, Value]) -> str | None:
    """What :func:`anchor` refuses in ``payload`` whatever the state (admission's 400)."""
    try:
        _digest_and_label(payload)
    except TxRejected as exc:
        return str(exc)
    return None


def _digest_and_label(payload: dict[str, Value]) -> tuple[bytes, str]:
    digest, label = payload.get("digest"), payload.get("label", "")
    unknown = sorted(set(payload) - {"digest", "label"})
    if unknown:
        raise TxRejected(f"unknown payload field(s): {', '.join(unknown)}")
    if not isinstance(digest, bytes) or not DIGEST_MIN <= len(digest) <= DIGEST_MAX:
        raise TxRejected(f"payload.digest must be {DIGEST_MIN}..{DIGEST_MAX} bytes")
    if not isinstance(label, str) or len(label) > LABEL_MAX:
        raise TxRejected(f"payload.label must be a string of at most {LABEL_MAX} characters")
    if any(ord(c) < 0x20 for c in label):
        raise TxRejected("payload.label must not contain control characters")
    return digest, label


def anchor(ctx: ExecContext) -> None:
    digest, label = _digest_and_label(ctx.tx.payload)
    account = acl.get_account(ctx.state.get, ctx.sender)
    if account is None:
        raise TxRejected("sender is not a registered account")
    key = evidence_key(digest)
    existing = ctx.state.get(key)
    if existing is not None:
        first = decode_value(existing)
        height = first.get("height") if isinstance(first, dict) else None
        raise TxRejected(f"digest already anchored at height {height!r}")
    ctx.state.put(key, encode_value({
        "digest": digest,
        "label": label,
        "sender": ctx.sender,
        "org": account.org,
        "height": ctx.height,
        "time": ctx.time_ms,
        "tx_id": ctx.tx_id,
    }))
    ctx.data = {"key": key}
