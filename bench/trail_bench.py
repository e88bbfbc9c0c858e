"""Benchmark: fund-trail query latency at 10k and at 1M recorded flows.

The claim under test (issue 6): trail queries are indexed, so their cost grows with the
size of the answer, not of the ledger. The benchmark writes N flows directly into a
LevelDB store — the fund records and index entries exactly as ``fiscal.handlers`` lays
them out (:mod:`fiscal.model`), skipping consensus and execution, which a query never
touches — as many identical budget trees (1 appropriation → 3 cities → 3 districts each
→ 8 payments per district: 85 flows per tree). It then runs, on trees picked at random
over the whole store, the forward trail of a tree, the backward trail of a payment and a
balance sheet, and reports p50/p99 latency per size and the ratio largest / smallest.
Every answer has the same size, so a ratio near 1 means the ledger's size does not
matter.

    .venv/bin/python bench/trail_bench.py                 # 10k and 1M flows (~3 min, ~1 GB)
    .venv/bin/python bench/trail_bench.py --quick         # 2k and 50k flows (~10 s)
    .venv/bin/python bench/trail_bench.py --sizes 10000,100000 --queries 3000 --json

Stores are written under ``--dir`` (default: a temporary folder, removed afterwards;
``--keep`` keeps it; with ``--dir D --reuse`` a later run measures the stores an earlier
run left in D without rebuilding them) and compacted before measuring, as a running
node's store settles; a JSON result goes to ``bench/results/trail-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import percentile  # noqa: E402
from fiscal import queries  # noqa: E402
from fiscal.model import (  # noqa: E402
    IX_FLOW,
    IX_ROOT,
    Fund,
    encode_fund,
    fund_key,
    in_prefix,
    out_prefix,
    payee_prefix,
    seq_bytes,
)
from ledger.codec import Value, encode_value  # noqa: E402
from ledger.crypto import get_suite  # noqa: E402
from ledger.ids import make_uscc  # noqa: E402
from ledger.store import LevelDBStore  # noqa: E402

CITIES, DISTRICTS, PAYMENTS = 3, 3, 8
FLOWS_PER_TREE = 1 + CITIES + CITIES * DISTRICTS + CITIES * DISTRICTS * PAYMENTS
PAYEES = 5000
DAY0 = 20454  # 2026-01-01
T0 = 1_767_225_600_000


@dataclass
class Writer:
    """Writes fund records (state) and flows (index) in the store's LevelDB layout."""

    store: LevelDBStore
    seq: int = 1
    pending: int = 0

    def __post_init__(self) -> None:
        self.batch = self.store.db.write_batch()
        self.rng = random.Random(7)
        self.payees = [make_uscc("9", "1", "350100", f"MA{n:06d}") for n in range(PAYEES)]
        self.payment_ids: list[bytes] = []

    def _put(self, key: bytes, value: bytes) -> None:
        self.batch.put(key, value)
        self.pending += 1
        if self.pending >= 50_000:
            self.batch.write()
            self.batch = self.store.db.write_batch()
            self.pending = 0

    def close(self) -> None:
        self.batch.write()

    def fund(self, fund: Fund) -> None:
        self._put(b"s:" + fund_key(fund.tag), encode_fund(fund))

    def flow(self, kind: str, amount: int, source: str | None, target: str | None,
             org: str, **extra: Value) -> bytes:
        seq = self.seq
        self.seq += 1
        flow_id = self.rng.randbytes(32)
        record: dict[str, Value] = {
            "flow_id": flow_id, "seq": seq, "kind": kind, "amount": amount, "from": source,
            "to": target, "org": org, "officer": "bench", "sender": b"\x04" * 65,
            "height": seq, "time": T0 + seq, "memo": "", **extra}
        encoded = encode_value(record)
        self._put(b"x:" + IX_FLOW + flow_id, encoded)
        if source is not None:
            self._put(b"x:" + out_prefix(source) + seq_bytes(seq), encoded)
        if target is not None:
            self._put(b"x:" + in_prefix(target) + seq_bytes(seq), encoded)
        if kind == "PAYMENT":
            self._put(b"x:" + payee_prefix(str(extra["payee_key"])) + seq_bytes(seq), flow_id)
            self.payment_ids.append(flow_id)
        if kind == "APPROPRIATION":
            assert target is not None
            self._put(b"x:" + IX_ROOT + seq_bytes(seq), target.encode())
        return flow_id

    def tree(self, n: int) -> str:
        """One budget tree (FLOWS_PER_TREE flows); returns its root tag."""
        root = f"B{n:07d}"
        province = make_uscc("1", "1", "350000", f"MB{n % 900000:06d}")
        per_district = PAYMENTS * 1_000_000
        per_city = DISTRICTS * per_district
        total = CITIES * per_city
        base = Fund(tag=root, root=root, parent=None, depth=0, holder=province,
                    holder_name="省财政厅", region="350000000", year=2026, doc_no=f"闽财预{n}号",
                    function_code="2050202", project="bench", project_end="2026-12-31",
                    direct=False, approved_day=DAY0, received=total, allocated=total, paid=0,
                    returned_in=0, returned_out=0, children=CITIES, created_height=n,
                    created_time=T0, last_move_day=DAY0)
        self.fund(base)
        self.flow("APPROPRIATION", total, None, root, province, doc_no=base.doc_no, year=2026,
                  function_code="2050202", project="bench", region="350000000")
        for c in range(1, CITIES + 1):
            city = f"{root}.{c}"
            self.fund(_child(base, city, root, 1, per_city, per_city, DISTRICTS, 0))
            self.flow("ALLOCATION", per_city, root, city, province, to_org=province,
                      to_name="市财政局", region="350100000", alerts=[])
            for d in range(1, DISTRICTS + 1):
                district = f"{city}.{d}"
                self.fund(_child(base, district, city, 2, per_district, 0, 0, per_district))
                self.flow("ALLOCATION", per_district, city, district, province,
                          to_org=province, to_name="区财政局", region="350102000", alerts=[])
                for _ in range(PAYMENTS):
                    payee = self.rng.choice(self.payees)
                    self.flow("PAYMENT", 1_000_000, district, None, province,
                              payee={"kind": "organisation", "uscc": payee, "name": ""},
                              payee_key="U" + payee, purpose="bench", function_code="2050202",
                              value_date="2026-01-01", region="350102000", root=root,
                              contract_digest=None, invoice_digest=None, alerts=[])
        return root


def _child(base: Fund, tag: str, parent: str, depth: int, received: int, allocated: int,
           children: int, paid: int) -> Fund:
    return replace(base, tag=tag, parent=parent, depth=depth, received=received,
                   allocated=allocated, children=children, paid=paid,
                   region="350100000" if depth == 1 else "350102000")


def build(path: Path, flows: int, reuse: bool) -> tuple[LevelDBStore, list[str], list[bytes],
                                                      float]:
    """The store for ``flows`` flows: written (then compacted, as a running node's store
    settles), or with ``reuse`` opened again if a previous run left it complete."""
    meta = path / "bench-meta.json"
    if reuse and meta.exists():
        saved = json.loads(meta.read_text())
        store = LevelDBStore(str(path), get_suite("sm"), check=False)
        return (store, [f"B{n:07d}" for n in range(saved["trees"])],
                [bytes.fromhex(p) for p in saved["payments"]], 0.0)
    shutil.rmtree(path, ignore_errors=True)
    store = LevelDBStore(str(path), get_suite("sm"), check=False)
    writer = Writer(store)
    started = time.perf_counter()
    roots = [writer.tree(n) for n in range(max(1, flows // FLOWS_PER_TREE))]
    writer.close()
    store.db.compact_range()
    sample = random.Random(3).sample(writer.payment_ids, min(20_000, len(writer.payment_ids)))
    meta.write_text(json.dumps({"trees": len(roots), "payments": [p.hex() for p in sample]}))
    return store, roots, sample, time.perf_counter() - started


KINDS = ("forward_trail", "backward_trail", "balance_sheet")
ROUNDS = 10


def _query(kind: str, store: LevelDBStore, roots: list[str], payments: list[bytes],
           rng: random.Random) -> object:
    if kind == "forward_trail":
        return queries.forward_trail(store, rng.choice(roots))
    if kind == "backward_trail":
        return queries.backward_trail(store, rng.choice(payments))
    return queries.balance_sheet(store, rng.choice(roots))


def measure(stores: dict[int, tuple[LevelDBStore, list[str], list[bytes]]], count: int
            ) -> dict[int, dict[str, dict[str, float]]]:
    """p50/p99/mean per store and query kind. The stores take turns in ROUNDS rounds, so
    that load from elsewhere on the machine falls on every size alike."""
    rng = random.Random(11)
    times: dict[int, dict[str, list[float]]] = {size: {k: [] for k in KINDS} for size in stores}
    for kind in KINDS:
        for store, roots, payments in stores.values():  # warm-up
            for _ in range(min(200, count // 5)):
                _query(kind, store, roots, payments, rng)
        for _ in range(ROUNDS):
            for size, (store, roots, payments) in stores.items():
                for _ in range(max(1, count // ROUNDS)):
                    start = time.perf_counter()
                    answer = _query(kind, store, roots, payments, rng)
                    times[size][kind].append((time.perf_counter() - start) * 1000)
                    assert answer is not None
    return {size: {kind: {"p50_ms": round(percentile(t, 50), 3),
                          "p99_ms": round(percentile(t, 99), 3),
                          "mean_ms": round(sum(t) / len(t), 3)}
                   for kind, t in by_kind.items()}
            for size, by_kind in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,1000000", help="recorded flows per store")
    p.add_argument("--queries", type=int, default=2000, help="timed queries per kind")
    p.add_argument("--quick", action="store_true", help="2k and 50k flows, 500 queries")
    p.add_argument("--dir", help="where to write the stores (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the stores")
    p.add_argument("--reuse", action="store_true",
                   help="reuse complete stores left in --dir by an earlier run")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = p.parse_args(argv)
    sizes = [2000, 50_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    count = 500 if args.quick else args.queries
    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="trail-bench-"))
    results: dict[str, Any] = {}
    stores: dict[int, tuple[LevelDBStore, list[str], list[bytes]]] = {}
    try:
        for size in sizes:
            store, roots, payments, seconds = build(base / f"flows-{size}", size, args.reuse)
            stores[size] = (store, roots, payments)
            results[str(size)] = {"flows": len(roots) * FLOWS_PER_TREE, "trees": len(roots),
                                  "build_s": round(seconds, 1)}
            if not args.json:
                print(f"{len(roots) * FLOWS_PER_TREE:>9,} flows in {len(roots):,} trees "
                      f"({'reused' if not seconds else f'built in {seconds:.1f} s'})",
                      flush=True)
        for size, figures in measure(stores, count).items():
            results[str(size)].update(figures)
            if not args.json:
                print(f"{size:>9,} flows: " + "  ".join(
                    f"{k} p50 {v['p50_ms']:.2f} ms p99 {v['p99_ms']:.2f} ms"
                    for k, v in figures.items()), flush=True)
    finally:
        for store, _, _ in stores.values():
            store.close()
        if not args.keep and not args.dir:
            shutil.rmtree(base, ignore_errors=True)
    small, large = results[str(sizes[0])], results[str(sizes[-1])]
    ratios = {k: {"p50": round(large[k]["p50_ms"] / small[k]["p50_ms"], 2),
                  "p99": round(large[k]["p99_ms"] / small[k]["p99_ms"], 2)}
              for k in KINDS}
    summary = {"answer_flows_forward": FLOWS_PER_TREE, "queries_per_kind": count,
               "sizes": results, f"ratio_{sizes[-1]}_over_{sizes[0]}": ratios}
    try:
        from bench.common import write_result

        where = write_result("trail", {"sizes": sizes, "queries": count}, summary)
    except ImportError:
        where = None
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        for k, r in ratios.items():
            print(f"{k}: {sizes[-1]:,} / {sizes[0]:,} flows latency ratio p50 {r['p50']} "
                  f"p99 {r['p99']}")
        if where:
            print(f"result written to {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
