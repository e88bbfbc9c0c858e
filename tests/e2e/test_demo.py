"""The README's first command (`python node.py demo`) and the ledger tour keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.netharness import free_base_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_node_demo_creates_loads_and_restarts(tmp_path: Path) -> None:
    """Goal: `python node.py demo` creates a 4-node network with sample organisations, loads
    the sample data once and prints the dashboard URL; run again on the same directory it
    restarts that network with its data and does not load the samples twice. Method: run it
    twice with --check (load, print, stop) on free ports, from a working directory that is
    not the repository and with the default folder, ./govledger-demo, as the README has it
    (the nodes once looked for their configs under the repository instead)."""
    port = free_base_port(4)
    cmd = [sys.executable, str(ROOT / "node.py"), "demo", "--base-port", str(port), "--check"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "created a 4-node demo network" in first.stdout
    assert "sample documents" in first.stdout
    assert f"dashboard http://127.0.0.1:{port}/" in first.stdout
    assert (tmp_path / "govledger-demo" / "keys" / "orgs.json").exists()
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "sample data was loaded before" in second.stdout


@pytest.mark.slow
def test_ledger_tour_runs_twice_on_the_same_directory(tmp_path: Path) -> None:
    """Goal: the ledger-layer tour (`python -m ledger.demo`) succeeds on a fresh directory and
    again on the same one, keeping its data. Method: run it twice and check the verdicts."""
    cmd = [sys.executable, "-m", "ledger.demo", "--dir", str(tmp_path / "tour")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    assert "VALID: anchored at height 1" in first.stdout
    assert "INVALID as expected" in first.stdout
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert second.returncode == 0, second.stderr
    assert "VALID: anchored at height 2" in second.stdout
    assert "OK: 2 blocks checked" in second.stdout
