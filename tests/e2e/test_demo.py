"""The README's first command keeps working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_node_demo_runs_twice_on_the_same_directory(tmp_path: Path) -> None:
    """Goal: `python node.py demo` (what `python3 tasks.py demo` runs) succeeds on a fresh
    directory and again on the same one, keeping its data. Method: run it twice as a user
    would and check the verdict lines and the growing chain."""
    cmd = [sys.executable, str(ROOT / "node.py"), "demo", "--dir", str(tmp_path / "demo")]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    assert "VALID: anchored at height 1" in first.stdout
    assert "INVALID as expected" in first.stdout
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert second.returncode == 0, second.stderr
    assert "VALID: anchored at height 2" in second.stdout
    assert "OK: 2 blocks checked" in second.stdout
