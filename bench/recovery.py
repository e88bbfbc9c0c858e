"""Recovery: how long a node takes to restart, and how fast a lagging node catches up.

    python -m bench recovery [--txs 1000000] [--behind 10000] [--quick] [--json]

1. ``node.py init --nodes 4 --with-sample-orgs`` in a temporary folder.
2. Generates a real chain straight into node0's LevelDB store: evidence anchors
   signed by the sample departments (in worker processes), executed by the
   node's own registry, each block certified by 3 of the 4 validator keys —
   the same bytes a running network would have written, without the network.
3. **Restart**: ``node.py run`` on that store, timed from process start to the
   first ``GET /v1/status`` answer at the head height (the store's head check
   included), after a first cold start has been made and stopped.
4. **Catch-up**: a second chain of ``--behind`` small blocks is written to the
   stores of nodes 0–2 (copied), node3 starts empty; all four are started and
   the time node3 needs to reach the head is measured (state transfer: fetch,
   check the commit certificate, re-execute, append) → blocks/s.

The catch-up figure is printed beside the ceiling the signature checks alone put
on it: each fetched block costs a quorum of commit-certificate signatures (3 of 4);
its transactions' signatures are not checked again (the certificate vouches for
them: ``consensus.replica.Replica._check_certified``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from bench.common import write_result

ROOT = Path(__file__).resolve().parent.parent


def _sign(args: tuple[str, str, str, int, int, int]) -> list[bytes]:
    key_path, suite_name, chain_id, first, count, valid_until = args
    from ledger import evidence
    from ledger.crypto import load_private_key_file
    from ledger.tx import make_tx

    key = load_private_key_file(key_path, suite_name)
    return [make_tx(key, chain_id, evidence.TX_TYPE,
                    {"digest": n.to_bytes(8, "big") + os.urandom(24), "label": "r"}, n,
                    valid_until).encoded() for n in range(first, first + count)]


def init(directory: Path, base_port: int) -> None:
    subprocess.run([sys.executable, str(ROOT / "node.py"), "init", "--nodes", "4", "--dir",
                    str(directory), "--with-sample-orgs", "--base-port", str(base_port)],
                   check=True, capture_output=True, cwd=ROOT)


def generate(directory: Path, node: int, txs: int, per_block: int,
             progress: bool = True) -> dict[str, Any]:
    """Append ``txs`` anchors in blocks of ``per_block`` to node ``node``'s store."""
    from ledger.chain import Chain
    from ledger.crypto import load_private_key_file
    from ledger.devnet import Devnet
    from ledger.genesis import load_genesis
    from ledger.network import load_node_config
    from ledger.store import LevelDBStore
    from ledger.tx import Transaction
    from node import build_registry

    genesis = load_genesis(directory / "genesis.json")
    configs = [load_node_config(directory / f"node{i}" / "node.toml") for i in range(4)]
    vkeys = [load_private_key_file(c.key, genesis.suite) for c in configs]
    orgs = json.loads((directory / "keys" / "orgs.json").read_text())
    keys = [str(directory / o["key"]) for o in orgs]
    valid_until = int(time.time() * 1000) + 24 * 3_600_000
    started = time.monotonic()
    per_key = -(-txs // len(keys))
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        chunk = 5000
        jobs = [(k, genesis.suite, genesis.chain_id, 10_000_000 * i + off,
                 min(chunk, per_key - off), valid_until)
                for i, k in enumerate(keys) for off in range(0, per_key, chunk)]
        raw = [tx for batch in pool.map(_sign, jobs) for tx in batch][:txs]
    signed_s = time.monotonic() - started
    from ledger.codec import decode

    store = LevelDBStore(str(configs[node].data_dir / "ledger"), genesis.crypto)
    chain = Chain(store, genesis, build_registry())
    certifier = Devnet(genesis, vkeys)  # a quorum of the validators signs each commit
    proposer = vkeys[0].public_key().raw
    started = time.monotonic()
    last_time = 0
    blocks = 0
    for i in range(0, len(raw), per_block):
        batch = [decode(b, Transaction) for b in raw[i:i + per_block]]
        last_time = max(last_time + 1, int(time.time() * 1000))
        pending = chain.propose(batch, last_time, 0, proposer)
        chain.append(pending, certifier.certify(pending.header))
        blocks += 1
        if progress and blocks % 100 == 0:
            print(f"  generated {blocks} blocks, {i + len(batch)} transactions "
                  f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
    height = store.head_height()
    store.close()
    return {"blocks": blocks, "height": height, "txs": len(raw), "sign_s": round(signed_s, 1),
            "execute_s": round(time.monotonic() - started, 1)}


def _status(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url + "/v1/status", timeout=2) as resp:
            data: dict[str, Any] = json.loads(resp.read())
            return data
    except (OSError, urllib.error.URLError, ValueError):
        return None


def _start(directory: Path, node: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(ROOT / "node.py"), "run", "--config",
                             str(directory / f"node{node}" / "node.toml"),
                             "--log-level", "WARNING"],
                            cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _url(base_port: int, node: int) -> str:
    return f"http://127.0.0.1:{base_port + node}"


def time_restart(directory: Path, base_port: int, height: int, log: Path) -> float:
    """Seconds from process start to a status answer at ``height`` (second start)."""
    seconds = 0.0
    for _ in range(2):  # the first start warms the OS page cache, as on a running server
        t = time.monotonic()
        proc = _start(directory, 0, log)
        try:
            deadline = t + 300
            while time.monotonic() < deadline:
                st = _status(_url(base_port, 0))
                if st is not None and st.get("height") == height:
                    break
                if proc.poll() is not None:
                    raise RuntimeError(f"node0 exited with {proc.returncode}; see {log}")
                time.sleep(0.02)
            else:
                raise RuntimeError(f"node0 did not answer at height {height} within 300 s")
            seconds = time.monotonic() - t
        finally:
            _stop(proc)
    return seconds


def time_catch_up(directory: Path, base_port: int, height: int, log: Path) -> float:
    """Seconds node3 (empty store) needs to reach ``height`` with nodes 0–2 running."""
    src = directory / "node0" / "data"
    for i in (1, 2):
        shutil.rmtree(directory / f"node{i}" / "data", ignore_errors=True)
        shutil.copytree(src, directory / f"node{i}" / "data")
    procs = [_start(directory, i, log) for i in range(3)]
    try:
        for i in range(3):
            deadline = time.monotonic() + 120
            while _status(_url(base_port, i)) is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"node{i} did not start; see {log}")
                time.sleep(0.05)
        t = time.monotonic()
        procs.append(_start(directory, 3, log))
        deadline = t + 1800
        while time.monotonic() < deadline:
            st = _status(_url(base_port, 3))
            if st is not None and st.get("height", 0) >= height:
                return time.monotonic() - t
            time.sleep(0.1)
        raise RuntimeError(f"node3 did not catch up within 1800 s; see {log}")
    finally:
        for proc in procs:
            _stop(proc)


def run(txs: int, per_block: int, behind: int, base_port: int) -> dict[str, Any]:
    from bench.common import verifies_per_second

    work = Path(tempfile.mkdtemp(prefix="govledger-recovery-"))
    log = work / "nodes.log"
    try:
        big = work / "big"
        init(big, base_port)
        made = generate(big, 0, txs, per_block)
        restart_s = time_restart(big, base_port, made["height"], log)
        lag = work / "lag"
        init(lag, base_port)
        lagged = generate(lag, 0, behind, 1)
        catch_s = time_catch_up(lag, base_port, lagged["height"], log)
        per_core = verifies_per_second("sm")
        cores = os.cpu_count() or 1
        return {
            "restart_txs": made["txs"], "restart_blocks": made["blocks"],
            "restart_s": round(restart_s, 2), "generate": made,
            "behind_blocks": lagged["height"], "catch_up_s": round(catch_s, 1),
            "catch_up_blocks_per_s": round(lagged["height"] / catch_s, 1),
            "verifies_per_s_per_core": round(per_core, 0),
            # Each fetched block costs 3 SM2 checks (its commit certificate's quorum):
            # the machine cannot check signatures for more blocks/s than this, before any
            # execution, writing or serving.
            "catch_up_limit_blocks_per_s": round(cores * per_core / 3, 0),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(args: Any) -> int:
    txs, behind = (50_000, 1000) if args.quick else (args.txs, args.behind)
    figures = run(txs, args.per_block, behind, args.base_port)
    params = {"txs": txs, "per_block": args.per_block, "behind": behind, "quick": args.quick}
    path = write_result("recovery", params, figures)
    if not args.json:
        print(f"restart of a node holding {figures['restart_txs']} transactions "
              f"({figures['restart_blocks']} blocks): {figures['restart_s']} s (target ≤ 10 s)")
        print(f"catch-up of {figures['behind_blocks']} blocks: {figures['catch_up_s']} s = "
              f"{figures['catch_up_blocks_per_s']} blocks/s (target ≥ 500; limit: "
              f"{figures['catch_up_limit_blocks_per_s']} blocks/s = cores × "
              f"{figures['verifies_per_s_per_core']} SM2 verifies/s ÷ 3 per block)")
        print(f"result written to {path}")
    print(json.dumps(figures))
    return 0
