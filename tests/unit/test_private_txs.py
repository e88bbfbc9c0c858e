"""Private transactions on the public block and transaction routes (ledger.api).

Fund flows and signed reads are what the fiscal routes show only to an auditor (or a
paying organisation's officers) and the access log only to an auditor; the block and
transaction routes must not hand them to anyone else. A one-validator network with the
demo's sample data is served by a real ``node.Node`` in process.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.sdk import Client, NodeError, request
from ledger.block import TxResult
from ledger.codec import decode_value, from_value
from ledger.crypto import get_suite, load_private_key_file
from ledger.merkle import MerkleTree, leaf_hash, verify_inclusion
from ledger.tx import Transaction
from tests.unit.node_harness import sample_network

TIME_MS = 1_767_225_600_000
MSGPACK = {"Accept": "application/msgpack"}
HASH = get_suite("sm").hash


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    with sample_network(tmp_path_factory.mktemp("net"), "govledger-private", TIME_MS) as served:
        yield served


def keyed(directory: Path, pem: Path | str, url: str) -> Client:
    return Client(url, key=load_private_key_file(directory / "keys" / pem, "sm"))


def public_blocks(url: str, msgpack: bool = False) -> list[Any]:
    head = request(url + "/v1/status")["height"]
    blocks: list[Any] = []
    while len(blocks) < head:
        query = f"{url}/v1/blocks?from={len(blocks) + 1}&count=100"
        if msgpack:
            value = decode_value(request(query, headers=MSGPACK, raw_response=True))
            assert isinstance(value, dict)
            blocks += value["blocks"]  # type: ignore[arg-type]
        else:
            blocks += request(query)["blocks"]
    return blocks


def _leaf(item: dict[str, Any], cls: type[Any]) -> bytes:
    if item.get("redacted"):
        return bytes(item["leaf"])
    fields = {k: v for k, v in item.items() if not (cls is Transaction and k == "tx_id")}
    return leaf_hash(HASH, from_value(cls, fields).encoded())


def test_the_public_sees_every_block_and_private_ones_as_leaf_hashes_that_check(
        node: tuple[Path, str]) -> None:
    """Goal: anyone reads every block, but a fund flow's or a signed read's payload and
    result only as its Merkle leaf hash — which still recomputes the header's tx_root and
    result_root — while an auditor's signed read of the same blocks sees them whole and a
    block of certificate transactions is whole to anyone. Method: the sample chain read
    unsigned in msgpack (roots recomputed block by block) and in JSON (searched for the
    payments' purposes), and signed by the auditor."""
    directory, url = node
    auditor = keyed(directory, "sjj.pem", url)
    auditor.get("/v1/alerts", signed=True)  # a signed read, logged as an access.read
    deadline = time.monotonic() + 20
    while True:
        blocks = public_blocks(url, msgpack=True)
        kinds = {tx["type"]: bool(tx.get("redacted")) for b in blocks for tx in b["txs"]}
        if "access.read" in kinds:
            break
        assert time.monotonic() < deadline, "the signed read was not committed"
        time.sleep(0.2)
    assert kinds["fiscal.pay"] and kinds["fiscal.appropriate"] and kinds["access.read"]
    assert not kinds["cert.issue"] and not kinds["gov.propose"]
    for b in blocks:
        assert MerkleTree(HASH, [_leaf(t, Transaction) for t in b["txs"]]).root == \
            b["header"]["tx_root"]
        assert MerkleTree(HASH, [_leaf(r, TxResult) for r in b["results"]]).root == \
            b["header"]["result_root"]
        for tx in b["txs"]:
            if tx.get("redacted"):
                assert set(tx) == {"tx_id", "type", "sender", "redacted", "leaf"}
    whole = auditor.get("/v1/blocks", {"from": "1", "count": "100"}, signed=True)["blocks"]
    assert not any(tx.get("redacted") for b in whole for tx in b["txs"])
    purposes = {tx["payload"]["purpose"] for b in whole for tx in b["txs"]
                if tx["type"] == "fiscal.pay"}
    shown = json.dumps(public_blocks(url), ensure_ascii=False)
    assert purposes and not any(p in shown for p in purposes)


def test_a_private_transaction_to_its_organisation_an_auditor_and_no_one_else(
        node: tuple[Path, str]) -> None:
    """Goal: GET /v1/tx of a payment shows the public its id, type, sender and leaf hash,
    with an inclusion proof that checks against the certified header; the paying
    organisation's finance officer and an auditor see it whole; another organisation's
    finance officer and an enterprise are refused (403). Method: one sample payment and
    its readers."""
    directory, url = node
    payment = next(tx for b in public_blocks(url) for tx in b["txs"]
                   if tx["type"] == "fiscal.pay")
    public = request(f"{url}/v1/tx/{payment['tx_id']}")
    assert public["tx"]["redacted"] and public["result"]["redacted"]
    assert "payload" not in public["tx"] and public["result"]["data"] == {}
    proof = public["proof"]
    verify_inclusion(HASH, proof["index"], proof["size"], bytes.fromhex(public["tx"]["leaf"]),
                     [bytes.fromhex(p) for p in proof["path"]],
                     bytes.fromhex(public["header"]["tx_root"]))
    fiscal_keys = sorted((directory / "keys" / "fiscal").glob("*.pem"))
    senders = {load_private_key_file(p, "sm").public_key().raw.hex(): p for p in fiscal_keys}
    payer = senders.pop(payment["sender"])
    mine = Client(url, key=load_private_key_file(payer, "sm"))
    assert "purpose" in mine.get(f"/v1/tx/{payment['tx_id']}", signed=True)["tx"]["payload"]
    whole = keyed(directory, "sjj.pem", url).get(f"/v1/tx/{payment['tx_id']}", signed=True)
    assert whole["result"]["data"]["flow_id"] == payment["tx_id"]
    other = Client(url, key=load_private_key_file(next(iter(senders.values())), "sm"))
    for reader, says in ((other, "may see only its own organisation's"),
                         (keyed(directory, "slkj.pem", url), "does not have")):
        with pytest.raises(NodeError) as refused:
            reader.get(f"/v1/tx/{payment['tx_id']}", signed=True)
        assert refused.value.status == 403 and says in refused.value.detail
