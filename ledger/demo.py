"""A short tour of the ledger layer (what ``python node.py demo`` runs until the node exists).

1. Create (or reuse) a 4-validator SM2 network in DIR: genesis.json and keys.
2. A department signs the SM3 digest of a document and anchors it
   (``evidence.anchor``) in a new block, certified by a quorum of validators
   and appended to LevelDB in one atomic write.
3. Build the proof bundle (state proof + transaction inclusion proof + block
   header + commit certificate) and verify it with the genesis file alone.
4. Show that a digest that was never anchored has a verifiable absence proof,
   and that a bundle altered in one byte is rejected.
5. Re-check the whole chain from genesis (``verify_chain``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ledger import evidence
from ledger.chain import Chain, verify_chain
from ledger.codec import decode, encode, to_json_value
from ledger.crypto import load_private_key_file, sm2_backend_name
from ledger.devnet import Devnet, make_devnet
from ledger.errors import GovledgerError, ProofError
from ledger.execution import Registry
from ledger.genesis import load_genesis
from ledger.proofs import EvidenceProof, build_evidence_proof, verify_evidence
from ledger.state import verify_state_proof
from ledger.store import LevelDBStore
from ledger.tx import make_tx

DEPT = "市场监督管理局"
DEPT_USCC = "91350100M000100Y43"


def registry() -> Registry:
    r = Registry()
    evidence.register(r)
    return r


def load_or_create(directory: Path) -> Devnet:
    genesis_path = directory / "genesis.json"
    if genesis_path.exists():
        genesis = load_genesis(genesis_path)
        vkeys = [load_private_key_file(directory / "keys" / f"node{i}.pem")
                 for i in range(genesis.validators.size)]
        dept = load_private_key_file(directory / "keys" / "dept.pem")
        return Devnet(genesis, vkeys, {DEPT: dept})
    net = make_devnet("sm", 4, accounts=[(DEPT, DEPT_USCC, ["issuer"])], chain_id="govledger-demo",
                      time_ms=int(time.time() * 1000))
    (directory / "keys").mkdir(parents=True, exist_ok=True)
    genesis_path.write_text(net.genesis.to_json(), encoding="utf-8")
    for i, key in enumerate(net.validator_keys):
        key.save(directory / "keys" / f"node{i}.pem")
    net.account_keys[DEPT].save(directory / "keys" / "dept.pem")
    return net


def step(n: int, text: str) -> None:
    print(f"\n[{n}] {text}")


def run(directory: Path) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    net = load_or_create(directory)
    suite = net.genesis.crypto
    print(f"govledger ledger demo — chain {net.genesis.chain_id}, suite {suite.name} "
          f"(SM2 backend: {sm2_backend_name()}), data in {directory}")
    chain = Chain(LevelDBStore(str(directory / "ledger-db"), suite), net.genesis, registry())
    try:
        now = max(int(time.time() * 1000), chain.head().time + 1)
        document = json.dumps({"name": "营业执照", "holder": "示例科技有限公司",
                               "issued_at": now}, ensure_ascii=False).encode()
        digest = suite.hash(document)
        step(1, f"{DEPT} anchors SM3({len(document)}-byte document) = {digest.hex()}")
        tx = make_tx(net.account_keys[DEPT], net.genesis.chain_id, evidence.TX_TYPE,
                     {"digest": digest, "label": "营业执照 sample"}, now, now + 60_000)
        pending = chain.propose([tx], now, 0, net.validator_keys[0].public_key().raw)
        result = pending.execution.results[0]
        cert = net.certify(pending.header)
        chain.append(pending, cert)
        header = pending.header
        print(f"    block {header.height}: tx {tx.tx_id(suite).hex()[:16]}… "
              f"{'ok' if result.ok else result.reason}; certified by {len(cert.signatures)} of "
              f"{net.genesis.validators.size} validators; block hash "
              f"{header.block_hash(suite).hex()[:16]}…")

        step(2, "build the proof bundle and verify it offline with genesis.json only")
        proof = build_evidence_proof(chain, digest)
        bundle = encode(proof)
        (directory / "proof.json").write_text(
            json.dumps(to_json_value(proof), ensure_ascii=False, indent=1), encoding="utf-8")
        record = verify_evidence(load_genesis(directory / "genesis.json"),
                                 decode(bundle, EvidenceProof), digest)
        print(f"    VALID: anchored at height {record['height']} by org {record['org']} "
              f"({len(bundle)} bytes, written to {directory / 'proof.json'})")

        step(3, "a digest never anchored: a verifiable absence proof")
        missing = suite.hash(b"a document nobody anchored")
        absent = chain.tree().prove(header.state_root, evidence.evidence_key(missing),
                                    header.height)
        verify_state_proof(suite.hash, header.state_root, evidence.evidence_key(missing), None,
                           absent)
        print(f"    absence of {missing.hex()[:16]}… proven against state root "
              f"{header.state_root.hex()[:16]}…")

        step(4, "one altered byte in the bundle (in the anchoring transaction) is rejected")
        tampered = bytearray(bundle)
        at = bundle.index(b"sample")  # inside the anchor record carried by the bundle
        tampered[at] ^= 0x01
        try:
            verify_evidence(net.genesis, decode(bytes(tampered), EvidenceProof), digest)
            print("    UNEXPECTED: tampered bundle accepted")
            return 1
        except (ProofError, GovledgerError) as exc:
            print(f"    INVALID as expected: {exc}")

        step(5, "re-check the whole chain from genesis")
        report = verify_chain(chain.store, net.genesis, registry)
        print(f"    {'OK' if report.ok else 'BROKEN'}: {report.checked_height} blocks checked"
              + (f"; first broken height {report.broken_height}: {report.reason}"
                 if not report.ok else ""))
        return 0 if report.ok else 1
    finally:
        chain.store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ledger.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default="govledger-demo", help="data directory (reused)")
    args = parser.parse_args(argv)
    try:
        return run(Path(args.dir))
    except GovledgerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
