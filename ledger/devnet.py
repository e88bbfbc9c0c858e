"""A throw-away network in one process: keys, genesis and block certification.

Used by the ledger demo, the tests and the consensus simulator, which need a
genesis with known validator keys and a way to certify a block the way a
quorum of validators would (each signs the commit message). Real networks
get their keys and genesis from ``node.py init``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ledger.block import (
    COMMIT_PURPOSE,
    BlockHeader,
    CommitCertificate,
    CommitSignature,
    Validator,
    ValidatorSet,
    commit_message,
)
from ledger.chain import Chain, Pending
from ledger.crypto import PrivateKey, get_suite
from ledger.execution import Registry
from ledger.genesis import Account, Genesis
from ledger.store import MemoryStore, Store


@dataclass
class Devnet:
    genesis: Genesis
    validator_keys: list[PrivateKey]
    account_keys: dict[str, PrivateKey] = field(default_factory=dict)

    @property
    def suite_name(self) -> str:
        return self.genesis.suite

    def certify(self, header: BlockHeader, signers: Sequence[PrivateKey] | None = None
                ) -> CommitCertificate:
        """A commit certificate signed by ``signers`` (default: a quorum of the validators)."""
        suite = self.genesis.crypto
        if signers is None:
            signers = self.validator_keys[: self.genesis.validators.quorum]
        block_hash = header.block_hash(suite)
        message = commit_message(self.genesis.chain_id, header.view, header.height, block_hash)
        sigs = [CommitSignature(k.public_key().raw, k.sign(COMMIT_PURPOSE, message))
                for k in signers]
        return CommitCertificate(height=header.height, view=header.view, block_hash=block_hash,
                                 signatures=sigs)

    def open_chain(self, registry: Registry, store: Store | None = None) -> Chain:
        return Chain(store or MemoryStore(self.genesis.crypto), self.genesis, registry)

    def commit(self, chain: Chain, pending: Pending) -> CommitCertificate:
        cert = self.certify(pending.header)
        chain.append(pending, cert)
        return cert


def make_devnet(
    suite_name: str = "sm",
    validators: int = 4,
    accounts: Sequence[tuple[str, str, list[str]]] = (),
    chain_id: str = "govledger-test",
    time_ms: int = 1_767_225_600_000,  # 2026-01-01T00:00:00Z
    config: dict[str, object] | None = None,
) -> Devnet:
    """Fresh keys for ``validators`` nodes and each ``(name, org, roles)`` account."""
    suite = get_suite(suite_name)
    vkeys = [suite.generate_key() for _ in range(validators)]
    vset = ValidatorSet([
        Validator(name=f"node{i}", public_key=k.public_key().raw, address=f"127.0.0.1:{7700 + i}")
        for i, k in enumerate(vkeys)
    ])
    akeys = {name: suite.generate_key() for name, _, _ in accounts}
    genesis = Genesis(
        chain_id=chain_id,
        suite=suite_name,
        time=time_ms,
        validators=vset,
        accounts=[Account(name=name, org=org, public_key=akeys[name].public_key().raw,
                          roles=list(roles)) for name, org, roles in accounts],
        config=dict(config or {}),  # type: ignore[arg-type]
    )
    genesis.validate()
    return Devnet(genesis=genesis, validator_keys=vkeys, account_keys=akeys)
