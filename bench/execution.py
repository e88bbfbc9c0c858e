"""A replica's per-transaction work, in one process: what each node pays besides signatures.

    python -m bench execution [--block 130] [--blocks 40] [--quick] [--json]

The throughput benchmark runs four nodes, their signature workers and the load generator
on the same cores, so a change worth a few per cent of a node's CPU is lost in the noise
of a shared machine (its SM2 speed has moved 2x within an hour here). This one takes the
deterministic part of a node's work per block out of the network and times it with the
process's own CPU clock:

1. A primary ``Chain`` proposes blocks of ``--block`` SM2-signed ``cert.issue``
   transactions (the throughput workload: one business licence per new enterprise),
   executing them (``Chain.propose``).
2. A backup decodes each transaction as gossip would bring it, then the proposal, and
   re-executes the block (``Chain.check_proposal``); the state tree's share of that is
   timed apart. Both chains live in this one process, so the backup's decodes meet the
   codec's cache of decoded transactions that the primary's filled: ``decode`` is one
   fresh decode per transaction and two cached ones, where a real backup pays one of
   each (its gossip's, then its proposal's).
3. Both append their block (one synced LevelDB write each).

Signatures are checked by the nodes' workers, not here (``signature_ok`` is given): their
cost is printed beside the figures as one SM2 verify, timed in the same process between
the blocks (``VERIFIES_PER_BLOCK`` after each), so
``check_ms_per_tx / verify_ms`` says how many signature checks a backup's execution of a
transaction is worth — a ratio that holds on a slow or a fast machine. The first five
blocks (the cache warming, the tree's top filling) are not counted.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import write_result

WARMUP_BLOCKS = 5
VERIFIES_PER_BLOCK = 25


def _timed(record: dict[str, float], name: str, f: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t = time.process_time()
        try:
            return f(*args, **kwargs)
        finally:
            record[name] = record.get(name, 0.0) + time.process_time() - t
    return wrapper


def run(block_txs: int, blocks: int) -> dict[str, Any]:
    import node as node_module
    from bench.throughput import presign
    from ledger.block import Block, CommitCertificate
    from ledger.chain import Chain
    from ledger.codec import decode
    from ledger.store import LevelDBStore
    from ledger.tx import Transaction
    from tests.e2e.netharness import LocalNet

    workdir = Path(tempfile.mkdtemp(prefix="govledger-bench-exec-"))
    try:
        net = LocalNet(workdir / "net", nodes=4, suite="sm")  # genesis and keys; never started
        raw = presign(net, block_txs * blocks)
        genesis, registry = net.genesis, node_module.build_registry()
        primary = Chain(LevelDBStore(str(workdir / "primary"), genesis.crypto), genesis,
                        registry)
        backup = Chain(LevelDBStore(str(workdir / "backup"), genesis.crypto), genesis, registry)
        tree_cpu: dict[str, float] = {}
        backup._tree.update = _timed(tree_cpu, "tree", backup._tree.update)  # type: ignore[method-assign]
        cpu = {"decode": 0.0, "propose": 0.0, "check": 0.0, "append": 0.0}
        committed = keys = nodes = counted = 0
        first_error = ""
        # One SM2 verify, timed between the blocks (the machine's speed drifts within a
        # run, so a figure taken before or after would skew the ratio).
        key = genesis.crypto.generate_key()
        message, verify_cpu, verifies = b"x" * 200, 0.0, 0
        signature, public = key.sign("tx", message), key.public_key().raw
        start_ms = int(time.time() * 1000)  # the transactions are valid for an hour from now
        for b in range(blocks):
            if b == WARMUP_BLOCKS:
                cpu = dict.fromkeys(cpu, 0.0)
                tree_cpu.clear()
                keys = nodes = counted = verifies = 0
                verify_cpu = 0.0
            chunk = raw[b * block_txs:(b + 1) * block_txs]
            t0 = time.process_time()
            txs = [decode(tx, Transaction) for tx in chunk]  # the primary's admission
            t1 = time.process_time()
            proposed = primary.propose(txs, start_ms + b * 100, 0, b"\x00" * 33,
                                       signature_ok=lambda tx: True)
            proposal = proposed.block.encoded()
            t2 = time.process_time()
            for tx in chunk:  # the backup: gossip, then the proposal
                decode(tx, Transaction)
            block = decode(proposal, Block)
            t3 = time.process_time()
            checked = backup.check_proposal(block, signature_ok=lambda tx: True)
            t4 = time.process_time()
            for chain, pending in ((primary, proposed), (backup, checked)):
                header = pending.block.header
                chain.append(pending, CommitCertificate(header.height, header.view,
                                                        header.block_hash(genesis.crypto), []))
            t5 = time.process_time()
            for _ in range(VERIFIES_PER_BLOCK):
                genesis.crypto.verify(public, "tx", message, signature)
            t6 = time.process_time()
            cpu["decode"] += (t1 - t0) + (t3 - t2)
            cpu["propose"] += t2 - t1
            cpu["check"] += t4 - t3
            cpu["append"] += t5 - t4
            verify_cpu += t6 - t5
            verifies += VERIFIES_PER_BLOCK
            committed += sum(1 for r in checked.execution.results if r.ok)
            first_error = first_error or next(
                (f"{r.code}: {r.reason}" for r in checked.execution.results if not r.ok), "")
            keys += len(checked.execution.state_changes)
            nodes += len(checked.state_nodes)
            counted += len(chunk)
        primary.store.close()
        backup.store.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    verify_ms = verify_cpu * 1000 / verifies
    per_tx = {k: round(v * 1000 / counted, 4) for k, v in cpu.items()}
    tree_ms = round(tree_cpu.get("tree", 0.0) * 1000 / counted, 4)
    return {
        "txs": block_txs * blocks, "ok": committed, "counted_txs": counted,
        "first_error": first_error,
        # decode: the primary's decode of each transaction plus the backup's of the gossip
        # and the proposal; append: both chains' (so half of it is one node's).
        "ms_per_tx": per_tx,
        "check_ms_per_tx": per_tx["check"], "tree_ms_per_tx": tree_ms,
        "handlers_and_roots_ms_per_tx": round(per_tx["check"] - tree_ms, 4),
        "backup_ms_per_tx": round(per_tx["check"] + per_tx["append"] / 2
                                  + per_tx["decode"] / 2, 4),
        "state_keys_per_tx": round(keys / counted, 2),
        "tree_nodes_written_per_tx": round(nodes / counted, 2),
        "verify_ms": round(verify_ms, 4),
        "check_in_verifies": round(per_tx["check"] / verify_ms, 3),
    }


def main(args: Any) -> int:
    block_txs, blocks = (50, 12) if args.quick else (args.block, args.blocks)
    if block_txs < 1 or blocks <= WARMUP_BLOCKS:
        raise SystemExit(f"need --block >= 1 and --blocks > {WARMUP_BLOCKS}")
    figures = run(block_txs, blocks)
    write_result("execution", {"block": block_txs, "blocks": blocks, "quick": args.quick},
                 figures)
    if not args.json:
        per = figures["ms_per_tx"]
        if figures["first_error"]:
            print(f"not every transaction committed; the first refusal: {figures['first_error']}")
        print(f"{figures['ok']} of {figures['txs']} cert.issue committed; CPU ms per "
              f"transaction over the last {blocks - WARMUP_BLOCKS} blocks of {block_txs}:")
        print(f"  backup re-executes (check_proposal) {per['check']:.3f} "
              f"(state tree {figures['tree_ms_per_tx']:.3f}, handlers and roots "
              f"{figures['handlers_and_roots_ms_per_tx']:.3f})")
        print(f"  primary proposes {per['propose']:.3f}; decoding {per['decode']:.3f}; "
              f"appending (both) {per['append']:.3f}")
        print(f"  a backup in all: {figures['backup_ms_per_tx']:.3f} ms; "
              f"{figures['state_keys_per_tx']} state keys and "
              f"{figures['tree_nodes_written_per_tx']} tree nodes written per transaction")
        print(f"beside it: one SM2 verify {figures['verify_ms']:.3f} ms — a backup's "
              f"execution of a transaction costs {figures['check_in_verifies']} verifies")
    print(json.dumps(figures))
    return 0
