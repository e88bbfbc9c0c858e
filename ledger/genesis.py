"""The genesis file: the trust root every node and every offline verifier starts from.

``genesis.json`` names the chain, its crypto suite, the initial validators,
the initial accounts (public keys with their organisation and roles) and the
initial on-chain configuration. Bytes are hex in JSON.

From it every node derives the same *genesis block* (height 0, no commit
certificate): ``prev_hash`` is the hash of the canonical encoding of the
genesis document itself, so block 0 — and therefore every later block —
commits to the exact genesis a verifier holds; ``state_root`` is the root of
the initial state written by :func:`initial_state`.

Initial state keys (all values canonical msgpack):

- ``sys/chain``       ``{"chain_id", "suite"}``
- ``sys/validators``  :class:`~ledger.block.ValidatorSet`
- ``sys/config``      the configuration map
- ``acl/key/<public key bytes>``  ``{"name", "org", "roles"}``
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ledger import acl
from ledger.block import ZERO_HASH, Block, BlockHeader, ValidatorSet, result_root, tx_root
from ledger.codec import Value, encode, encode_value, from_json, to_json_value
from ledger.crypto import Suite, get_suite
from ledger.errors import DecodeError, InputError
from ledger.execution import Registry
from ledger.tx import CHAIN_ID_RE

SUITES = ("sm", "intl")

DEFAULT_CONFIG: dict[str, Value] = {
    "checkpoint_interval": 16,
    # A block's work grows with its size: 2,000 transactions took four SM2 nodes on two
    # slow cores over 4 s, so an overloaded network changed view; 500 keep a full block
    # near a second there, and at peak load blocks hold 130 - 250 (bench/RESULTS.md).
    "batch_tx_max": 500,
    "batch_bytes_max": 4 * 1024 * 1024,
    "batch_timeout_ms": 10,  # under load the previous block's commit time batches; idle: latency
    "view_change_timeout_ms": 4000,
    "block_time_skew_ms": 30_000,
    "tx_valid_window_ms": 24 * 3600 * 1000,
}


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    org: str  # the organisation's USCC, or "" for a node key
    public_key: bytes
    roles: list[str]


@dataclass(frozen=True, slots=True)
class Org:
    """An organisation of the consortium (department or enterprise)."""

    name: str
    uscc: str
    kind: str  # "department" | "enterprise"
    region: str  # 6-digit administrative division code, e.g. 350100


@dataclass(frozen=True, slots=True)
class Genesis:
    chain_id: str
    suite: str
    time: int
    validators: ValidatorSet
    accounts: list[Account]
    config: dict[str, Value] = field(default_factory=dict)
    orgs: list[Org] = field(default_factory=list)
    # Initial data of the applications, by application name (e.g. "certs": cert types).
    apps: dict[str, Value] = field(default_factory=dict)

    def validate(self) -> None:
        if not CHAIN_ID_RE.fullmatch(self.chain_id):
            raise DecodeError(f"genesis.chain_id {self.chain_id!r} is not a valid chain id")
        if self.suite not in SUITES:
            raise DecodeError(f"genesis.suite {self.suite!r} is not one of {', '.join(SUITES)}")
        suite = get_suite(self.suite)
        for i, v in enumerate(self.validators.validators):
            _check_key(suite, v.public_key, f"genesis.validators[{i}].public_key")
        seen: set[bytes] = set()
        for i, a in enumerate(self.accounts):
            _check_key(suite, a.public_key, f"genesis.accounts[{i}].public_key")
            if a.public_key in seen:
                raise DecodeError(f"genesis.accounts[{i}]: the same key is listed twice")
            seen.add(a.public_key)
            for role in a.roles:
                if role not in acl.ROLES:
                    raise DecodeError(f"genesis.accounts[{i}]: unknown role {role!r}")
        usccs = [o.uscc for o in self.orgs]
        if len(set(usccs)) != len(usccs):
            raise DecodeError("genesis.orgs lists the same USCC twice")
        for i, o in enumerate(self.orgs):
            if o.kind not in acl.ORG_KINDS:
                raise DecodeError(f"genesis.orgs[{i}].kind must be one of {acl.ORG_KINDS}")

    @property
    def crypto(self) -> Suite:
        return get_suite(self.suite)

    def genesis_hash(self) -> bytes:
        return self.crypto.hash(encode(self))

    def to_json(self) -> str:
        import json

        return json.dumps(to_json_value(self), ensure_ascii=False, indent=2, sort_keys=True)

    def config_value(self, name: str) -> Value:
        return {**DEFAULT_CONFIG, **self.config}.get(name)


def _check_key(suite: Suite, raw: bytes, where: str) -> None:
    try:
        suite.public_key(raw)
    except InputError as exc:
        raise DecodeError(f"{where}: {exc}") from None


def load_genesis(path: str | Path) -> Genesis:
    """Read and validate a genesis file; InputError says what is wrong."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read genesis file {path}: {exc.strerror}") from None
    try:
        return from_json(Genesis, text)
    except DecodeError as exc:
        raise DecodeError(f"{path}: {exc}") from None


def initial_state(genesis: Genesis, registry: Registry | None = None
                  ) -> dict[bytes, bytes | None]:
    """The state writes of block 0 (the ledger's own, then each application's)."""
    writes: dict[bytes, bytes | None] = {
        b"sys/chain": encode_value({"chain_id": genesis.chain_id, "suite": genesis.suite}),
        b"sys/validators": encode(genesis.validators),
        b"sys/config": encode_value({**DEFAULT_CONFIG, **genesis.config}),
    }
    for v in genesis.validators.validators:
        writes[acl.account_key(v.public_key)] = acl.encode_account(v.name, "", ["validator"])
    for a in genesis.accounts:
        roles = list(a.roles)
        if a.public_key in genesis.validators.public_keys():
            roles = sorted(set(roles) | {"validator"})
        writes[acl.account_key(a.public_key)] = acl.encode_account(a.name, a.org, roles)
    for o in genesis.orgs:
        keys = [a.public_key for a in genesis.accounts if a.org == o.uscc]
        writes[acl.org_key(o.uscc)] = acl.encode_org(o.name, o.uscc, o.kind, o.region, keys)
    committee = sorted(a.public_key for a in genesis.accounts if "committee" in a.roles)
    writes[acl.COMMITTEE_KEY] = encode_value(list(committee))
    if registry is not None:
        writes.update(registry.genesis_writes(genesis))
    return writes


def genesis_header(genesis: Genesis, state_root: bytes) -> BlockHeader:
    suite = genesis.crypto
    return BlockHeader(
        height=0,
        prev_hash=genesis.genesis_hash(),
        tx_root=tx_root(suite, []),
        result_root=result_root(suite, []),
        state_root=state_root,
        time=genesis.time,
        view=0,
        proposer=ZERO_HASH,
        validator_set_hash=genesis.validators.set_hash(suite),
    )


def genesis_block(genesis: Genesis, state_root: bytes) -> Block:
    return Block(header=genesis_header(genesis, state_root), txs=[])
