"""Benchmark: one batch update of the state tree, with SHA-256 and SM3.

Builds a tree of ``--keys`` keys in a dict node store, then times one
``update`` of ``--batch`` changes (by default 80 % overwrites of existing keys,
10 % inserts, 10 % deletes), with a cold cache (a fresh SparseMerkleTree) and
a warm one (the same instance again, on the same input root), with and
without node verification. Also reports hash calls, node reads and new nodes.

    .venv/bin/python bench/state_bench.py [--keys 100000] [--batch 3000]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import time
from collections.abc import Callable

from ledger.state import EMPTY_ROOT, SparseMerkleTree

REPEATS = 7


class DictStore:
    """The node store as a dict, counting reads."""

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}
        self.reads = 0

    def get_node(self, node_hash: bytes, height: int | None = None) -> bytes | None:
        self.reads += 1
        return self.nodes.get(node_hash)


def suite_hash(name: str) -> Callable[[bytes], bytes]:
    if name == "sha256":
        sha256 = hashlib.sha256
        return lambda data: sha256(data).digest()
    hashlib.new(name)  # fail early if OpenSSL lacks it

    def h(data: bytes) -> bytes:
        return hashlib.new(name, data).digest()

    return h


def ms(samples: list[float]) -> str:
    return f"{statistics.median(samples):.0f}/{min(samples):.0f} ms"


def run(hash_name: str, keys_n: int, batch_n: int, seed: int) -> None:
    rng = random.Random(seed)
    raw = suite_hash(hash_name)
    calls = 0

    def h(data: bytes) -> bytes:
        nonlocal calls
        calls += 1
        return raw(data)

    store = DictStore()
    keys = [b"account/%08d" % i for i in range(keys_n)]
    t0 = time.perf_counter()
    root, nodes = SparseMerkleTree(h, store).update(
        EMPTY_ROOT, {k: rng.randbytes(64) for k in keys}
    )
    store.nodes.update(nodes)
    print(
        f"[{hash_name}] built {keys_n} keys in {time.perf_counter() - t0:.2f} s, "
        f"{len(store.nodes)} nodes"
    )

    picked = rng.sample(keys, batch_n * 9 // 10)
    changes: dict[bytes, bytes | None] = {k: rng.randbytes(64) for k in picked[: batch_n * 8 // 10]}
    changes.update({k: None for k in picked[batch_n * 8 // 10 :]})
    fresh = batch_n - len(changes)
    changes.update({b"new/%08d" % i: rng.randbytes(64) for i in range(fresh)})
    for verify in (True, False):
        # Timed with the raw hash (no counting wrapper); cold = a fresh tree
        # instance, warm = the same instance updating the same root again.
        timings: dict[str, list[float]] = {"cold": [], "warm": []}
        for _ in range(REPEATS):
            tree = SparseMerkleTree(raw, store, verify_nodes=verify)
            for label in ("cold", "warm"):
                t0 = time.perf_counter()
                tree.update(root, changes)
                timings[label].append((time.perf_counter() - t0) * 1000)
        calls, store.reads = 0, 0
        _, new_nodes = SparseMerkleTree(h, store, verify_nodes=verify).update(root, changes)
        print(
            f"[{hash_name}] update of {len(changes)} changes, verify_nodes={verify}: "
            f"cold {ms(timings['cold'])}, warm {ms(timings['warm'])} (median/min of {REPEATS}); "
            f"cold: {calls} hashes, {store.reads} reads, {len(new_nodes)} new nodes"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hash", action="append", choices=["sha256", "sm3"])
    args = parser.parse_args()
    for name in args.hash or ["sha256", "sm3"]:
        run(name, args.keys, args.batch, args.seed)


if __name__ == "__main__":
    main()
