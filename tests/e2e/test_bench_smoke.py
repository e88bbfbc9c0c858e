"""The benchmarks run end to end (CI smoke): they must produce their figures, never a speed.

``python -m bench throughput --quick --json`` and a tiny ``recovery`` run start real node
processes; the test checks that each ends with one JSON object holding the figures the
issue names, and that work was actually done (transactions committed, blocks caught up).
It asserts nothing about how fast: speed is reported in bench/RESULTS.md, not tested.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from node import colocated_verify_workers
from tests.e2e.netharness import ROOT, free_base_port

pytestmark = pytest.mark.slow


def _bench(*argv: str) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-m", "bench", *argv, "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    figures = json.loads(last)
    assert isinstance(figures, dict)
    return figures


def test_throughput_quick_reports_its_figures() -> None:
    figures = _bench("throughput", "--quick")
    for key in ("committed_tps", "limit_tps", "p50_ms", "p99_ms", "peak_rss_mb",
                "cores_50pct", "blocks_per_s_50pct", "view_changes_50pct"):
        assert key in figures, key
    peak, anon = figures["peak_rss_mb"], figures.get("anon_mb_end")
    assert isinstance(peak, list) and isinstance(anon, list) and len(anon) == len(peak) == 4
    assert all(0 < a <= p for a, p in zip(anon, peak, strict=True))  # own memory within RSS
    cores = figures["cores_50pct"]
    assert isinstance(cores, dict)
    assert set(cores) == {"nodes", "node_event_loops", "verifier_workers", "load_generator"}
    assert cores["node_event_loops"] <= cores["nodes"]
    assert float(str(figures["committed_tps"])) > 0
    assert float(str(figures["limit_tps"])) > 0
    assert float(str(figures["limit_tps_after"])) > 0  # re-measured once the run is over
    # The open-loop point says whether the network kept up, and counts what did not commit
    # (a quiet 5 s at half the peak: everything commits).
    assert float(str(figures["achieved_tps_50pct"])) > 0
    assert figures["not_committed_50pct"] == 0
    # Four nodes run as `node.py up` would run them on this machine (and the run says so).
    assert figures["verify_workers"] == colocated_verify_workers(4)


def test_throughput_at_a_fixed_rate_reports_one_point() -> None:
    figures = _bench("throughput", "--rate", "20", "--seconds", "3")
    for key in ("committed_tps", "limit_tps", "p50_ms", "p99_ms", "blocks_per_s",
                "node_cpu_ms_per_block", "node_cpu_ms_per_tx", "limit_tps_after"):
        assert float(str(figures[key])) > 0, key
    # A quiet 20 tx/s on a fresh network: all of it commits, at the offered rate.
    assert figures["rate"] == 20.0 and figures["not_committed"] == 0
    assert figures["view_changes"] == 0  # a quiet load on an honest network: no view change
    assert 10 < float(str(figures["achieved_tps"])) <= 25
    used = figures["cores_used"]
    assert isinstance(used, dict) and set(used) >= {"nodes", "load_generator"}
    assert figures["cores"] == os.cpu_count()  # the machine's, beside the limit line
    for bad in ("0", "-5", "nan", "many"):
        proc = subprocess.run([sys.executable, "-m", "bench", "throughput", "--rate", bad],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and "argument --rate" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


def test_recovery_reports_restart_and_catch_up() -> None:
    # 300 blocks behind: more than two fetch ranges, so the lagging node also takes the
    # path with a second signature worker, and must still reach the head.
    figures = _bench("recovery", "--txs", "600", "--per-block", "200", "--behind", "300",
                     "--base-port", str(free_base_port(4)))
    assert figures["restart_blocks"] == 3
    assert figures["behind_blocks"] == 300
    assert float(str(figures["restart_s"])) > 0 and float(str(figures["catch_up_s"])) > 0


def test_execution_quick_reports_a_replicas_cost_per_transaction() -> None:
    figures = _bench("execution", "--quick")
    # Every licence of the workload is issued: the figures are of real work, not refusals.
    assert figures["ok"] == figures["txs"] == 600, figures.get("first_error")
    assert figures["state_keys_per_tx"] == 2.0  # the certificate and its holder's index
    for key in ("check_ms_per_tx", "tree_ms_per_tx", "verify_ms", "check_in_verifies"):
        assert float(str(figures[key])) > 0, key
    assert float(str(figures["tree_ms_per_tx"])) < float(str(figures["check_ms_per_tx"]))
