"""Validator-set changes decided by the committee, on a real 4-node network.

The issue's "Done when": the five sample departments (the committee) add a fifth validator
— made with ``python node.py join`` and started with ``node.py run`` before it is a
validator — which catches up by state transfer and then signs commit certificates; then
they remove one of the original four, whose process is stopped afterwards. Evidence
anchors are submitted all along and must keep committing; proofs of anchors from before,
between and after the changes verify offline from genesis.json alone.

Proposals and votes go through the ``govledger`` CLI (``python -m client``) exactly as an
operator would type them, starting from the command ``node.py join`` prints.
"""

from __future__ import annotations

import itertools
import json
import shlex
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from client.sdk import NodeError, request
from ledger.codec import decode_value, from_value
from ledger.genesis import load_genesis
from ledger.proofs import EvidenceProof, verify_evidence
from tests.e2e.netharness import ROOT, LocalNet

pytestmark = pytest.mark.slow


class Load:
    """Anchors submitted one after another (wait for commit) to the nodes in ``targets``,
    from a thread; records each outcome so the test can show the network never stalled."""

    def __init__(self, net: LocalNet, targets: list[int]) -> None:
        self.net, self.targets = net, list(targets)
        self.key = net.org_key()
        self.results: list[tuple[float, int, dict[str, Any]]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        turn = 0
        while not self._stop.is_set():
            node = self.targets[turn % len(self.targets)]
            turn += 1
            try:
                reply = self.net.submit(node, self.net.anchor_tx(self.key, f"load {turn}"))
            except (OSError, NodeError) as exc:
                self.errors.append(f"node{node}: {exc!r}")
                time.sleep(0.2)
                continue
            self.results.append((time.monotonic(), node, reply))
            time.sleep(0.05)

    def committed(self) -> list[tuple[float, int, dict[str, Any]]]:
        return [r for r in self.results if r[2].get("status") == "committed"]


def govledger(net: LocalNet, *argv: str) -> dict[str, Any]:
    """Run the CLI as a user would (``--json``); its JSON answer."""
    proc = subprocess.run([sys.executable, "-m", "client", "--json", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"govledger {' '.join(argv)}: {proc.stdout}{proc.stderr}"
    value: dict[str, Any] = json.loads(proc.stdout)
    return value


def decide(net: LocalNet, propose_argv: list[str]) -> dict[str, Any]:
    """Propose with the given CLI arguments, then vote with committee members until passed."""
    made = govledger(net, *propose_argv)
    number = made["proposal_id"]
    proposer_key = propose_argv[propose_argv.index("--key") + 1]
    for org in net.orgs:
        if "committee" not in org["roles"] or str(net.dir / org["key"]) == proposer_key:
            continue
        vote = govledger(net, "--node", net.url(1), "gov", "vote", str(number), "approve",
                         "--key", str(net.dir / org["key"]))
        if vote["proposal_status"] == "passed":
            break
    shown = govledger(net, "--node", net.url(2), "gov", "show", str(number))
    assert shown["status"] == "passed", shown
    return shown


def evidence_proof(net: LocalNet, node: int, digest: bytes) -> EvidenceProof:
    """GET /v1/evidence/{digest} as canonical msgpack (JSON cannot carry the payload's bytes)."""
    req = urllib.request.Request(f"{net.url(node)}/v1/evidence/{digest.hex()}",
                                 headers={"Accept": "application/msgpack"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        value = decode_value(resp.read())
    assert isinstance(value, dict)
    return from_value(EvidenceProof, value["proof"])


def signers(net: LocalNet, node: int, height: int) -> set[str]:
    block = request(f"{net.url(node)}/v1/blocks/{height}", timeout=10)
    return {s["validator"] for s in block["certificate"]["signatures"]}


def wait_for(what: str, check: Any, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = check()
        except (OSError, NodeError):
            value = None
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def net(tmp_path: Path) -> Iterator[LocalNet]:
    network = LocalNet(tmp_path / "net")
    network.start_all()
    try:
        yield network
    finally:
        network.stop_all()


def test_committee_adds_then_removes_a_validator(net: LocalNet) -> None:
    """Goal: the issue's e2e — a 5th validator joins by committee vote, catches up and signs
    commit certificates; one of the original four is removed and stopped; commits never
    stall; proofs from before, between and after verify offline from genesis alone.
    Method: LocalNet with sample orgs; `node.py join` + `node.py run` for node4; CLI
    proposals and votes; anchors submitted by a background thread throughout; certificates
    read from GET /v1/blocks/{h}; proofs fetched as msgpack and checked with verify_evidence
    against genesis.json."""
    genesis = load_genesis(net.dir / "genesis.json")
    key = net.org_key()
    before = net.anchor_tx(key, "before any change")
    assert net.submit(0, before)["status"] == "committed"

    # node4: a folder from `node.py join`, started before it is a validator.
    port = net.base_port + 4  # LocalNet keeps it free; net.url(4) points there
    joined = subprocess.run([sys.executable, str(ROOT / "node.py"), "join", "--dir",
                             str(net.dir), "--name", "node4", "--port", str(port)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    node4_key = next(line.split()[-1] for line in joined.stdout.splitlines()
                     if line.strip().startswith("public key:"))
    command = next(line.strip() for line in joined.stdout.splitlines() if "gov propose" in line)
    assert command.startswith("govledger --node ") and f"address=127.0.0.1:{port}" in command
    net.start(4)
    net.wait_up(4)
    assert net.status(4)["is_validator"] is False
    with pytest.raises(NodeError) as refused:  # it could not get it ordered
        net.submit(4, net.anchor_tx(key, "to a node that is not a validator"))
    assert (refused.value.status, refused.value.code) == (503, "not_a_validator")

    load = Load(net, [0, 1, 2, 3])
    load.start()
    try:
        added = decide(net, shlex.split(command)[1:])
        effective = added["outcome"]["validators_effective_height"]
        wait_for("node4 to catch up and become a validator",
                 lambda: net.status(4)["height"] >= effective + 2 and net.status(4)[
                     "is_validator"], 90)
        assert len(net.status(0)["validators"]) == 5
        # node4 votes: the others' certificates of blocks after the change carry its key.
        wait_for("node4's key in another node's commit certificate", lambda: any(
            node4_key in signers(net, n, h) for n in (1, 2, 3)
            for h in range(effective, net.status(n)["height"] + 1)), 60)
        assert node4_key not in signers(net, 1, effective - 1)
        # Checkpoints of the five (quorum 4) become stable, so the watermarks move on.
        wait_for("a stable checkpoint signed by the five", lambda: all(
            net.status(n)["stable_checkpoint"] >= effective + 15 for n in range(5)), 60)
        load.targets = [1, 2, 3, 4]
        between = net.anchor_tx(key, "five validators")
        assert net.submit(4, between)["status"] == "committed"

        # Remove node0, one of the original four (the primary of view 0).
        node0_key = genesis.validators.validators[0].public_key.hex()
        proposer = str(net.dir / net.orgs[1]["key"])
        removed = decide(net, ["--node", net.url(1), "gov", "propose", "remove_validator",
                               f"public_key={node0_key}", "--key", proposer])
        gone = removed["outcome"]["validators_effective_height"]
        wait_for("the removal to take effect", lambda: all(
            net.status(n)["height"] >= gone + 2 for n in (1, 2, 3, 4)), 90)
        wait_for("node0 to see itself removed", lambda: net.status(0)["is_validator"] is False)
        assert net.status(1)["validators"] == ["node1", "node2", "node3", "node4"]
        with pytest.raises(NodeError) as refused:
            net.submit(0, net.anchor_tx(key, "to the removed node"))
        assert refused.value.code == "not_a_validator"
        net.stop(0)
        wait_for("a stable checkpoint signed by the remaining four", lambda: all(
            net.status(n)["stable_checkpoint"] >= gone + 15 for n in (1, 2, 3, 4)), 60)
        after = net.anchor_tx(key, "node0 removed and stopped")
        assert net.submit(2, after)["status"] == "committed"
        time.sleep(1.0)
    finally:
        load.stop()

    # The network kept committing throughout.
    committed = load.committed()
    assert len(committed) >= 30, (len(committed), load.errors[-5:])
    assert all(r[2]["result"]["ok"] for r in committed)
    times = [r[0] for r in committed]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) < 15, f"commits stalled for {max(gaps):.1f} s"
    assert not [e for e in load.errors if "node0" not in e], load.errors

    # Proofs verify offline from the genesis file alone, across both changes.
    for tx, links in ((before, 0), (between, 1), (after, 2)):
        digest = tx.payload["digest"]
        assert isinstance(digest, bytes)
        proof = evidence_proof(net, 3, digest)
        assert len(proof.header.links) == links
        record = verify_evidence(genesis, proof, digest)
        assert record["tx_id"] == tx.tx_id(genesis.crypto)
