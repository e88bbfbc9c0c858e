"""An in-process chain with a committee, for governance tests (ledger.devnet, no consensus).

``Gov`` builds a devnet whose accounts are ``m0..m{n-1}`` (the committee), a
department ``dept`` (issuer, organisation :data:`DEPT_USCC`), an enterprise
``ent`` and an auditor ``aud``, on a chain whose registry is evidence +
governance + reads. Each :meth:`Gov.block` proposes one block one second
after the last and certifies it with a quorum of the validator set of its
height (it follows validator-set changes, keys it has made included).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from typing import Any

from ledger import acl, evidence, governance, reads
from ledger.block import TxResult
from ledger.chain import Chain
from ledger.codec import Value
from ledger.crypto import PrivateKey
from ledger.devnet import Devnet, make_devnet
from ledger.execution import Registry
from ledger.genesis import Org
from ledger.ids import make_uscc
from ledger.tx import Transaction, make_tx

T0 = 1_767_225_600_000
HOUR = 3_600_000
DEPT_USCC = "91350100M000100Y43"
ENT_USCC = make_uscc("9", "1", "350100", "MA2Y0009")
NEW_USCC = make_uscc("1", "1", "350102", "MB1F0009")


def gov_registry() -> Registry:
    registry = Registry()
    evidence.register(registry)
    governance.register(registry)
    reads.register(registry)
    return registry


class Gov:
    def __init__(self, members: int = 4, validators: int = 4,
                 config: dict[str, object] | None = None) -> None:
        accounts = [(f"m{i}", "", ["committee"]) for i in range(members)]
        accounts += [("dept", DEPT_USCC, ["issuer"]), ("ent", ENT_USCC, ["enterprise"]),
                     ("aud", "", ["auditor"])]
        net = make_devnet("sm", validators, accounts=accounts, config=config)
        genesis = dataclasses.replace(net.genesis, orgs=[
            Org("福州市市场监督管理局", DEPT_USCC, "department", "350100"),
            Org("福州示例科技有限公司", ENT_USCC, "enterprise", "350100")])
        genesis.validate()
        self.net = Devnet(genesis, net.validator_keys, net.account_keys)
        self.members = members
        self.suite = genesis.crypto
        self.keys: dict[str, PrivateKey] = dict(net.account_keys)
        self.validator_keys = {k.public_key().raw: k for k in net.validator_keys}
        self.registry = gov_registry()
        self.chain: Chain = self.net.open_chain(self.registry)
        self.time = T0
        self._nonce = itertools.count(1)

    # -- keys ----------------------------------------------------------------------------

    def new_key(self, name: str) -> PrivateKey:
        key = self.suite.generate_key()
        self.keys[name] = key
        return key

    def new_validator_key(self) -> PrivateKey:
        key = self.suite.generate_key()
        self.validator_keys[key.public_key().raw] = key
        return key

    def pub(self, who: str) -> bytes:
        return self.keys[who].public_key().raw

    # -- blocks --------------------------------------------------------------------------

    def tx(self, who: str, tx_type: str, payload: dict[str, Value]) -> Transaction:
        return make_tx(self.keys[who], self.net.genesis.chain_id, tx_type, payload,
                       next(self._nonce), self.time + 20 * HOUR)

    def block(self, txs: list[Transaction], advance_ms: int = 1000) -> list[TxResult]:
        self.time += advance_ms
        proposer = next(iter(self.validator_keys))
        pending = self.chain.propose(txs, self.time, 0, proposer)
        vs = self.chain.validators_for(pending.header.height)
        signers = [self.validator_keys[k] for k in vs.public_keys()][: vs.quorum]
        self.chain.append(pending, self.net.certify(pending.header, signers))
        return pending.execution.results

    def send(self, who: str, tx_type: str, payload: dict[str, Value],
             advance_ms: int = 1000) -> TxResult:
        (result,) = self.block([self.tx(who, tx_type, payload)], advance_ms)
        return result

    def propose(self, who: str, kind: str, params: dict[str, Value],
                ttl_ms: int | None = None) -> TxResult:
        payload: dict[str, Value] = {"kind": kind, "params": params}
        if ttl_ms is not None:
            payload["ttl_ms"] = ttl_ms
        return self.send(who, governance.PROPOSE_TX, payload)

    def vote(self, who: str, number: int, approve: bool = True, advance_ms: int = 1000
             ) -> TxResult:
        return self.send(who, governance.VOTE_TX, {"proposal_id": number, "approve": approve},
                         advance_ms)

    def anchor(self, who: str, label: str) -> Transaction:
        digest = hashlib.sha256(f"{label}/{next(self._nonce)}".encode()).digest()
        return self.tx(who, evidence.TX_TYPE, {"digest": digest, "label": label})

    def decide(self, kind: str, params: dict[str, Value]) -> dict[str, Any]:
        """Propose as m0 and approve with just enough members; the closed proposal."""
        result = self.propose("m0", kind, params)
        assert result.ok, result.reason
        number = result.data["proposal_id"]
        assert isinstance(number, int)
        voter = 1
        while self.proposal(number)["status"] == "open":
            assert voter < self.members, self.proposal(number)
            vote = self.vote(f"m{voter}", number)
            assert vote.ok, vote.reason
            voter += 1
        return self.proposal(number)

    # -- reading ---------------------------------------------------------------------------

    def proposal(self, number: int) -> dict[str, Any]:
        found = governance.get_proposal(self.chain.state_get, number)
        assert found is not None
        return found

    def account(self, key: bytes) -> acl.AccountRecord:
        found = acl.get_account(self.chain.state_get, key)
        assert found is not None
        return found
