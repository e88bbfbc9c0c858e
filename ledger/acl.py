"""Accounts and roles on the authenticated state.

An account binds a public key to a name, an organisation (its USCC, or ""
for a node's own key) and a list of roles. It lives at
``acl/key/<public key bytes>`` so that "who may do this?" is itself provable
against a block's ``state_root``.

Roles: ``validator``, ``committee``, ``issuer``, ``finance``, ``auditor``,
``verifier``, ``enterprise``. Role-specific scopes (which certificate types
an issuer may issue, which organisation's funds a finance officer may move)
are kept beside the account by the application that owns them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.codec import Value, decode_value, encode_value
from ledger.errors import CorruptionError, DecodeError
from ledger.execution import StateGet

ROLES = ("validator", "committee", "issuer", "finance", "auditor", "verifier", "enterprise")
ACCOUNT_PREFIX = b"acl/key/"


@dataclass(frozen=True, slots=True)
class AccountRecord:
    name: str
    org: str
    roles: list[str]


def account_key(public_key: bytes) -> bytes:
    return ACCOUNT_PREFIX + public_key


def encode_account(name: str, org: str, roles: list[str]) -> bytes:
    value: dict[str, Value] = {"name": name, "org": org, "roles": list(sorted(set(roles)))}
    return encode_value(value)


def get_account(state_get: StateGet, public_key: bytes) -> AccountRecord | None:
    raw = state_get(account_key(public_key))
    if raw is None:
        return None
    try:
        value = decode_value(raw)
        assert isinstance(value, dict)
        name, org, roles = value["name"], value["org"], value["roles"]
        assert isinstance(name, str) and isinstance(org, str) and isinstance(roles, list)
        return AccountRecord(name=name, org=org, roles=[str(r) for r in roles])
    except (DecodeError, AssertionError, KeyError) as exc:
        raise CorruptionError(f"account record for a key is unreadable: {exc}") from None


def has_role(state_get: StateGet, public_key: bytes, role: str) -> bool:
    account = get_account(state_get, public_key)
    return account is not None and role in account.roles
