"""Child process for the crash-atomicity test: appends blocks until it is killed.

Usage: python -m tests.unit.crash_child DIR
DIR holds genesis.json, v<i>.pem (validator keys) and dept.pem. After each
append returns, the child prints the new height (flushed): that height is
acknowledged and must survive any kill that follows.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from ledger import evidence
from ledger.chain import Chain
from ledger.crypto import load_private_key_file
from ledger.devnet import Devnet
from ledger.execution import Registry
from ledger.genesis import load_genesis
from ledger.store import LevelDBStore
from ledger.tx import make_tx


def main(directory: str) -> None:
    d = Path(directory)
    genesis = load_genesis(d / "genesis.json")
    vkeys = [load_private_key_file(d / f"v{i}.pem") for i in range(genesis.validators.size)]
    dept = load_private_key_file(d / "dept.pem")
    net = Devnet(genesis, vkeys, {"dept": dept})
    registry = Registry()
    evidence.register(registry)
    chain = Chain(LevelDBStore(str(d / "db"), genesis.crypto), genesis, registry)
    proposer = vkeys[0].public_key().raw
    while True:
        h = chain.height + 1
        txs = [make_tx(dept, genesis.chain_id, evidence.TX_TYPE,
                       {"digest": hashlib.sha256(f"{h}/{i}".encode()).digest(), "label": "x" * 50},
                       h * 1000 + i, genesis.time + 10**12) for i in range(20)]
        pending = chain.propose(txs, genesis.time + h, 0, proposer)
        net.commit(chain, pending)
        print(h, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
