"""Shared helpers for the benchmarks: machine facts, the limit line, result files.

Every figure is printed beside the machine's own limit so the ratio means
something on a noisy shared machine; every run writes a JSON result
(machine, versions, parameters, figures) under ``bench/results/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.version.split()[0], "platform": platform.platform(),
        "machine": platform.machine(), "cpus": os.cpu_count(),
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        info["cpu"] = names[0] if names else "?"
    except OSError:
        info["cpu"] = "?"
    with contextlib.suppress(OSError):
        info["loadavg"] = os.getloadavg()
    from importlib.metadata import PackageNotFoundError, version

    for package in ("tongsuopy", "gmssl", "cryptography", "pynacl", "plyvel", "aiohttp", "msgpack"):
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = None
    from ledger.crypto import sm2_backend_name

    info["sm2_backend"] = sm2_backend_name()
    try:
        info["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                     text=True, cwd=Path(__file__).resolve().parent,
                                     timeout=5).stdout.strip()
    except OSError:
        info["git"] = None
    return info


def verifies_per_second(suite_name: str = "sm", seconds: float = 2.0) -> float:
    """Single-core signature verifications per second with the installed backend."""
    from ledger.crypto import get_suite

    suite = get_suite(suite_name)
    key = suite.generate_key()
    msg = b"x" * 200
    sig = key.sign("tx", msg)
    pub = key.public_key().raw
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            suite.verify(pub, "tx", msg, sig)
        n += 50
    return n / (time.perf_counter() - start)


def limit_line(nodes: int, suite_name: str = "sm") -> dict[str, float]:
    """The machine's ceiling: cores × verifies/s ÷ nodes (each node verifies each tx once)."""
    per_core = verifies_per_second(suite_name)
    cores = os.cpu_count() or 1
    return {"verifies_per_s_per_core": round(per_core, 1), "cores": cores, "nodes": nodes,
            "limit_tps": round(cores * per_core / nodes, 1)}


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def write_result(name: str, parameters: dict[str, Any], figures: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine(),
                                "parameters": parameters, "figures": figures},
                               indent=1, ensure_ascii=False), encoding="utf-8")
    return path


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    """User + system CPU seconds used so far by process ``pid`` — or by its thread ``tid``
    alone — (0.0 once it is gone)."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    try:
        with open(path, encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (e.g. a node's signature-check workers)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def cpu_snapshot(node_pids: list[int]) -> dict[str, float]:
    """CPU seconds so far of the node processes, their workers, and this process; and, of
    the nodes' share, what their main threads (the event loops) used — the rest is
    LevelDB's compaction threads (before session 7, also the worker pool's bookkeeping)."""
    nodes = sum(cpu_seconds(p) for p in node_pids)
    loops = sum(cpu_seconds(p, p) for p in node_pids)
    workers = sum(cpu_seconds(c) for p in node_pids for c in child_pids(p))
    return {"nodes": nodes, "node_event_loops": loops, "verifier_workers": workers,
            "load_generator": cpu_seconds(os.getpid())}
