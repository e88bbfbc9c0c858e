"""Committee governance: proposals and votes, and the helpers proposal kinds use.

Theory of operation
-------------------
The consortium changes only by committee decision recorded on the ledger.
A committee member sends ``gov.propose`` ``{kind, params, ttl_ms}``; the kind
(registered by the application that owns the state it changes — the ledger
for validators, committee, roles, organisations and configuration, see
:mod:`ledger.gov_kinds`; ``certs`` for certificate types, issuers and
recognition agreements; ``fiscal`` for red-flag thresholds) checks and
normalises the parameters. The proposal gets the next number and the
proposer's approval. Members then send ``gov.vote`` ``{proposal_id,
approve}``. In the block where approvals reach two thirds of the committee
(``3 * approvals >= 2 * members``, i.e. ceil(2n/3) votes) the decision is
applied, in that same block and atomically with the deciding vote, by the
kind's ``apply``; if it can no longer be applied (say, the key was rotated
meanwhile) the proposal is marked failed with the reason and nothing of it
is written. Once enough members reject that two thirds can no longer be
reached it is rejected. Only votes of the *current* members count, so a
member removed (or a key rotated) after voting no longer counts.

Expiry: a proposal's ``expires_at`` is the last block time at which votes
count (creation block time + ``ttl_ms``). A vote after it is a failed
transaction; the stored status stays ``open`` (a failed transaction writes
nothing), and readers show it as ``expired`` (:func:`display_status`).

Every failure — a non-member proposing or voting, a double vote, a vote on a
closed or expired proposal, an unknown kind, unknown payload fields or bad
parameters — is a failed transaction whose result says why. Admission
refuses a non-member's ``gov.*`` transaction early with 403.

State (canonical msgpack values):

- ``gov/committee``: sorted list of member keys (see :mod:`ledger.acl`);
- ``gov/next``: the next proposal number;
- ``gov/proposal/<number, 8 bytes big-endian>``: ``{"id", "kind", "params",
  "proposer", "created_height", "expires_at", "votes": {key hex: bool},
  "status": open|passed|rejected|failed, "closed_height", "reason",
  "outcome"}`` — ``outcome`` is what applying reported (e.g. the height at which
  a validator-set change takes effect), ``{}`` until then.

On-chain configuration (``sys/config``) is changed by the ``set_config``
kind; the ledger's settings have bounds (:data:`LEDGER_SETTINGS`), and
applications add theirs with :func:`register_config_key`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from ledger import acl
from ledger.codec import Value, decode_value, encode_value
from ledger.crypto import get_suite
from ledger.errors import InputError, TxRejected
from ledger.execution import ExecContext, ProposalKind, Registry, StateGet, StateView

PROPOSE_TX = "gov.propose"
VOTE_TX = "gov.vote"
NEXT_KEY = b"gov/next"
PROPOSAL_PREFIX = b"gov/proposal/"
CONFIG_KEY = b"sys/config"
TTL_MIN_MS = 60_000
TTL_DEFAULT_MS = 7 * 24 * 3600 * 1000
TTL_MAX_MS = 90 * 24 * 3600 * 1000

# The ledger's settings the committee may change, with their bounds. Bounds keep a
# decision from stalling the network: e.g. a PRE-PREPARE must fit in a transport frame.
LEDGER_SETTINGS: dict[str, tuple[int, int]] = {
    "batch_tx_max": (1, 100_000),
    "batch_bytes_max": (64 * 1024, 8 * 1024 * 1024),
    "batch_timeout_ms": (1, 10_000),
    "view_change_timeout_ms": (500, 60_000),
    "block_time_skew_ms": (1_000, 3_600_000),
    "tx_valid_window_ms": (60_000, 30 * 24 * 3600 * 1000),
}
# Changing this would move validator-set activation heights and watermarks under
# running replicas, so it is fixed at genesis.
FROZEN_CONFIG = frozenset({"checkpoint_interval"})

ConfigCheck = Callable[[Value], Value]
# Applications' settings (e.g. red-flag thresholds): name -> check that normalises a
# value or raises TxRejected. Filled at import time by the applications, the same on
# every node.
_APP_SETTINGS: dict[str, ConfigCheck] = {}
# Called when an organisation key is rotated: (state, old key, new key, block height).
RotationHook = Callable[[StateView, bytes, bytes, int], None]
_ROTATION_HOOKS: list[RotationHook] = []


def proposal_key(number: int) -> bytes:
    return PROPOSAL_PREFIX + struct.pack(">Q", number)


def positive_int(value: Value) -> Value:
    """The default check of an application setting: a positive integer."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise TxRejected("must be a positive integer")
    return value


def register_config_key(name: str, check: ConfigCheck = positive_int) -> None:
    """Let the committee change setting ``name`` of ``sys/config`` (an application's)."""
    assert name not in LEDGER_SETTINGS and name not in FROZEN_CONFIG, name
    _APP_SETTINGS[name] = check


def register_rotation_hook(hook: RotationHook) -> None:
    """Move an application's per-key state (e.g. issuer scopes) when a key is rotated."""
    if hook not in _ROTATION_HOOKS:
        _ROTATION_HOOKS.append(hook)


def rotation_hooks() -> list[RotationHook]:
    return list(_ROTATION_HOOKS)


def settable_config() -> dict[str, ConfigCheck | tuple[int, int]]:
    return {**LEDGER_SETTINGS, **_APP_SETTINGS}


def passes(approvals: int, members: int) -> bool:
    """At least two thirds of the committee (ceil(2n/3) of n)."""
    return members > 0 and 3 * approvals >= 2 * members


def needed(members: int) -> int:
    """Approvals a proposal needs: ceil(2n/3)."""
    return -(-2 * members // 3)


def get_proposal(state_get: StateGet, number: int) -> dict[str, Value] | None:
    raw = state_get(proposal_key(number))
    if raw is None:
        return None
    value = decode_value(raw)
    assert isinstance(value, dict)
    return value


def list_proposals(state_get: StateGet, limit: int = 100) -> list[dict[str, Value]]:
    """The most recent proposals, newest first (bounded)."""
    raw = state_get(NEXT_KEY)
    last = _int(decode_value(raw)) - 1 if raw is not None else 0
    out = []
    for number in range(last, max(0, last - limit), -1):
        p = get_proposal(state_get, number)
        if p is not None:
            out.append(p)
    return out


def display_status(proposal: dict[str, Value], time_ms: int) -> str:
    """The status to show at block time ``time_ms``: an open proposal past its expiry is
    ``expired`` (no vote can count any more)."""
    status = str(proposal["status"])
    expires = proposal["expires_at"]
    if status == "open" and isinstance(expires, int) and time_ms > expires:
        return "expired"
    return status


def tally(proposal: dict[str, Value], members: list[bytes]) -> tuple[int, int]:
    """(approvals, rejections) among the current members."""
    votes = proposal["votes"]
    assert isinstance(votes, dict)
    member_hex = {m.hex() for m in members}
    approvals = sum(1 for k, v in votes.items() if k in member_hex and v is True)
    rejections = sum(1 for k, v in votes.items() if k in member_hex and v is False)
    return approvals, rejections


def _int(value: Value) -> int:
    assert isinstance(value, int)
    return value


# -- registration ---------------------------------------------------------------------------


def register(registry: Registry) -> None:
    """The governance transactions, the ledger's proposal kinds and the revocation rule."""
    from ledger.gov_kinds import LEDGER_KINDS  # the kinds use this module's helpers

    registry.register(PROPOSE_TX, propose, precheck=_member_precheck)
    registry.register(VOTE_TX, vote, precheck=_member_precheck)
    for kind in LEDGER_KINDS:
        registry.register_kind(kind)
    registry.add_sender_check(_key_counts)


def _key_counts(state_get: StateGet, sender: bytes, height: int | None) -> str | None:
    """Every transaction: a revoked key (or one not valid yet) signs nothing."""
    account = acl.get_account(state_get, sender)
    return account.key_problem(height) if account is not None else None


def _member_problem(state_get: StateGet, sender: bytes, height: int | None) -> str | None:
    if sender not in acl.committee(state_get):
        return "sender is not a member of the committee"
    return acl.role_problem(state_get, sender, "committee", height)


def _member_precheck(state_get: StateGet, tx: Any) -> str | None:
    return _member_problem(state_get, tx.sender, None)


# -- transactions ---------------------------------------------------------------------------


def _require_member(ctx: ExecContext) -> list[bytes]:
    problem = _member_problem(ctx.state.get, ctx.sender, ctx.height)
    if problem:
        raise TxRejected(problem)
    return acl.committee(ctx.state.get)


def _no_other_fields(payload: dict[str, Value], allowed: set[str]) -> None:
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise TxRejected(f"unknown payload field(s): {', '.join(unknown)}; expected "
                         f"{', '.join(sorted(allowed))}")


def propose(ctx: ExecContext) -> None:
    members = _require_member(ctx)
    payload = ctx.tx.payload
    _no_other_fields(payload, {"kind", "params", "ttl_ms"})
    kind_name, params = payload.get("kind"), payload.get("params", {})
    ttl = payload.get("ttl_ms", TTL_DEFAULT_MS)
    kinds = _kinds(ctx)
    if not isinstance(kind_name, str) or kind_name not in kinds:
        raise TxRejected(f"unknown proposal kind {kind_name!r}; known: {', '.join(sorted(kinds))}")
    if not isinstance(params, dict):
        raise TxRejected("payload.params must be a map")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not TTL_MIN_MS <= ttl <= TTL_MAX_MS:
        raise TxRejected(f"payload.ttl_ms must be an integer from {TTL_MIN_MS} to {TTL_MAX_MS}")
    try:
        normalised = kinds[kind_name].check(ctx.state.get, params)
    except TxRejected as exc:
        raise TxRejected(f"{kind_name}: {exc}") from None
    raw_next = ctx.state.get(NEXT_KEY)
    number = _int(decode_value(raw_next)) if raw_next is not None else 1
    ctx.state.put(NEXT_KEY, encode_value(number + 1))
    proposal: dict[str, Value] = {
        "id": number, "kind": kind_name, "params": normalised, "proposer": ctx.sender,
        "created_height": ctx.height, "expires_at": ctx.time_ms + ttl,
        "votes": {ctx.sender.hex(): True}, "status": "open", "closed_height": None, "reason": "",
        "outcome": {},
    }
    _settle(ctx, proposal, members)
    ctx.data = {"proposal_id": number, "status": proposal["status"],
                "expires_at": proposal["expires_at"], "outcome": proposal["outcome"]}


def vote(ctx: ExecContext) -> None:
    members = _require_member(ctx)
    payload = ctx.tx.payload
    _no_other_fields(payload, {"proposal_id", "approve"})
    number, approve = payload.get("proposal_id"), payload.get("approve")
    if (isinstance(number, bool) or not isinstance(number, int) or number < 1
            or not isinstance(approve, bool)):
        raise TxRejected("payload needs proposal_id (a positive integer) and approve (boolean)")
    proposal = get_proposal(ctx.state.get, number)
    if proposal is None:
        raise TxRejected(f"no proposal {number}")
    if proposal["status"] != "open":
        raise TxRejected(f"proposal {number} is already {proposal['status']!s}")
    expires = _int(proposal["expires_at"])
    if ctx.time_ms > expires:
        raise TxRejected(f"proposal {number} expired at {expires} (block time {ctx.time_ms})")
    votes = proposal["votes"]
    assert isinstance(votes, dict)
    if ctx.sender.hex() in votes:
        raise TxRejected(f"sender already voted on proposal {number}")
    votes[ctx.sender.hex()] = approve
    _settle(ctx, proposal, members)
    approvals, rejections = tally(proposal, members)
    ctx.data = {"proposal_id": number, "status": proposal["status"], "approvals": approvals,
                "rejections": rejections, "needed": needed(len(members)),
                "outcome": proposal.get("outcome", {})}


def _kinds(ctx: ExecContext) -> dict[str, ProposalKind]:
    assert ctx.registry is not None
    return ctx.registry.proposal_kinds


def _settle(ctx: ExecContext, proposal: dict[str, Value], members: list[bytes]) -> None:
    """Count current members' votes; apply, reject or leave open; write the proposal."""
    approvals, rejections = tally(proposal, members)
    if passes(approvals, len(members)):
        kind = _kinds(ctx)[str(proposal["kind"])]
        scratch = StateView(ctx.state.get)
        sub = ExecContext(ctx.suite, ctx.chain_id, ctx.height, ctx.time_ms, ctx.tx, ctx.tx_id,
                          scratch, StateView(ctx.index.get), registry=ctx.registry)
        try:
            params = proposal["params"]
            assert isinstance(params, dict)
            kind.apply(sub, params)
        except TxRejected as exc:
            proposal.update(status="failed", closed_height=ctx.height,
                            reason=f"could not be applied: {exc}")
        else:
            ctx.state.writes.update(scratch.writes)
            ctx.index.writes.update(sub.index.writes)
            proposal.update(status="passed", closed_height=ctx.height, outcome=sub.data)
    elif not passes(len(members) - rejections, len(members)):
        proposal.update(status="rejected", closed_height=ctx.height,
                        reason="too many rejections for two thirds to approve")
    ctx.state.put(proposal_key(_int(proposal["id"])), encode_value(proposal))


# -- parameter helpers for proposal kinds (the applications' too) --------------------------


def key_param(state_get: StateGet, params: dict[str, Value], name: str) -> bytes:
    """A public key of this chain's suite, given as bytes or hex."""
    value = params.get(name)
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value)
        except ValueError:
            raise TxRejected(f"params.{name} must be a public key (bytes or hex)") from None
    if not isinstance(value, bytes):
        raise TxRejected(f"params.{name} must be a public key (bytes or hex)")
    suite = get_suite(suite_name(state_get))
    try:
        suite.public_key(value)
    except InputError as exc:
        raise TxRejected(f"params.{name}: {exc}") from None
    return value


def suite_name(state_get: StateGet) -> str:
    raw = state_get(b"sys/chain")
    assert raw is not None
    chain = decode_value(raw)
    assert isinstance(chain, dict) and isinstance(chain["suite"], str)
    return chain["suite"]


def str_param(params: dict[str, Value], name: str, max_len: int = 200) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise TxRejected(f"params.{name} must be a non-empty string of at most {max_len} chars")
    if any(ord(c) < 0x20 for c in value):
        raise TxRejected(f"params.{name} must not contain control characters")
    return value.strip()


def only_params(params: dict[str, Value], allowed: set[str]) -> None:
    """Refuse parameters a kind does not take (a typo must not be silently ignored)."""
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise TxRejected(f"unknown parameter(s) {', '.join(unknown)}; this kind takes "
                         f"{', '.join(sorted(allowed)) or 'none'}")


def read_config(state_get: StateGet) -> dict[str, Value]:
    raw = state_get(CONFIG_KEY)
    config = decode_value(raw) if raw is not None else {}
    assert isinstance(config, dict)
    return config


# Names kept for callers of the first version of this module.
_key_param, _str_param = key_param, str_param
