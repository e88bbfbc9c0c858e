"""Sample data for the demo network, loaded once through a node's HTTP API.

Until the certificate and fiscal applications exist this anchors sample
documents (``evidence.anchor``) from each sample department.
"""

from __future__ import annotations

import time
from pathlib import Path

from client.sdk import NodeError, submit
from ledger import evidence
from ledger.crypto import load_private_key_file
from ledger.genesis import load_genesis
from ledger.network import load_orgs
from ledger.tx import make_tx

SAMPLE_DOCUMENTS = [
    ("营业执照 福州示例科技有限公司", "scan of a business licence"),
    ("2026年度部门预算批复", "budget approval"),
    ("审计报告 2025-17", "audit report"),
]


def load_samples(directory: Path, urls: list[str]) -> str:
    genesis = load_genesis(directory / "genesis.json")
    suite = genesis.crypto
    orgs = load_orgs(directory)
    now = int(time.time() * 1000)
    done = 0
    for i, org in enumerate(orgs):
        key = load_private_key_file(directory / org["key"], genesis.suite)
        for j, (label, text) in enumerate(SAMPLE_DOCUMENTS):
            digest = suite.hash(f"{org['uscc']}/{label}/{text}".encode())
            tx = make_tx(key, genesis.chain_id, evidence.TX_TYPE,
                         {"digest": digest, "label": label[:200]}, now + i * 10 + j,
                         now + 3_600_000)
            try:
                result = submit(urls[(i + j) % len(urls)], tx, wait=True)
            except NodeError as exc:
                if exc.code == "forbidden":
                    continue  # e.g. an enterprise without an account role for this
                raise
            if result.get("status") == "committed":
                done += 1
    return f"loaded {done} sample evidence anchors from {len(orgs)} organisations"
