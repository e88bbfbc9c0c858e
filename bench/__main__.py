"""``python -m bench COMMAND``: measure govledger on this machine, beside its own limits.

Commands:
  limit        SM2 verifications/s per core and the implied ceiling for n nodes
  throughput   committed tx/s of a real 4-node network, latency at 10/50/80 % of peak, RSS
  state        one batch update of the state tree (see bench/state_bench.py)

Every command prints a table (or, with --json, ends with one JSON object) and
writes a JSON result with machine info under bench/results/. Results are
compared in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    lim = sub.add_parser("limit", help="signature verification limit line")
    lim.add_argument("--nodes", type=int, default=4)
    lim.add_argument("--suite", choices=("sm", "intl"), default="sm")
    lim.add_argument("--json", action="store_true")
    tp = sub.add_parser("throughput", help="committed tx/s and latency of a 4-node network")
    tp.add_argument("--seconds", type=float, default=20.0)
    tp.add_argument("--clients", type=int, default=64)
    tp.add_argument("--nodes", type=int, default=4)
    tp.add_argument("--suite", choices=("sm", "intl"), default="sm")
    tp.add_argument("--quick", action="store_true", help="a short run for CI smoke (< 1 min)")
    tp.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.command == "limit":
        from bench.common import limit_line, write_result

        figures = limit_line(args.nodes, args.suite)
        write_result("limit", {"nodes": args.nodes, "suite": args.suite}, figures)
        if not args.json:
            print(f"{figures['verifies_per_s_per_core']} {args.suite} verifies/s per core × "
                  f"{figures['cores']} cores ÷ {args.nodes} nodes = {figures['limit_tps']} tx/s")
        print(json.dumps(figures))
        return 0
    from bench import throughput

    return throughput.main(args)


if __name__ == "__main__":
    sys.exit(main())
