"""Command line of the simulator: ``python -m consensus.sim``.

    python -m consensus.sim --seeds 1000 --nodes 4 --byzantine 1     # many seeds, summary
    python -m consensus.sim --seed 42 --nodes 4 --byzantine 1 -v     # replay one seed
    python -m consensus.sim --mutants --json                         # planted bugs must be caught

Seeds run in parallel worker processes (``--jobs``, default: all cores);
results do not depend on the number of jobs. With ``--json`` the last line
of output is one JSON object. The exit status is non-zero on any violation
(or, with ``--mutants``, if any mutant survives).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from consensus.mutants import MUTANTS
from consensus.replica import Replica
from consensus.sim import SimResult, replay_command, run_seed


def _run(args: tuple[int, int, int, str | None]) -> SimResult:
    seed, nodes, byzantine, mutant = args
    logging.getLogger("govledger").setLevel(logging.CRITICAL)
    cls: type[Replica] = MUTANTS[mutant] if mutant else Replica
    return run_seed(seed, nodes, byzantine, cls)


def _violation(result: SimResult) -> str:
    if result.safety_violations:
        return result.safety_violations[0]
    return result.liveness_violation or ""


def _pool(jobs: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=jobs)


def run_many(seeds: range, nodes: int, byzantine: int, jobs: int,
             mutant: str | None = None) -> dict[str, Any]:
    started = time.monotonic()
    summary: dict[str, Any] = {"nodes": nodes, "byzantine": byzantine, "seeds": 0,
                               "committed_blocks": 0, "pipelined": 0, "safety_violations": 0,
                               "liveness_violations": 0, "failed_seeds": [],
                               "viewless_forgeable_seeds": []}
    step = max(1, len(seeds) // 20)
    with _pool(jobs) as pool:
        work = [(s, nodes, byzantine, mutant) for s in seeds]
        for result in pool.map(_run, work, chunksize=4):
            summary["seeds"] += 1
            summary["committed_blocks"] += result.committed_blocks
            summary["pipelined"] += result.pipelined
            if result.viewless_forgeable:
                summary["viewless_forgeable_seeds"].append(result.seed)
            if result.safety_violations:
                summary["safety_violations"] += 1
            if result.liveness_violation:
                summary["liveness_violations"] += 1
            if not result.ok:
                summary["failed_seeds"].append(result.seed)
                why = _violation(result)
                print(f"FAIL seed {result.seed}: {why}\n  replay: "
                      f"{replay_command(result.seed, nodes, byzantine, mutant)}", flush=True)
            if summary["seeds"] % step == 0 or summary["seeds"] == len(seeds):
                print(f"seeds {summary['seeds']}/{len(seeds)}  blocks "
                      f"{summary['committed_blocks']} (pipelined {summary['pipelined']})  "
                      f"safety violations "
                      f"{summary['safety_violations']}  liveness violations "
                      f"{summary['liveness_violations']}  "
                      f"({time.monotonic() - started:.0f} s)", flush=True)
    summary["seconds"] = round(time.monotonic() - started, 1)
    return summary


def hunt_mutants(budget: int, start: int, jobs: int) -> dict[str, Any]:
    """Run each mutant through seeds until the simulator catches it."""
    out: dict[str, Any] = {}
    with _pool(jobs) as pool:
        for name in MUTANTS:
            began = time.monotonic()
            caught: SimResult | None = None
            for first in range(start, start + budget, jobs * 2):
                batch = range(first, min(first + jobs * 2, start + budget))
                results = list(pool.map(_run, [(s, 4, 1, name) for s in batch]))
                bad = [r for r in results if not r.ok]
                if bad:
                    caught = min(bad, key=lambda r: r.seed)
                    break
            entry: dict[str, Any] = {"caught": caught is not None,
                                     "seed": caught.seed if caught else None,
                                     "seconds": round(time.monotonic() - began, 1)}
            if caught is not None:
                entry["violation"] = _violation(caught)
            out[name] = entry
            status = f"caught at seed {entry['seed']}" if caught else f"SURVIVED {budget} seeds"
            print(f"mutant {name}: {status} ({entry['seconds']} s)", flush=True)
    return {"mutants": out}


def replay(seed: int, nodes: int, byzantine: int, mutant: str | None, verbose: bool) -> int:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    cls: type[Replica] = MUTANTS[mutant] if mutant else Replica
    r = run_seed(seed, nodes, byzantine, cls)
    print(json.dumps({"seed": r.seed, "ok": r.ok, "committed_blocks": r.committed_blocks,
                      "events": r.events, "view_changes": r.view_changes,
                      "pipelined": r.pipelined, "viewless_forgeable": r.viewless_forgeable,
                      "trace_hash": r.trace_hash, "faults": r.faults,
                      "safety_violations": r.safety_violations,
                      "liveness_violation": r.liveness_violation}, indent=1, default=str))
    return 0 if r.ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m consensus.sim", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=100, help="number of seeds to run")
    p.add_argument("--start", type=int, default=0, help="first seed")
    p.add_argument("--seed", type=int, help="replay this one seed and print its details")
    p.add_argument("--nodes", type=int, default=4, choices=(4, 7, 10))
    p.add_argument("--byzantine", type=int, default=1)
    p.add_argument("--mutant", choices=sorted(MUTANTS), help="run a planted bug")
    p.add_argument("--mutants", action="store_true", help="check every planted bug is caught")
    p.add_argument("--budget", type=int, default=200, help="seeds per mutant")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--json", action="store_true", help="end with one JSON object")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if not 0 <= args.byzantine <= (args.nodes - 1) // 3:
        p.error(f"--byzantine must be between 0 and {(args.nodes - 1) // 3} for {args.nodes} nodes")
    if args.seed is not None:
        return replay(args.seed, args.nodes, args.byzantine, args.mutant, args.verbose)
    if args.mutants:
        result = hunt_mutants(args.budget, args.start, args.jobs)
        if args.json:
            print(json.dumps(result))
        return 0 if all(m["caught"] for m in result["mutants"].values()) else 1
    summary = run_many(range(args.start, args.start + args.seeds), args.nodes, args.byzantine,
                       args.jobs, args.mutant)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['seeds']} seeds, {summary['committed_blocks']} blocks committed, "
              f"{summary['safety_violations']} safety and {summary['liveness_violations']} "
              f"liveness violations in {summary['seconds']} s")
        forgeable = summary["viewless_forgeable_seeds"]
        if forgeable:
            print(f"{len(forgeable)} seeds where certificates without views could have been "
                  f"forged (they name their view now), e.g. {forgeable[:5]}")
    return 1 if summary["failed_seeds"] else 0


if __name__ == "__main__":
    sys.exit(main())
