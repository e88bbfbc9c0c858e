"""``python -m bench COMMAND``: measure govledger on this machine, beside its own limits.

Commands:
  limit        SM2 verifications/s per core and the implied ceiling for n nodes
  throughput   committed tx/s of a real 4-node network, latency at 10/50/80 % of peak, RSS
  verify       offline certificate bundle verifications per second (one core)
  trail        fund trail p50 / p99 at 10k and 1M recorded flows, and their ratio
  recovery     restart time of a node holding 1M transactions; catch-up blocks/s
  execution    a replica's CPU per transaction (decode, execute, state tree, append) in
               one process, beside one SM2 verify

Every command prints a table (or, with --json, ends with one JSON object) and
writes a JSON result with machine info under bench/results/. Results are
compared in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import sys


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: must be a positive number")
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    lim = sub.add_parser("limit", help="signature verification limit line")
    lim.add_argument("--nodes", type=int, default=4)
    lim.add_argument("--suite", choices=("sm", "intl"), default="sm")
    lim.add_argument("--json", action="store_true")
    tp = sub.add_parser("throughput", help="committed tx/s and latency of a 4-node network")
    tp.add_argument("--seconds", type=_positive, default=20.0)
    tp.add_argument("--clients", type=int, default=64)
    tp.add_argument("--nodes", type=int, default=4)
    tp.add_argument("--suite", choices=("sm", "intl"), default="sm")
    tp.add_argument("--workload", choices=("cert", "anchor"), default="cert",
                    help="SM2-signed certificate issues (default) or evidence anchors")
    tp.add_argument("--pipeline-depth", type=int, choices=range(1, 9), default=1,
                    help="blocks in flight at once (node.toml [consensus] pipeline_depth)")
    tp.add_argument("--verify-workers", type=int, choices=range(0, 5), default=None,
                    help="each node's signature worker processes (node.py run "
                         "--verify-workers; 0: checks in the event loop); default as "
                         "node.py up: 0 when the nodes are at least as many as the cores")
    tp.add_argument("--rate", type=_positive, default=None,
                    help="instead: offer this many tx/s to a fresh network for --seconds "
                         "(one open-loop point; see bench/throughput.py)")
    tp.add_argument("--quick", action="store_true", help="a short run for CI smoke (< 1 min)")
    tp.add_argument("--json", action="store_true")
    rc = sub.add_parser("recovery", help="restart time with many transactions; catch-up speed")
    rc.add_argument("--txs", type=int, default=1_000_000,
                    help="transactions in the restarted store")
    rc.add_argument("--per-block", type=int, default=1000)
    rc.add_argument("--behind", type=int, default=10_000, help="blocks the lagging node misses")
    rc.add_argument("--base-port", type=int, default=7850)
    rc.add_argument("--quick", action="store_true", help="50k transactions, 1k blocks behind")
    rc.add_argument("--json", action="store_true")
    ex = sub.add_parser("execution", help="a replica's CPU per transaction, in one process")
    ex.add_argument("--block", type=int, default=130, help="transactions per block")
    ex.add_argument("--blocks", type=int, default=40)
    ex.add_argument("--quick", action="store_true", help="12 blocks of 50 (CI smoke)")
    ex.add_argument("--json", action="store_true")
    sub.add_parser("verify", help="offline certificate bundle verification (bench/cert_verify.py)",
                   add_help=False)
    sub.add_parser("trail", help="fund trail query latency at 10k and 1M flows "
                                 "(bench/trail_bench.py)", add_help=False)
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("verify", "trail"):
        from bench import cert_verify, trail_bench

        module = cert_verify if argv[0] == "verify" else trail_bench
        code: int = module.main(argv[1:])
        return code
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
    if args.command == "execution":
        from bench import execution

        return execution.main(args)
    if args.command == "recovery":
        from bench import recovery

        return recovery.main(args)
    from bench import throughput

    return throughput.main(args)


if __name__ == "__main__":
    sys.exit(main())
