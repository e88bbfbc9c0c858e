"""Sample data for the demo network, loaded once through a node's HTTP API.

Each sample department anchors a few documents (``evidence.anchor``); then
each application module listed in ``node.APP_MODULES`` loads its own samples
(``load_samples(directory, client_for)``: certificates, fund flows).
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path

from client.sdk import Client, NodeError
from ledger import evidence
from ledger.crypto import load_private_key_file
from ledger.genesis import load_genesis
from ledger.network import load_orgs

SAMPLE_DOCUMENTS = [
    ("营业执照 福州示例科技有限公司", "scan of a business licence"),
    ("2026年度部门预算批复", "budget approval"),
    ("审计报告 2025-17", "audit report"),
]
APP_MODULES = ("certs.app", "fiscal.app")


def load_samples(directory: Path, urls: list[str]) -> str:
    genesis = load_genesis(directory / "genesis.json")
    suite = genesis.crypto
    orgs = load_orgs(directory)

    def client_for(slug: str) -> Client:
        org = next(o for o in orgs if o["slug"] == slug)
        return Client(urls, key=load_private_key_file(directory / org["key"], genesis.suite))

    lines = [_anchor_documents(orgs, client_for, suite.hash)]
    for name in APP_MODULES:
        if importlib.util.find_spec(name) is not None:
            lines.append(importlib.import_module(name).load_samples(directory, client_for))
    return "\n".join(lines)


def _anchor_documents(orgs: list[dict[str, object]], client_for: Callable[[str], Client],
                      hash_fn: Callable[[bytes], bytes]) -> str:
    done = 0
    for org in orgs:
        if "enterprise" in org["roles"]:  # type: ignore[operator]
            continue
        client = client_for(str(org["slug"]))
        for label, text in SAMPLE_DOCUMENTS:
            digest = hash_fn(f"{org['uscc']}/{label}/{text}/{time.time_ns()}".encode())
            try:
                reply = client.submit(evidence.TX_TYPE, {"digest": digest, "label": label})
            except NodeError:
                continue
            if reply.get("status") == "committed" and reply["result"]["ok"]:
                done += 1
    return f"anchored {done} sample documents (存证)"
