"""The ``govledger`` command-line tool.

Exit codes: 0 success / VALID, 1 INVALID or rejected, 2 usage or connection error.
The verbs below arrive with the node runtime, certificates and fiscal parts;
until then they explain that and exit 2.
"""

from __future__ import annotations

import argparse
import sys

VERBS = {
    "keys": "create and inspect key files",
    "cert": "issue, manage and verify e-certificates",
    "fund": "record and trace fiscal fund flows",
    "audit": "alerts, whole-ledger integrity check, access log",
    "gov": "committee proposals and votes",
    "org": "organisations registry",
    "status": "node and network status",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="govledger",
        description="Client for a govledger network (permissioned PBFT ledger).",
        epilog="Example: govledger status --node http://127.0.0.1:7700",
    )
    parser.add_argument("--node", default="http://127.0.0.1:7700", help="node URL")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb, text in VERBS.items():
        sub.add_parser(verb, help=text, description=text)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 2
    print(f"govledger {args.verb}: not available yet in this version", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
