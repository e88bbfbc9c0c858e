"""Committee governance: proposals, votes, and the ledger's own decisions.

Theory of operation
-------------------
The consortium changes only by committee decision recorded on the ledger.
A committee member sends ``gov.propose`` with a *kind* and its parameters;
the kind (registered by the application that owns the state it changes —
the ledger for validators, committee, roles, organisations and configuration;
``certs`` for certificate types, issuers and recognition agreements;
``fiscal`` for red-flag thresholds) checks and normalises the parameters.
The proposal gets the next number and the proposer's approval. Members then
send ``gov.vote`` (approve or reject). In the block where approvals reach
two thirds of the committee (``3 * approvals >= 2 * members``, i.e.
ceil(2n/3) votes) the decision is applied, in that same block, by the
kind's ``apply``; if it can no longer be applied (say, the issuer was
removed meanwhile) the proposal is marked failed with the reason and
nothing of it is written. Once enough members reject that two thirds can
no longer be reached it is rejected; after ``expires_at`` (block time) no
vote counts. Only votes of current members count.

Every failure — a non-member proposing or voting, a double vote, a vote on a
closed or expired proposal, an unknown kind or bad parameters — is a failed
transaction whose result says why.

State (canonical msgpack values):

- ``gov/committee``: sorted list of member keys (see :mod:`ledger.acl`);
- ``gov/next``: the next proposal number;
- ``gov/proposal/<number, 8 bytes big-endian>``: ``{"id", "kind", "params",
  "proposer", "created_height", "expires_at", "votes": {key hex: bool},
  "status": open|passed|rejected|failed, "closed_height", "reason"}``.

Validator-set decisions schedule the new set through
:func:`ledger.chain.schedule_validator_change`: it takes effect at the first
height after the next checkpoint, the same on every replica.
"""

from __future__ import annotations

import struct
from typing import Any

from ledger import acl
from ledger.block import Validator, ValidatorSet
from ledger.chain import NEXT_VALIDATORS_KEY, VALIDATORS_KEY, schedule_validator_change
from ledger.codec import Value, decode, decode_value, encode_value
from ledger.crypto import get_suite
from ledger.errors import DecodeError, InputError, TxRejected
from ledger.execution import ExecContext, ProposalKind, Registry, StateGet, StateView
from ledger.genesis import DEFAULT_CONFIG
from ledger.ids import IdentifierError, validate_uscc

PROPOSE_TX = "gov.propose"
VOTE_TX = "gov.vote"
NEXT_KEY = b"gov/next"
PROPOSAL_PREFIX = b"gov/proposal/"
CONFIG_KEY = b"sys/config"
TTL_DEFAULT_MS = 7 * 24 * 3600 * 1000
TTL_MAX_MS = 90 * 24 * 3600 * 1000
# Configuration the committee may change, beyond the ledger's defaults; applications
# add theirs (e.g. red-flag thresholds) with register_config_key.
_EXTRA_CONFIG: set[str] = set()
# Changing these would move validator-set activation heights and watermarks under
# running replicas, so they are fixed at genesis.
FROZEN_CONFIG = {"checkpoint_interval"}


def proposal_key(number: int) -> bytes:
    return PROPOSAL_PREFIX + struct.pack(">Q", number)


def register_config_key(name: str) -> None:
    _EXTRA_CONFIG.add(name)


def passes(approvals: int, members: int) -> bool:
    """At least two thirds of the committee (ceil(2n/3) of n)."""
    return members > 0 and 3 * approvals >= 2 * members


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
    last = int(decode_value(raw)) - 1 if raw is not None else 0  # type: ignore[arg-type]
    out = []
    for number in range(last, max(0, last - limit), -1):
        p = get_proposal(state_get, number)
        if p is not None:
            out.append(p)
    return out


def register(registry: Registry) -> None:
    registry.register(PROPOSE_TX, propose, precheck=_member_precheck)
    registry.register(VOTE_TX, vote, precheck=_member_precheck)
    for kind in LEDGER_KINDS:
        registry.register_kind(kind)
    registry.add_sender_check(_not_revoked)


def _not_revoked(state_get: StateGet, sender: bytes) -> str | None:
    account = acl.get_account(state_get, sender)
    if account is not None and account.revoked_at is not None:
        return f"sender's key was revoked at height {account.revoked_at}"
    return None


def _member_precheck(state_get: StateGet, tx: Any) -> str | None:
    if tx.sender not in acl.committee(state_get):
        return "sender is not a member of the committee"
    return acl.role_problem(state_get, tx.sender, "committee")


def _require_member(ctx: ExecContext) -> list[bytes]:
    members = acl.committee(ctx.state.get)
    if ctx.sender not in members:
        raise TxRejected("sender is not a member of the committee")
    problem = acl.role_problem(ctx.state.get, ctx.sender, "committee")
    if problem:
        raise TxRejected(problem)
    return members


def propose(ctx: ExecContext) -> None:
    members = _require_member(ctx)
    payload = ctx.tx.payload
    kind_name, params, ttl = payload.get("kind"), payload.get("params", {}), payload.get(
        "ttl_ms", TTL_DEFAULT_MS)
    kinds = _kinds(ctx)
    if not isinstance(kind_name, str) or kind_name not in kinds:
        raise TxRejected(f"unknown proposal kind {kind_name!r}; known: {', '.join(sorted(kinds))}")
    if not isinstance(params, dict):
        raise TxRejected("payload.params must be a map")
    if not isinstance(ttl, int) or not 60_000 <= ttl <= TTL_MAX_MS:
        raise TxRejected(f"payload.ttl_ms must be between 60000 and {TTL_MAX_MS}")
    normalised = kinds[kind_name].check(ctx.state.get, params)
    raw_next = ctx.state.get(NEXT_KEY)
    number = int(decode_value(raw_next)) if raw_next is not None else 1  # type: ignore[arg-type]
    ctx.state.put(NEXT_KEY, encode_value(number + 1))
    proposal: dict[str, Value] = {
        "id": number, "kind": kind_name, "params": normalised, "proposer": ctx.sender,
        "created_height": ctx.height, "expires_at": ctx.time_ms + ttl,
        "votes": {ctx.sender.hex(): True}, "status": "open", "closed_height": None, "reason": "",
    }
    _settle(ctx, proposal, members)
    ctx.data = {"proposal_id": number, "status": proposal["status"]}


def vote(ctx: ExecContext) -> None:
    members = _require_member(ctx)
    payload = ctx.tx.payload
    number, approve = payload.get("proposal_id"), payload.get("approve")
    if not isinstance(number, int) or not isinstance(approve, bool):
        raise TxRejected("payload needs proposal_id (int) and approve (bool)")
    proposal = get_proposal(ctx.state.get, number)
    if proposal is None:
        raise TxRejected(f"no proposal {number}")
    if proposal["status"] != "open":
        raise TxRejected(f"proposal {number} is already {proposal['status']!s}")
    expires = proposal["expires_at"]
    assert isinstance(expires, int)
    if ctx.time_ms > expires:
        raise TxRejected(f"proposal {number} expired at {expires}")
    votes = proposal["votes"]
    assert isinstance(votes, dict)
    if ctx.sender.hex() in votes:
        raise TxRejected(f"sender already voted on proposal {number}")
    votes[ctx.sender.hex()] = approve
    _settle(ctx, proposal, members)
    ctx.data = {"proposal_id": number, "status": proposal["status"]}


def _kinds(ctx: ExecContext) -> dict[str, ProposalKind]:
    assert ctx.registry is not None
    return ctx.registry.proposal_kinds


def _settle(ctx: ExecContext, proposal: dict[str, Value], members: list[bytes]) -> None:
    """Count current members' votes; apply, reject or leave open; write the proposal."""
    votes = proposal["votes"]
    assert isinstance(votes, dict)
    member_hex = {m.hex() for m in members}
    approvals = sum(1 for k, v in votes.items() if k in member_hex and v is True)
    rejections = sum(1 for k, v in votes.items() if k in member_hex and v is False)
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
            proposal.update(status="passed", closed_height=ctx.height)
    elif not passes(len(members) - rejections, len(members)):
        proposal.update(status="rejected", closed_height=ctx.height,
                        reason="too many rejections for two thirds to approve")
    number = proposal["id"]
    assert isinstance(number, int)
    ctx.state.put(proposal_key(number), encode_value(proposal))


# -- parameter helpers ----------------------------------------------------------------------


def _key_param(state_get: StateGet, params: dict[str, Value], name: str) -> bytes:
    value = params.get(name)
    if isinstance(value, str):
        try:
            value = bytes.fromhex(value)
        except ValueError:
            raise TxRejected(f"params.{name} must be a public key (bytes or hex)") from None
    if not isinstance(value, bytes):
        raise TxRejected(f"params.{name} must be a public key (bytes or hex)")
    suite = get_suite(_suite_name(state_get))
    try:
        suite.public_key(value)
    except InputError as exc:
        raise TxRejected(f"params.{name}: {exc}") from None
    return value


def _suite_name(state_get: StateGet) -> str:
    raw = state_get(b"sys/chain")
    assert raw is not None
    chain = decode_value(raw)
    assert isinstance(chain, dict) and isinstance(chain["suite"], str)
    return chain["suite"]


def _str_param(params: dict[str, Value], name: str, max_len: int = 200) -> str:
    value = params.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise TxRejected(f"params.{name} must be a non-empty string of at most {max_len} chars")
    return value.strip()


def _current_validators(state_get: StateGet) -> ValidatorSet:
    if state_get(NEXT_VALIDATORS_KEY) is not None:
        raise TxRejected("a validator-set change is already scheduled; wait until it applies")
    raw = state_get(VALIDATORS_KEY)
    assert raw is not None
    try:
        return decode(raw, ValidatorSet)
    except DecodeError as exc:
        raise TxRejected(f"validator set unreadable: {exc}") from None


def _checkpoint_interval(state_get: StateGet) -> int:
    raw = state_get(CONFIG_KEY)
    config = decode_value(raw) if raw is not None else {}
    value = config.get("checkpoint_interval") if isinstance(config, dict) else None
    return value if isinstance(value, int) else int(DEFAULT_CONFIG["checkpoint_interval"])  # type: ignore[arg-type]


def _schedule(ctx: ExecContext, validators: list[Validator]) -> None:
    schedule_validator_change(ctx.state, ValidatorSet(validators), ctx.height,
                              _checkpoint_interval(ctx.state.get))


def _grant(state: StateView, public_key: bytes, role: str, name: str = "", org: str = "") -> None:
    account = acl.get_account(state.get, public_key)
    if account is None:
        if not name:
            raise TxRejected("a new key needs params.name")
        roles = [role]
    else:
        name, org, roles = account.name, account.org, sorted(set(account.roles) | {role})
        if account.revoked_at is not None:
            raise TxRejected("that key was revoked")
    state.put(acl.account_key(public_key), acl.encode_account(name, org, roles))


def _revoke(state: StateView, public_key: bytes, role: str) -> None:
    account = acl.get_account(state.get, public_key)
    if account is None or role not in account.roles:
        raise TxRejected(f"that key does not have the {role} role")
    roles = [r for r in account.roles if r != role]
    state.put(acl.account_key(public_key),
              acl.encode_account(account.name, account.org, roles, account.revoked_at))


def _set_committee(state: StateView, members: list[bytes]) -> None:
    state.put(acl.COMMITTEE_KEY, encode_value(sorted(set(members))))  # type: ignore[arg-type]


# -- the ledger's proposal kinds ----------------------------------------------------------------


def _check_add_validator(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    key = _key_param(state_get, p, "public_key")
    current = _current_validators(state_get)
    if current.index_of(key) is not None:
        raise TxRejected("that key is already a validator")
    address = _str_param(p, "address", 255)
    if ":" not in address:
        raise TxRejected("params.address must be host:port")
    return {"public_key": key, "name": _str_param(p, "name", 64), "address": address}


def _apply_add_validator(ctx: ExecContext, p: dict[str, Value]) -> None:
    current = _current_validators(ctx.state.get)
    key, name, address = p["public_key"], p["name"], p["address"]
    assert isinstance(key, bytes) and isinstance(name, str) and isinstance(address, str)
    if current.index_of(key) is not None:
        raise TxRejected("that key is already a validator")
    _schedule(ctx, [*current.validators, Validator(name, key, address)])
    _grant(ctx.state, key, "validator", name=name)


def _check_remove_validator(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    key = _key_param(state_get, p, "public_key")
    current = _current_validators(state_get)
    if current.index_of(key) is None:
        raise TxRejected("that key is not a validator")
    if current.size <= 1:
        raise TxRejected("the last validator cannot be removed")
    return {"public_key": key}


def _apply_remove_validator(ctx: ExecContext, p: dict[str, Value]) -> None:
    current = _current_validators(ctx.state.get)
    key = p["public_key"]
    if current.index_of(key) is None:  # type: ignore[arg-type]
        raise TxRejected("that key is not a validator")
    _schedule(ctx, [v for v in current.validators if v.public_key != key])
    _revoke(ctx.state, key, "validator")  # type: ignore[arg-type]


def _check_rotate_validator(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    old, new = _key_param(state_get, p, "old_key"), _key_param(state_get, p, "new_key")
    current = _current_validators(state_get)
    if current.index_of(old) is None:
        raise TxRejected("params.old_key is not a validator")
    if current.index_of(new) is not None or acl.get_account(state_get, new) is not None:
        raise TxRejected("params.new_key is already in use")
    return {"old_key": old, "new_key": new}


def _apply_rotate_validator(ctx: ExecContext, p: dict[str, Value]) -> None:
    current = _current_validators(ctx.state.get)
    old, new = p["old_key"], p["new_key"]
    assert isinstance(old, bytes) and isinstance(new, bytes)
    index = current.index_of(old)
    if index is None:
        raise TxRejected("params.old_key is not a validator")
    members = list(current.validators)
    members[index] = Validator(members[index].name, new, members[index].address)
    _schedule(ctx, members)
    account = acl.get_account(ctx.state.get, old)
    name = account.name if account else members[index].name
    ctx.state.put(acl.account_key(new), acl.encode_account(name, account.org if account else "",
                                                           account.roles if account else
                                                           ["validator"]))
    if account is not None:
        ctx.state.put(acl.account_key(old), acl.encode_account(
            account.name, account.org, account.roles, revoked_at=ctx.height + 1))


def _check_committee_key(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    key = _key_param(state_get, p, "public_key")
    if acl.active_account(state_get, key) is None:
        raise TxRejected("params.public_key must be a registered, unrevoked account")
    return {"public_key": key}


def _apply_add_member(ctx: ExecContext, p: dict[str, Value]) -> None:
    key = p["public_key"]
    assert isinstance(key, bytes)
    members = acl.committee(ctx.state.get)
    if key in members:
        raise TxRejected("already a committee member")
    _grant(ctx.state, key, "committee")
    _set_committee(ctx.state, [*members, key])


def _apply_remove_member(ctx: ExecContext, p: dict[str, Value]) -> None:
    key = p["public_key"]
    assert isinstance(key, bytes)
    members = acl.committee(ctx.state.get)
    if key not in members:
        raise TxRejected("not a committee member")
    if len(members) == 1:
        raise TxRejected("the committee cannot lose its last member")
    _revoke(ctx.state, key, "committee")
    _set_committee(ctx.state, [m for m in members if m != key])


GRANTABLE = ("issuer", "finance", "auditor", "verifier", "enterprise")


def _check_role(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    key = _key_param(state_get, p, "public_key")
    role = p.get("role")
    if role not in GRANTABLE:
        raise TxRejected(f"params.role must be one of {', '.join(GRANTABLE)} (validators and "
                         "committee members have their own proposal kinds)")
    out: dict[str, Value] = {"public_key": key, "role": role}
    if acl.get_account(state_get, key) is None:
        out["name"] = _str_param(p, "name", 200)
        org = p.get("org", "")
        if not isinstance(org, str):
            raise TxRejected("params.org must be a USCC string")
        if org and acl.get_org(state_get, org) is None:
            raise TxRejected(f"no organisation with USCC {org}")
        out["org"] = org
    return out


def _apply_grant(ctx: ExecContext, p: dict[str, Value]) -> None:
    key, role = p["public_key"], p["role"]
    assert isinstance(key, bytes) and isinstance(role, str)
    name, org = p.get("name", ""), p.get("org", "")
    _grant(ctx.state, key, role, str(name or ""), str(org or ""))
    if org:
        _add_org_key(ctx.state, str(org), key)


def _apply_revoke(ctx: ExecContext, p: dict[str, Value]) -> None:
    key, role = p["public_key"], p["role"]
    assert isinstance(key, bytes) and isinstance(role, str)
    _revoke(ctx.state, key, role)


def _config_value_ok(name: str, value: Value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_config(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    changes = p.get("changes")
    if not isinstance(changes, dict) or not changes:
        raise TxRejected("params.changes must be a non-empty map of setting -> value")
    allowed = (set(DEFAULT_CONFIG) | _EXTRA_CONFIG) - FROZEN_CONFIG
    for name, value in changes.items():
        if name in FROZEN_CONFIG:
            raise TxRejected(f"{name} is fixed at genesis")
        if name not in allowed:
            raise TxRejected(f"unknown setting {name!r}; settable: {', '.join(sorted(allowed))}")
        if not _config_value_ok(name, value):
            raise TxRejected(f"setting {name} must be a positive integer")
    return {"changes": changes}


def _apply_config(ctx: ExecContext, p: dict[str, Value]) -> None:
    raw = ctx.state.get(CONFIG_KEY)
    config = decode_value(raw) if raw is not None else {}
    assert isinstance(config, dict)
    changes = p["changes"]
    assert isinstance(changes, dict)
    config.update(changes)
    ctx.state.put(CONFIG_KEY, encode_value(config))


def _check_org(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    try:
        uscc = validate_uscc(str(p.get("uscc", "")))
    except IdentifierError as exc:
        raise TxRejected(str(exc)) from None
    if acl.get_org(state_get, uscc) is not None:
        raise TxRejected(f"organisation {uscc} is already registered")
    kind = p.get("kind")
    if kind not in acl.ORG_KINDS:
        raise TxRejected(f"params.kind must be one of {', '.join(acl.ORG_KINDS)}")
    region = p.get("region")
    if not isinstance(region, str) or len(region) != 6 or not region.isdigit():
        raise TxRejected("params.region must be a 6-digit administrative division code")
    keys_in = p.get("keys", [])
    if not isinstance(keys_in, list):
        raise TxRejected("params.keys must be a list of public keys")
    keys = [_key_param(state_get, {"k": k}, "k") for k in keys_in]
    for k in keys:
        if acl.get_account(state_get, k) is not None:
            raise TxRejected("a key in params.keys already belongs to an account")
    return {"uscc": uscc, "name": _str_param(p, "name"), "kind": kind, "region": region,
            "keys": keys}  # type: ignore[dict-item]


def _apply_org(ctx: ExecContext, p: dict[str, Value]) -> None:
    uscc, name, kind, region, keys = (p["uscc"], p["name"], p["kind"], p["region"], p["keys"])
    assert isinstance(uscc, str) and isinstance(name, str) and isinstance(keys, list)
    if acl.get_org(ctx.state.get, uscc) is not None:
        raise TxRejected(f"organisation {uscc} is already registered")
    ctx.state.put(acl.org_key(uscc), acl.encode_org(name, uscc, str(kind), str(region),
                                                    [k for k in keys if isinstance(k, bytes)]))
    roles = ["enterprise"] if kind == "enterprise" else []
    for k in keys:
        assert isinstance(k, bytes)
        ctx.state.put(acl.account_key(k), acl.encode_account(name, uscc, roles))


def _add_org_key(state: StateView, uscc: str, key: bytes) -> None:
    org = acl.get_org(state.get, uscc)
    if org is None:
        raise TxRejected(f"no organisation with USCC {uscc}")
    state.put(acl.org_key(uscc), acl.encode_org(org.name, uscc, org.kind, org.region,
                                                [*org.keys, key]))


def _check_rotate_org_key(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    old, new = _key_param(state_get, p, "old_key"), _key_param(state_get, p, "new_key")
    account = acl.active_account(state_get, old)
    if account is None:
        raise TxRejected("params.old_key is not an active account")
    if acl.get_account(state_get, new) is not None:
        raise TxRejected("params.new_key already belongs to an account")
    if "validator" in account.roles:
        raise TxRejected("validator keys rotate with rotate_validator_key")
    return {"old_key": old, "new_key": new}


def _apply_rotate_org_key(ctx: ExecContext, p: dict[str, Value]) -> None:
    old, new = p["old_key"], p["new_key"]
    assert isinstance(old, bytes) and isinstance(new, bytes)
    account = acl.active_account(ctx.state.get, old)
    if account is None:
        raise TxRejected("params.old_key is no longer active")
    # The old key signs nothing from the next block on; the new one takes over its roles.
    ctx.state.put(acl.account_key(old), acl.encode_account(
        account.name, account.org, account.roles, revoked_at=ctx.height + 1))
    ctx.state.put(acl.account_key(new), acl.encode_account(account.name, account.org,
                                                           account.roles))
    members = acl.committee(ctx.state.get)
    if old in members:
        _set_committee(ctx.state, [m for m in members if m != old] + [new])
    if account.org:
        org = acl.get_org(ctx.state.get, account.org)
        if org is not None:
            keys = [k for k in org.keys if k != old] + [new]
            ctx.state.put(acl.org_key(org.uscc), acl.encode_org(org.name, org.uscc, org.kind,
                                                                org.region, keys))


LEDGER_KINDS = (
    ProposalKind("add_validator", "add a validator node (name, public_key, address)",
                 _check_add_validator, _apply_add_validator),
    ProposalKind("remove_validator", "remove a validator node (public_key)",
                 _check_remove_validator, _apply_remove_validator),
    ProposalKind("rotate_validator_key", "replace a validator's key (old_key, new_key)",
                 _check_rotate_validator, _apply_rotate_validator),
    ProposalKind("add_committee_member", "add a committee member (public_key)",
                 _check_committee_key, _apply_add_member),
    ProposalKind("remove_committee_member", "remove a committee member (public_key)",
                 _check_committee_key, _apply_remove_member),
    ProposalKind("grant_role", "grant a role to a key (public_key, role[, name, org])",
                 _check_role, _apply_grant),
    ProposalKind("revoke_role", "revoke a role from a key (public_key, role)",
                 _check_role, _apply_revoke),
    ProposalKind("set_config", "change on-chain settings (changes: {name: value})",
                 _check_config, _apply_config),
    ProposalKind("register_org", "register an organisation (uscc, name, kind, region, keys)",
                 _check_org, _apply_org),
    ProposalKind("rotate_org_key", "replace an organisation key (old_key, new_key)",
                 _check_rotate_org_key, _apply_rotate_org_key),
)
