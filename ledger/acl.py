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

Key rotation: a key is never deleted. Rotating it in block ``h`` writes
``revoked_at = h + 1`` (the first height at which the old key no longer
counts) into the old key's account, and a new account for the new key with
``valid_from = h + 1``. Every check takes the height of the block whose
transaction it judges and reads the state as of that block, so a signature
is judged by the key that was valid at the block it is in: the old key still
counts for the rest of block ``h`` (and for every earlier block when a chain
is replayed), the new one only from ``h + 1``. Called without a height, a
check answers for the block after the state it reads (what admission and
queries want).
"""

from __future__ import annotations

import functools
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
    valid_from: int | None = None

    def key_problem(self, height: int | None = None) -> str | None:
        """Why this key does not count at block ``height`` (None: it does)."""
        if self.revoked_at is not None and (height is None or height >= self.revoked_at):
            return f"sender's key ({self.name}) was revoked at height {self.revoked_at}"
        if self.valid_from is not None and height is not None and height < self.valid_from:
            return f"sender's key ({self.name}) is valid only from height {self.valid_from}"
        return None


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


def encode_account(name: str, org: str, roles: list[str], revoked_at: int | None = None,
                   valid_from: int | None = None) -> bytes:
    value: dict[str, Value] = {"name": name, "org": org, "roles": list(sorted(set(roles)))}
    if revoked_at is not None:
        value["revoked_at"] = revoked_at
    if valid_from is not None:
        value["valid_from"] = valid_from
    return encode_value(value)


def encode_org(name: str, uscc: str, kind: str, region: str, keys: list[bytes]) -> bytes:
    return encode_value({"name": name, "uscc": uscc, "kind": kind, "region": region,
                         "keys": list(sorted(set(keys)))})


def get_account(state_get: StateGet, public_key: bytes) -> AccountRecord | None:
    """The key's account, or None; a revoked key has ``revoked_at`` set."""
    raw = state_get(account_key(public_key))
    return None if raw is None else _decode_account(raw)


# Every transaction's sender is looked up (often twice) while it executes on every node:
# decoded records are memoised by their exact bytes, so a changed account (new bytes) is
# never served stale. Records are frozen and nobody changes them in place.
@functools.lru_cache(maxsize=4096)
def _decode_account(raw: bytes) -> AccountRecord:
    try:
        value = decode_value(raw)
        assert isinstance(value, dict)
        name, org, roles = value["name"], value["org"], value["roles"]
        revoked, valid_from = value.get("revoked_at"), value.get("valid_from")
        assert isinstance(name, str) and isinstance(org, str) and isinstance(roles, list)
        assert revoked is None or isinstance(revoked, int)
        assert valid_from is None or isinstance(valid_from, int)
        return AccountRecord(name=name, org=org, roles=[str(r) for r in roles],
                             revoked_at=revoked, valid_from=valid_from)
    except (DecodeError, AssertionError, KeyError) as exc:
        raise CorruptionError(f"account record for a key is unreadable: {exc}") from None


def active_account(state_get: StateGet, public_key: bytes, height: int | None = None
                   ) -> AccountRecord | None:
    """The key's account if it exists and counts at block ``height`` (see the module doc)."""
    account = get_account(state_get, public_key)
    return account if account is not None and account.key_problem(height) is None else None


def has_role(state_get: StateGet, public_key: bytes, role: str, height: int | None = None
             ) -> bool:
    account = active_account(state_get, public_key, height)
    return account is not None and role in account.roles


def role_problem(state_get: StateGet, public_key: bytes, role: str, height: int | None = None
                 ) -> str | None:
    """Why ``public_key`` may not act as ``role`` at block ``height`` (None if it may)."""
    return roles_problem(state_get, public_key, (role,), height)


def roles_problem(state_get: StateGet, public_key: bytes, roles: tuple[str, ...],
                  height: int | None = None) -> str | None:
    """Why ``public_key`` may act as none of ``roles`` at block ``height`` (None if it may)."""
    account = get_account(state_get, public_key)
    if account is None:
        return "sender is not a registered account"
    problem = account.key_problem(height)
    if problem:
        return problem
    if not any(role in account.roles for role in roles):
        return f"sender ({account.name}) does not have the {' or '.join(roles)} role"
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
