"""Accounts and roles on the authenticated state.

An account binds a public key to a name, an organisation (its USCC, or ""
for a node's own key) and a list of roles. It lives at
``acl/key/<public key bytes>`` so that "who may do this?" is itself provable
against a block's ``state_root``.

Roles: ``validator``, ``committee``, ``issuer``, ``finance``, ``auditor``,
``verifier``, ``enterprise``. Role-specific scopes (which certificate types
an issuer may issue, which organisation's funds a finance officer may move)
are kept beside the account by the application that owns them.

Organisations live at ``org/<USCC>`` (``{"name", "uscc", "kind", "region",
"keys"}``); the committee's member keys at ``gov/committee`` (a sorted list).

Key rotation: a key is never deleted; rotating it writes ``revoked_at`` (the
height from which it no longer counts) into its account. Every check here
is made against the state of the block being executed, so a signature is
judged by the key that was valid at the block it is in.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.codec import Value, decode_value, encode_value
from ledger.errors import CorruptionError, DecodeError
from ledger.execution import StateGet

ROLES = ("validator", "committee", "issuer", "finance", "auditor", "verifier", "enterprise")
ORG_KINDS = ("department", "enterprise")
ACCOUNT_PREFIX = b"acl/key/"
ORG_PREFIX = b"org/"
COMMITTEE_KEY = b"gov/committee"


@dataclass(frozen=True, slots=True)
class AccountRecord:
    name: str
    org: str
    roles: list[str]
    revoked_at: int | None = None


@dataclass(frozen=True, slots=True)
class OrgRecord:
    name: str
    uscc: str
    kind: str
    region: str
    keys: list[bytes]


def account_key(public_key: bytes) -> bytes:
    return ACCOUNT_PREFIX + public_key


def org_key(uscc: str) -> bytes:
    return ORG_PREFIX + uscc.encode()


def encode_account(name: str, org: str, roles: list[str], revoked_at: int | None = None) -> bytes:
    value: dict[str, Value] = {"name": name, "org": org, "roles": list(sorted(set(roles)))}
    if revoked_at is not None:
        value["revoked_at"] = revoked_at
    return encode_value(value)


def encode_org(name: str, uscc: str, kind: str, region: str, keys: list[bytes]) -> bytes:
    return encode_value({"name": name, "uscc": uscc, "kind": kind, "region": region,
                         "keys": list(sorted(set(keys)))})


def get_account(state_get: StateGet, public_key: bytes) -> AccountRecord | None:
    """The key's account, or None; a revoked key has ``revoked_at`` set."""
    raw = state_get(account_key(public_key))
    if raw is None:
        return None
    try:
        value = decode_value(raw)
        assert isinstance(value, dict)
        name, org, roles = value["name"], value["org"], value["roles"]
        revoked = value.get("revoked_at")
        assert isinstance(name, str) and isinstance(org, str) and isinstance(roles, list)
        assert revoked is None or isinstance(revoked, int)
        return AccountRecord(name=name, org=org, roles=[str(r) for r in roles],
                             revoked_at=revoked)
    except (DecodeError, AssertionError, KeyError) as exc:
        raise CorruptionError(f"account record for a key is unreadable: {exc}") from None


def active_account(state_get: StateGet, public_key: bytes) -> AccountRecord | None:
    """The key's account if it exists and has not been revoked."""
    account = get_account(state_get, public_key)
    return account if account is not None and account.revoked_at is None else None


def has_role(state_get: StateGet, public_key: bytes, role: str) -> bool:
    account = active_account(state_get, public_key)
    return account is not None and role in account.roles


def role_problem(state_get: StateGet, public_key: bytes, role: str) -> str | None:
    """Why ``public_key`` may not act as ``role`` (None if it may)."""
    account = get_account(state_get, public_key)
    if account is None:
        return "sender is not a registered account"
    if account.revoked_at is not None:
        return f"sender's key was revoked at height {account.revoked_at}"
    if role not in account.roles:
        return f"sender ({account.name}) does not have the {role} role"
    return None


def get_org(state_get: StateGet, uscc: str) -> OrgRecord | None:
    raw = state_get(org_key(uscc))
    if raw is None:
        return None
    try:
        value = decode_value(raw)
        assert isinstance(value, dict)
        keys = value["keys"]
        assert isinstance(keys, list) and all(isinstance(k, bytes) for k in keys)
        return OrgRecord(str(value["name"]), str(value["uscc"]), str(value["kind"]),
                         str(value["region"]), [k for k in keys if isinstance(k, bytes)])
    except (DecodeError, AssertionError, KeyError) as exc:
        raise CorruptionError(f"organisation record {uscc} is unreadable: {exc}") from None


def committee(state_get: StateGet) -> list[bytes]:
    raw = state_get(COMMITTEE_KEY)
    if raw is None:
        return []
    value = decode_value(raw)
    if not isinstance(value, list) or not all(isinstance(k, bytes) for k in value):
        raise CorruptionError("committee record is unreadable")
    return [k for k in value if isinstance(k, bytes)]
