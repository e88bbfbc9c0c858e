"""The ledger's own proposal kinds: validators, committee, roles, configuration, organisations.

Each kind has a ``check`` (at ``gov.propose``: validate and normalise the
parameters against the current state, raise TxRejected with the reason) and
an ``apply`` (in the block where the proposal passes: re-check what may have
changed since, then write). Keys may be given as bytes or hex; they are
stored as bytes.

Validator-set decisions go through :func:`ledger.chain.schedule_validator_change`:
the new set takes effect at the first height after the next checkpoint, the
same on every replica. A decision taken while another change is still
scheduled builds on the scheduled set and supersedes it (both then take
effect together, at the later height), so two decisions in one checkpoint
interval neither fail nor lose one another.

Key rotation (``rotate_validator_key``, ``rotate_org_key``) passing in block
``h``: the old key's account gets ``revoked_at = h + 1``, the new key an
account with the same name, organisation and roles and ``valid_from = h + 1``
(see :mod:`ledger.acl`); committee membership and the organisation's key list
move to the new key, and applications move their per-key state through
rotation hooks (:func:`ledger.governance.register_rotation_hook`). A rotated
validator key keeps voting in consensus until the new set takes effect; then
the operator restarts the node with the new key file (until then the node
counts as one of the f that may be down).
"""

from __future__ import annotations

from ledger import acl
from ledger.block import Validator, ValidatorSet
from ledger.chain import VALIDATORS_KEY, schedule_validator_change, scheduled_validators
from ledger.codec import Value, decode, encode_value
from ledger.errors import TxRejected
from ledger.execution import ExecContext, ProposalKind, StateGet, StateView
from ledger.genesis import DEFAULT_CONFIG
from ledger.governance import (
    CONFIG_KEY,
    FROZEN_CONFIG,
    LEDGER_SETTINGS,
    key_param,
    only_params,
    read_config,
    rotation_hooks,
    settable_config,
    str_param,
)
from ledger.ids import IdentifierError, validate_uscc

GRANTABLE = ("issuer", "finance", "auditor", "verifier", "enterprise")

# -- validators -------------------------------------------------------------------------------


def latest_validators(state_get: StateGet) -> ValidatorSet:
    """The set a new decision builds on: the scheduled one if any, else the current one."""
    scheduled = scheduled_validators(state_get)
    if scheduled is not None:
        return scheduled
    raw = state_get(VALIDATORS_KEY)
    assert raw is not None
    return decode(raw, ValidatorSet)


def _checkpoint_interval(state_get: StateGet) -> int:
    value = read_config(state_get).get("checkpoint_interval")
    default = DEFAULT_CONFIG["checkpoint_interval"]
    assert isinstance(default, int)
    return value if isinstance(value, int) else default


def _schedule(ctx: ExecContext, validators: list[Validator]) -> None:
    height = schedule_validator_change(ctx.state, ValidatorSet(validators), ctx.height,
                                       _checkpoint_interval(ctx.state.get), replace=True)
    ctx.data["validators_effective_height"] = height


def _address(params: dict[str, Value]) -> str:
    address = str_param(params, "address", 255)
    host, _, port = address.rpartition(":")
    port_ok = port.isascii() and port.isdigit() and 0 < int(port) < 65536
    if not host or not port_ok or " " in address:
        raise TxRejected("params.address must be host:port (the node's HTTP and peer address)")
    return address


def _check_add_validator(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    only_params(p, {"public_key", "name", "address"})
    key = key_param(state_get, p, "public_key")
    latest = latest_validators(state_get)
    if latest.index_of(key) is not None:
        raise TxRejected("that key is already a validator (or scheduled to become one)")
    name = str_param(p, "name", 64)
    if any(v.name == name for v in latest.validators):
        raise TxRejected(f"a validator is already named {name!r}")
    account = acl.get_account(state_get, key)
    if account is not None and account.revoked_at is not None:
        raise TxRejected("that key was revoked")
    return {"public_key": key, "name": name, "address": _address(p)}


def _apply_add_validator(ctx: ExecContext, p: dict[str, Value]) -> None:
    normalised = _check_add_validator(ctx.state.get, p)
    key, name, address = normalised["public_key"], normalised["name"], normalised["address"]
    assert isinstance(key, bytes) and isinstance(name, str) and isinstance(address, str)
    latest = latest_validators(ctx.state.get)
    _schedule(ctx, [*latest.validators, Validator(name, key, address)])
    _grant(ctx.state, key, "validator", name=name)


def _check_remove_validator(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    only_params(p, {"public_key"})
    key = key_param(state_get, p, "public_key")
    latest = latest_validators(state_get)
    if latest.index_of(key) is None:
        raise TxRejected("that key is not a validator (or is already being removed)")
    if latest.size <= 1:
        raise TxRejected("the last validator cannot be removed")
    return {"public_key": key}


def _apply_remove_validator(ctx: ExecContext, p: dict[str, Value]) -> None:
    key = _check_remove_validator(ctx.state.get, p)["public_key"]
    latest = latest_validators(ctx.state.get)
    _schedule(ctx, [v for v in latest.validators if v.public_key != key])
    account = acl.get_account(ctx.state.get, key)  # type: ignore[arg-type]
    if account is not None and "validator" in account.roles:
        _revoke(ctx.state, key, "validator")  # type: ignore[arg-type]


def _check_rotate_validator(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    only_params(p, {"old_key", "new_key"})
    old, new = key_param(state_get, p, "old_key"), key_param(state_get, p, "new_key")
    latest = latest_validators(state_get)
    if latest.index_of(old) is None:
        raise TxRejected("params.old_key is not a validator")
    if latest.index_of(new) is not None or acl.get_account(state_get, new) is not None:
        raise TxRejected("params.new_key is already in use")
    return {"old_key": old, "new_key": new}


def _apply_rotate_validator(ctx: ExecContext, p: dict[str, Value]) -> None:
    normalised = _check_rotate_validator(ctx.state.get, p)
    old, new = normalised["old_key"], normalised["new_key"]
    assert isinstance(old, bytes) and isinstance(new, bytes)
    members = list(latest_validators(ctx.state.get).validators)
    index = next(i for i, v in enumerate(members) if v.public_key == old)
    members[index] = Validator(members[index].name, new, members[index].address)
    _schedule(ctx, members)
    account = acl.get_account(ctx.state.get, old)
    if account is None:
        account = acl.AccountRecord(members[index].name, "", ["validator"])
    _move_key(ctx, old, new, account)


# -- accounts, roles, committee ---------------------------------------------------------------


def _grant(state: StateView, public_key: bytes, role: str, name: str = "", org: str = "") -> None:
    account = acl.get_account(state.get, public_key)
    if account is None:
        if not name:
            raise TxRejected("a new key needs params.name")
        roles = [role]
        state.put(acl.account_key(public_key), acl.encode_account(name, org, roles))
        return
    if account.revoked_at is not None:
        raise TxRejected("that key was revoked")
    state.put(acl.account_key(public_key), acl.encode_account(
        account.name, account.org, sorted({*account.roles, role}), None, account.valid_from))


def _revoke(state: StateView, public_key: bytes, role: str) -> None:
    account = acl.get_account(state.get, public_key)
    if account is None or role not in account.roles:
        raise TxRejected(f"that key does not have the {role} role")
    roles = [r for r in account.roles if r != role]
    state.put(acl.account_key(public_key), acl.encode_account(
        account.name, account.org, roles, account.revoked_at, account.valid_from))


def _set_committee(state: StateView, members: list[bytes]) -> None:
    state.put(acl.COMMITTEE_KEY, encode_value(sorted(set(members))))  # type: ignore[arg-type]


def _move_key(ctx: ExecContext, old: bytes, new: bytes, account: acl.AccountRecord) -> None:
    """The rotation itself (see the module docstring)."""
    at = ctx.height + 1
    ctx.state.put(acl.account_key(old), acl.encode_account(
        account.name, account.org, account.roles, revoked_at=at, valid_from=account.valid_from))
    ctx.state.put(acl.account_key(new), acl.encode_account(
        account.name, account.org, account.roles, valid_from=at))
    members = acl.committee(ctx.state.get)
    if old in members:
        _set_committee(ctx.state, [m for m in members if m != old] + [new])
    if account.org:
        org = acl.get_org(ctx.state.get, account.org)
        if org is not None and old in org.keys:
            keys = [k for k in org.keys if k != old] + [new]
            ctx.state.put(acl.org_key(org.uscc), acl.encode_org(org.name, org.uscc, org.kind,
                                                                org.region, keys))
    for hook in rotation_hooks():
        hook(ctx.state, old, new, ctx.height)
    ctx.data["key_valid_from"] = at


def _check_add_member(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    only_params(p, {"public_key"})
    key = key_param(state_get, p, "public_key")
    if acl.active_account(state_get, key) is None:
        raise TxRejected("params.public_key must be a registered, unrevoked account")
    if key in acl.committee(state_get):
        raise TxRejected("that key is already a committee member")
    return {"public_key": key}


def _apply_add_member(ctx: ExecContext, p: dict[str, Value]) -> None:
    key = _check_add_member(ctx.state.get, p)["public_key"]
    assert isinstance(key, bytes)
    _grant(ctx.state, key, "committee")
    _set_committee(ctx.state, [*acl.committee(ctx.state.get), key])


def _check_remove_member(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    only_params(p, {"public_key"})
    key = key_param(state_get, p, "public_key")
    members = acl.committee(state_get)
    if key not in members:
        raise TxRejected("that key is not a committee member")
    if len(members) == 1:
        raise TxRejected("the committee cannot lose its last member")
    return {"public_key": key}


def _apply_remove_member(ctx: ExecContext, p: dict[str, Value]) -> None:
    key = _check_remove_member(ctx.state.get, p)["public_key"]
    assert isinstance(key, bytes)
    account = acl.get_account(ctx.state.get, key)
    if account is not None and "committee" in account.roles:
        _revoke(ctx.state, key, "committee")
    _set_committee(ctx.state, [m for m in acl.committee(ctx.state.get) if m != key])


def _role_param(p: dict[str, Value]) -> str:
    role = p.get("role")
    if not isinstance(role, str) or role not in GRANTABLE:
        raise TxRejected(f"params.role must be one of {', '.join(GRANTABLE)} (validators and "
                         "committee members have their own proposal kinds)")
    return role


def _check_grant(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    only_params(p, {"public_key", "role", "name", "org"})
    key, role = key_param(state_get, p, "public_key"), _role_param(p)
    out: dict[str, Value] = {"public_key": key, "role": role}
    account = acl.get_account(state_get, key)
    if account is None:
        out["name"] = str_param(p, "name", 200)
        org = p.get("org", "")
        if not isinstance(org, str):
            raise TxRejected("params.org must be a USCC string")
        if org and acl.get_org(state_get, org) is None:
            raise TxRejected(f"no organisation with USCC {org}")
        out["org"] = org
    elif account.revoked_at is not None:
        raise TxRejected(f"that key was revoked at height {account.revoked_at}")
    elif role in account.roles:
        raise TxRejected(f"{account.name} already has the {role} role")
    elif "name" in p or "org" in p:
        raise TxRejected("params.name and params.org are only for a new key")
    return out


def _apply_grant(ctx: ExecContext, p: dict[str, Value]) -> None:
    key, role = p["public_key"], p["role"]
    assert isinstance(key, bytes) and isinstance(role, str)
    account = acl.get_account(ctx.state.get, key)
    if account is not None:  # perhaps registered since the proposal: name and org stay
        if role in account.roles:
            raise TxRejected(f"{account.name} already has the {role} role")
        _grant(ctx.state, key, role)
        return
    name, org = str(p.get("name", "")), str(p.get("org", ""))
    _grant(ctx.state, key, role, name, org)
    if org:
        _add_org_key(ctx.state, org, key)


def _check_revoke(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    only_params(p, {"public_key", "role"})
    key, role = key_param(state_get, p, "public_key"), _role_param(p)
    account = acl.get_account(state_get, key)
    if account is None:
        raise TxRejected("that key is not a registered account")
    if role not in account.roles:
        raise TxRejected(f"{account.name} does not have the {role} role")
    return {"public_key": key, "role": role}


def _apply_revoke(ctx: ExecContext, p: dict[str, Value]) -> None:
    normalised = _check_revoke(ctx.state.get, p)
    key, role = normalised["public_key"], normalised["role"]
    assert isinstance(key, bytes) and isinstance(role, str)
    _revoke(ctx.state, key, role)


# -- configuration ------------------------------------------------------------------------------


def _setting(name: str, value: Value) -> Value:
    rule = settable_config().get(name)
    if name in FROZEN_CONFIG:
        raise TxRejected(f"{name} is fixed at genesis")
    if rule is None:
        settable = ", ".join(sorted(settable_config()))
        raise TxRejected(f"unknown setting {name!r}; settable: {settable}")
    if isinstance(rule, tuple):
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
            value = int(value)
        low, high = rule
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise TxRejected(f"setting {name} must be an integer from {low} to {high}")
        return value
    try:
        return rule(value)
    except TxRejected as exc:
        raise TxRejected(f"setting {name}: {exc}") from None


def _check_config(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    only_params(p, {"changes"})
    changes = p.get("changes")
    if not isinstance(changes, dict) or not changes:
        raise TxRejected("params.changes must be a non-empty map of setting -> value")
    return {"changes": {name: _setting(name, value) for name, value in changes.items()}}


def _apply_config(ctx: ExecContext, p: dict[str, Value]) -> None:
    changes = _check_config(ctx.state.get, p)["changes"]
    assert isinstance(changes, dict)
    ctx.state.put(CONFIG_KEY, encode_value({**read_config(ctx.state.get), **changes}))


# -- organisations ------------------------------------------------------------------------------


def _check_org(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    only_params(p, {"uscc", "name", "kind", "region", "keys"})
    try:
        uscc = validate_uscc(str(p.get("uscc", "")))
    except IdentifierError as exc:
        raise TxRejected(str(exc)) from None
    if acl.get_org(state_get, uscc) is not None:
        raise TxRejected(f"organisation {uscc} is already registered")
    kind = p.get("kind")
    if not isinstance(kind, str) or kind not in acl.ORG_KINDS:
        raise TxRejected(f"params.kind must be one of {', '.join(acl.ORG_KINDS)}")
    region = p.get("region")
    if (not isinstance(region, str) or len(region) != 6
            or not (region.isascii() and region.isdigit())):
        raise TxRejected("params.region must be a 6-digit administrative division code")
    keys_in = p.get("keys", [])
    if not isinstance(keys_in, list) or len(keys_in) > 32:
        raise TxRejected("params.keys must be a list of at most 32 public keys")
    keys = [key_param(state_get, {"key": k}, "key") for k in keys_in]
    if len(set(keys)) != len(keys):
        raise TxRejected("params.keys lists the same key twice")
    for k in keys:
        if acl.get_account(state_get, k) is not None:
            raise TxRejected("a key in params.keys already belongs to an account")
    return {"uscc": uscc, "name": str_param(p, "name"), "kind": kind, "region": region,
            "keys": list(keys)}


def _apply_org(ctx: ExecContext, p: dict[str, Value]) -> None:
    n = _check_org(ctx.state.get, p)
    uscc, name, kind, region, keys = n["uscc"], n["name"], n["kind"], n["region"], n["keys"]
    assert isinstance(uscc, str) and isinstance(name, str) and isinstance(keys, list)
    assert isinstance(kind, str) and isinstance(region, str)
    raw_keys = [k for k in keys if isinstance(k, bytes)]
    ctx.state.put(acl.org_key(uscc), acl.encode_org(name, uscc, kind, region, raw_keys))
    roles = ["enterprise"] if kind == "enterprise" else []
    for k in raw_keys:
        ctx.state.put(acl.account_key(k), acl.encode_account(name, uscc, roles))


def _add_org_key(state: StateView, uscc: str, key: bytes) -> None:
    org = acl.get_org(state.get, uscc)
    if org is None:
        raise TxRejected(f"no organisation with USCC {uscc}")
    state.put(acl.org_key(uscc), acl.encode_org(org.name, uscc, org.kind, org.region,
                                                [*org.keys, key]))


def _check_rotate_org_key(state_get: StateGet, p: dict[str, Value]) -> dict[str, Value]:
    only_params(p, {"old_key", "new_key"})
    old, new = key_param(state_get, p, "old_key"), key_param(state_get, p, "new_key")
    account = acl.active_account(state_get, old)
    if account is None:
        raise TxRejected("params.old_key is not an active account")
    if acl.get_account(state_get, new) is not None:
        raise TxRejected("params.new_key already belongs to an account")
    if "validator" in account.roles:
        raise TxRejected("validator keys rotate with rotate_validator_key")
    return {"old_key": old, "new_key": new}


def _apply_rotate_org_key(ctx: ExecContext, p: dict[str, Value]) -> None:
    normalised = _check_rotate_org_key(ctx.state.get, p)
    old, new = normalised["old_key"], normalised["new_key"]
    assert isinstance(old, bytes) and isinstance(new, bytes)
    account = acl.get_account(ctx.state.get, old)
    assert account is not None
    _move_key(ctx, old, new, account)


LEDGER_KINDS = (
    ProposalKind("add_validator", "add a validator node (name, public_key, address host:port)",
                 _check_add_validator, _apply_add_validator),
    ProposalKind("remove_validator", "remove a validator node (public_key)",
                 _check_remove_validator, _apply_remove_validator),
    ProposalKind("rotate_validator_key", "replace a validator's key (old_key, new_key)",
                 _check_rotate_validator, _apply_rotate_validator),
    ProposalKind("add_committee_member", "add a committee member (public_key)",
                 _check_add_member, _apply_add_member),
    ProposalKind("remove_committee_member", "remove a committee member (public_key)",
                 _check_remove_member, _apply_remove_member),
    ProposalKind("grant_role", f"grant a role ({'/'.join(GRANTABLE)}) to a key (public_key, "
                               "role; name and org for a new key)", _check_grant, _apply_grant),
    ProposalKind("revoke_role", "revoke a role from a key (public_key, role)",
                 _check_revoke, _apply_revoke),
    ProposalKind("set_config", "change on-chain settings (changes: {setting: value}; "
                               f"ledger settings: {', '.join(LEDGER_SETTINGS)})",
                 _check_config, _apply_config),
    ProposalKind("register_org", "register an organisation (uscc, name, kind "
                                 "department|enterprise, region, keys)", _check_org, _apply_org),
    ProposalKind("rotate_org_key", "replace an organisation key (old_key, new_key)",
                 _check_rotate_org_key, _apply_rotate_org_key),
)
