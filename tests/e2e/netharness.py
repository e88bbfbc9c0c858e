"""Real node processes on 127.0.0.1 for end-to-end tests.

A :class:`LocalNet` initialises a network with ``python node.py init`` in a
temporary directory on free ports, starts each node as its own
``python node.py run`` process, and offers what the tests need: submit
signed transactions, read statuses, kill -9 / stop / restart single nodes.
Every wait is bounded; only processes started here are ever signalled.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from client.sdk import NodeError, request, submit
from ledger import evidence
from ledger.crypto import PrivateKey, load_private_key_file
from ledger.genesis import Genesis, load_genesis
from ledger.tx import Transaction, make_tx

ROOT = Path(__file__).resolve().parents[2]
_nonce = itertools.count(int(time.time() * 1000) % 10**9 * 1000)


def free_base_port(count: int) -> int:
    """A base port with ``count`` consecutive free ports on 127.0.0.1."""
    for _ in range(200):
        # Below the ephemeral range (32768+ on Linux), so a client socket can never take a
        # node's port before it listens, nor connect to itself while polling it.
        base = 20000 + (os.getpid() * 37 + int(time.time() * 1000)) % 12000
        base -= base % 10
        ok = True
        for port in range(base, base + count):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
        time.sleep(0.01)
    raise RuntimeError("no free ports")


class LocalNet:
    def __init__(self, directory: Path, nodes: int = 4, suite: str = "sm",
                 sample_orgs: bool = True) -> None:
        self.dir = directory
        self.n = nodes
        # Two spare ports: nodes added later (`node.py join --port base+i`) use url(i) too.
        self.base_port = free_base_port(nodes + 2)
        cmd = [sys.executable, str(ROOT / "node.py"), "init", "--nodes", str(nodes), "--dir",
               str(directory), "--suite", suite, "--base-port", str(self.base_port),
               "--chain-id", "govledger-e2e"]
        if sample_orgs:
            cmd.append("--with-sample-orgs")
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT, timeout=120)
        self.genesis: Genesis = load_genesis(directory / "genesis.json")
        orgs_file = directory / "keys" / "orgs.json"
        self.orgs = json.loads(orgs_file.read_text()) if sample_orgs else []
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.logs: dict[int, Path] = {}
        self.run_args: list[str] = []  # extra `node.py run` arguments for every node

    # -- processes -------------------------------------------------------------------

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.base_port + i}"

    def start(self, i: int) -> None:
        assert i not in self.procs or self.procs[i].poll() is not None
        log = self.dir / f"node{i}.log"
        self.logs[i] = log
        with open(log, "ab") as out:
            self.procs[i] = subprocess.Popen(
                [sys.executable, str(ROOT / "node.py"), "run", "--config",
                 str(self.dir / f"node{i}" / "node.toml"), "--log-level", "INFO",
                 *self.run_args],
                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)

    def start_all(self) -> None:
        for i in range(self.n):
            self.start(i)
        for i in range(self.n):
            self.wait_up(i)

    def wait_up(self, i: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.procs[i].poll() is not None:
                raise AssertionError(f"node{i} exited:\n{self.tail(i)}")
            try:
                self.status(i)
                return
            except (OSError, NodeError):
                time.sleep(0.2)
        raise AssertionError(f"node{i} did not come up:\n{self.tail(i)}")

    def kill(self, i: int) -> None:
        """kill -9: no chance to clean up."""
        proc = self.procs[i]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)

    def stop(self, i: int) -> int:
        proc = self.procs[i]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise AssertionError(f"node{i} did not stop on SIGTERM:\n{self.tail(i)}") from None
        return proc.returncode

    def stop_all(self) -> None:
        for i in list(self.procs):
            with contextlib.suppress(AssertionError):
                self.stop(i)

    def tail(self, i: int, lines: int = 40) -> str:
        if i not in self.logs or not self.logs[i].exists():
            return ""
        return "\n".join(self.logs[i].read_text(errors="replace").splitlines()[-lines:])

    # -- API ------------------------------------------------------------------------------

    def status(self, i: int) -> dict[str, Any]:
        value: dict[str, Any] = request(self.url(i) + "/v1/status", timeout=5)
        return value

    def org_key(self, role: str = "issuer") -> PrivateKey:
        org = next(o for o in self.orgs if role in o["roles"])
        return load_private_key_file(self.dir / org["key"], self.genesis.suite)

    def anchor_tx(self, key: PrivateKey, label: str = "e2e", valid_ms: int = 600_000
                  ) -> Transaction:
        n = next(_nonce)
        digest = hashlib.sha256(f"{label}/{n}".encode()).digest()
        return make_tx(key, self.genesis.chain_id, evidence.TX_TYPE,
                       {"digest": digest, "label": label}, n, int(time.time() * 1000) + valid_ms)

    def submit(self, i: int, tx: Transaction, wait: bool = True) -> dict[str, Any]:
        value: dict[str, Any] = submit(self.url(i), tx, wait=wait)
        return value

    def wait_height(self, nodes: list[int], height: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if all(self.status(i)["height"] >= height for i in nodes):
                    return
            except (OSError, NodeError):
                pass
            time.sleep(0.2)
        heights = {}
        for i in nodes:
            try:
                heights[i] = self.status(i)["height"]
            except (OSError, NodeError) as exc:
                heights[i] = repr(exc)
        raise AssertionError(f"nodes {nodes} did not reach height {height}: {heights}")

    def block_hash(self, i: int, height: int) -> str:
        value: str = request(f"{self.url(i)}/v1/blocks/{height}", timeout=10)["block_hash"]
        return value
