"""Crash atomicity of the LevelDB store with a real process killed mid-append."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger.chain import verify_chain
from ledger.devnet import make_devnet
from ledger.store import LevelDBStore
from tests.conftest import ledger_registry

ROOT = Path(__file__).resolve().parents[2]
CYCLES = int(os.environ.get("GOVLEDGER_CRASH_CYCLES", "12"))


@pytest.mark.slow
def test_kill_during_appends_leaves_a_valid_prefix(tmp_path: Path) -> None:
    """Goal: after `kill -9` at any moment the store opens to a valid chain holding every
    block whose append returned — never half a block. Method: a child process appends blocks
    of 20 transactions in a loop and prints each acknowledged height; we SIGKILL it at random
    moments, reopen the store (its head check runs), run verify_chain over the whole store,
    and check the height is at least the last acknowledged one. Repeat, restarting the child
    on the same data. GOVLEDGER_CRASH_CYCLES sets the number of cycles (default 12)."""
    net = make_devnet("sm", 4, accounts=[("dept", "91350100M000100Y43", ["issuer"])])
    (tmp_path / "genesis.json").write_text(net.genesis.to_json())
    for i, k in enumerate(net.validator_keys):
        k.save(tmp_path / f"v{i}.pem")
    net.account_keys["dept"].save(tmp_path / "dept.pem")
    rng = random.Random(20261127)
    acknowledged = 0
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for cycle in range(CYCLES):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.unit.crash_child", str(tmp_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
        )
        assert child.stdout is not None
        # Wait for the first acknowledged append of this cycle, then kill at a random moment.
        first = child.stdout.readline()
        assert first.strip().isdigit(), child.stderr.read() if child.stderr else first
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(child.pid, signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
        heights = [int(x) for x in (first + out).split()]
        acknowledged = max([acknowledged, *heights])
        store = LevelDBStore(str(tmp_path / "db"), net.genesis.crypto)
        try:
            assert store.head_height() >= acknowledged, f"cycle {cycle}: acknowledged block lost"
            report = verify_chain(store, net.genesis, ledger_registry)
            assert report.ok, f"cycle {cycle}: {report.reason} at {report.broken_height}"
        finally:
            store.close()
    assert acknowledged >= CYCLES
