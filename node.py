#!/usr/bin/env python3
"""govledger node: operator commands (init, run, up, demo).

Until the node runtime lands, ``demo`` runs the ledger-layer demo: sign a
document digest, anchor it in a block, and prove its inclusion and state.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="node.py", description="govledger node operator commands")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the demo")
    demo.add_argument("--dir", default="govledger-demo", help="demo data directory")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ledger import demo as ledger_demo

        return ledger_demo.main(["--dir", args.dir])
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
